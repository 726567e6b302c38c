"""A GW sky map as a volume: the numbers ligo.skymap's ``crossmatch`` defines, at many
points at once.

A multi-order map with distance layers gives, per pixel, the probability density per
steradian and the distance ansatz (``DISTMU``, ``DISTSIGMA``, ``DISTNORM``: Singer et al.
2016, ApJL 829, L15). ``volume_levels`` is the one place the volume credible level and
the density per Mpc³ are computed, on the grid ligo.skymap's crossmatch uses (ligo.skymap
2.5.4, ``ligo/skymap/postprocess/crossmatch.py``): 999 shells out to six times the marginal
mean distance, voxels ranked by density, ``searched_prob_vol`` the probability of the
voxels at least as dense as the point's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The distance grid of ligo.skymap's crossmatch: n_r shells out to SHELLS_OUT × mean distance.
N_SHELLS = 1000
SHELLS_OUT = 6.0
DISTANCE_COLUMNS = ("DISTMU", "DISTSIGMA", "DISTNORM")


@dataclass
class VolumeMap:
    """A multi-order map with its distance layers (one row per pixel)."""

    uniq: np.ndarray
    probdensity: np.ndarray  # per steradian
    distmu: np.ndarray
    distsigma: np.ndarray
    distnorm: np.ndarray

    @property
    def orders(self) -> np.ndarray:
        return (np.floor(np.log2(self.uniq.astype(np.float64))).astype(np.int64) - 2) // 2

    def areas_sr(self) -> np.ndarray:
        return 4 * math.pi / (12 * np.exp2(2 * self.orders))

    def pixel_of(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """The row of the pixel holding each point (the map tiles the sky)."""
        from astropy import units as u
        from astropy_healpix import HEALPix

        orders = self.orders
        top = int(orders.max())
        nested = self.uniq - 4 * (1 << (2 * orders))
        first = nested << (2 * (top - orders))  # each pixel's first nested index at the top order
        by_first = np.argsort(first)
        point = HEALPix(nside=1 << top, order="nested").lonlat_to_healpix(np.asarray(ra_deg) * u.deg,
                                                                           np.asarray(dec_deg) * u.deg)
        return by_first[np.searchsorted(first[by_first], point, side="right") - 1]

    def credible_levels(self, rows: np.ndarray) -> np.ndarray:
        """The 2-D credible level of each pixel row (ligo.skymap's ``searched_prob``): the
        probability of the pixels denser than it, itself included."""
        order = np.lexsort((self.uniq, self.probdensity))[::-1]
        cumulative = np.empty(len(order))
        cumulative[order] = np.cumsum(self.probdensity[order] * self.areas_sr()[order])
        return cumulative[rows]

    def moc(self, level: float = 0.9):
        """The region of credible level ``level`` as a mocpy MOC."""
        from mocpy import MOC

        return MOC.from_valued_healpix_cells(self.uniq.astype(np.uint64), self.probdensity,
                                             max_depth=int(self.orders.max()), values_are_densities=True,
                                             cumul_to=level)


def read_volume_map(path: str) -> VolumeMap | None:
    """A stored multi-order map with its distance layers, or None when it has none."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdus:
        table = hdus[1].data
        names = set(table.columns.names)
        if not set(DISTANCE_COLUMNS) <= names:
            return None
        column = {name: np.asarray(table[name], dtype=np.float64) for name in ("PROBDENSITY", *DISTANCE_COLUMNS)}
        uniq = np.asarray(table["UNIQ"], dtype=np.int64)
    return VolumeMap(uniq, column["PROBDENSITY"], column["DISTMU"], column["DISTSIGMA"], column["DISTNORM"])


def _truncated_moments(mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of r with density ∝ r² N(r; mu, sigma), r > 0: the raw
    moments m_k of the normal truncated at 0 (m_k = mu m_{k-1} + (k-1) sigma² m_{k-2}, plus
    sigma φ(t)/Φ(t) for k = 1), then m3/m2 and m4/m2."""
    from scipy.special import ndtr

    t = mu / sigma
    ratio = np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) / ndtr(t)
    m1 = mu + sigma * ratio
    m2 = mu * m1 + sigma**2
    m3 = mu * m2 + 2 * sigma**2 * m1
    m4 = mu * m3 + 3 * sigma**2 * m2
    mean = m3 / m2
    return mean, np.sqrt(np.maximum(m4 / m2 - mean**2, 0.0))


def mean_distance_mpc(sky: VolumeMap) -> float:
    """The map's marginal mean distance (ligo.skymap's ``parameters_to_marginal_moments``)."""
    prob = sky.probdensity * sky.areas_sr()
    good = np.isfinite(prob) & np.isfinite(sky.distmu) & np.isfinite(sky.distsigma)
    mean, _ = _truncated_moments(sky.distmu[good], sky.distsigma[good])
    return float(np.sum(prob[good] * mean))


def volume_levels(sky: VolumeMap, rows: np.ndarray, distance_mpc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For points at pixel ``rows`` and ``distance_mpc``: the volume credible level
    (``searched_prob_vol``) and the probability density per Mpc³ (``probdensity_vol``), as
    ligo.skymap's crossmatch computes them (its voxel grid; a point beyond the grid is in
    its last shell). The level is the probability of the voxels at least as dense as the
    point's: summed per bucket between the points' sorted densities (no sort of the grid)."""
    step = SHELLS_OUT * mean_distance_mpc(sky) / N_SHELLS
    r = step * np.arange(1, N_SHELLS)
    # density per Mpc³ of every voxel (pixel × shell), and its probability
    density = (sky.probdensity * sky.distnorm / (sky.distsigma * math.sqrt(2 * math.pi)))[:, None] * np.exp(
        -0.5 * np.square((r[None, :] - sky.distmu[:, None]) / sky.distsigma[:, None]))
    density[~np.isfinite(density)] = 0.0
    probability = density * (sky.areas_sr()[:, None] * ((np.square(r) + step * step / 12) * step)[None, :])
    shell = np.clip(np.digitize(distance_mpc, r) - 1, 0, N_SHELLS - 2)
    point = density[rows, shell]
    levels = np.unique(point)
    bucket = np.searchsorted(levels, density.ravel(), side="right")  # voxels in [levels[i-1], levels[i])
    held = np.bincount(bucket, weights=probability.ravel(), minlength=len(levels) + 1)
    at_least = np.cumsum(held[::-1])[::-1]  # at_least[i]: the voxels of bucket i or above
    return at_least[np.searchsorted(levels, point, side="left") + 1], point
