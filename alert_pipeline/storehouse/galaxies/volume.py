"""A GW sky map as a volume: the numbers ligo.skymap's ``crossmatch`` defines, at many
points at once.

A multi-order map with distance layers gives, per pixel, the probability density per
steradian and the distance ansatz (``DISTMU``, ``DISTSIGMA``, ``DISTNORM``: Singer et al.
2016, ApJL 829, L15). ``volume_levels`` gives the volume credible level and the
density per Mpc³ of ligo.skymap's crossmatch through ``messengers.volume``, the one place
they are computed (for transients in the cross-match and for galaxies here alike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alert_pipeline.storehouse.messengers.volume import REACH_MEANS, marginal_mean_mpc, volume_fields

#: How far the volume reaches, in marginal mean distances (ligo.skymap's crossmatch grid).
SHELLS_OUT = REACH_MEANS
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

    def pixel_areas_sr(self) -> np.ndarray:  # the name messengers.volume reads
        return self.areas_sr()

    @property
    def distance(self) -> dict[str, np.ndarray]:
        """The distance layers as ``messengers.skymaps.SkyMap`` holds them."""
        return {"DISTMU": self.distmu, "DISTSIGMA": self.distsigma, "DISTNORM": self.distnorm}

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
    if len(uniq) == 0 or (uniq < 4).any():
        raise ValueError(f"{path}: not a multi-order map (no pixel, or a UNIQ below 4)")
    return VolumeMap(uniq, column["PROBDENSITY"], column["DISTMU"], column["DISTSIGMA"], column["DISTNORM"])


def mean_distance_mpc(sky: VolumeMap) -> float:
    """The map's marginal mean distance (``messengers.volume``, the one implementation)."""
    return marginal_mean_mpc(sky)


def volume_levels(sky: VolumeMap, rows: np.ndarray, distance_mpc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For points at pixel ``rows`` and ``distance_mpc``: the volume credible level
    (``searched_prob_vol``) and the probability density per Mpc³ (``probdensity_vol``), as
    ligo.skymap's crossmatch computes them: ``messengers.volume``'s, the same numbers the
    cross-match gives a transient."""
    found = volume_fields(sky, rows, distance_mpc)
    return found["credible_level_volume"], found["prob_density_volume_mpc3"]
