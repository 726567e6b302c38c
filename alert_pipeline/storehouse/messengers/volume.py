"""Where a transient of known distance sits in a gravitational-wave sky map's volume.

A map with distance layers (``DISTMU``, ``DISTSIGMA``, ``DISTNORM``) gives, per pixel,
the ansatz of Singer et al. 2016 (ApJL 829 L15; ApJS 226 10) for the probability per
unit volume at distance r (Mpc⁻³):

    ρ(pixel, r) = PROBDENSITY · DISTNORM / (DISTSIGMA √(2π)) · exp(−(r − DISTMU)² / (2 DISTSIGMA²))

(PROBDENSITY per steradian; a volume element is r² dr dΩ). The numbers are those of
ligo.skymap's ``ligo.skymap.postprocess.crossmatch`` (``cosmology=False``): space is cut
into voxels, each pixel times a shell of width ``d_r`` centred on ``r_k = d_r·k``
(k = 1 … 999, ``d_r = max_r / 1000``, ``max_r`` six times the map's marginal mean
distance, or the transient's distance when that is farther), each of probability
``ρ(pixel, r_k) · (r_k² + d_r²/12) · d_r · dA``. A transient at distance d is in the voxel
of its pixel and of the shell ``r_k ≤ d < r_{k+1}``; then

* ``prob_density_volume_mpc3`` (crossmatch's ``probdensity_vol``): ρ of that voxel;
* ``credible_level_volume`` (``searched_prob_vol``): the probability of the voxels of
  higher density, its own included — the smallest credible volume holding it;
* ``distance_sigma``: (d − DISTMU) / DISTSIGMA of its pixel.

crossmatch sorts every voxel of the map (~20 million for a BAYESTAR map) by density once
per call, and its grid reaches as far as the farthest target of that call, so one
target's numbers depend on the others passed with it. Here a transient within six mean
distances gets the numbers crossmatch gives it alone (its grid reaches ``6 × mean``,
whoever else is passed); the transients of one call beyond that are given together
the numbers crossmatch gives them passed together (one grid reaching the farthest of
them: a grid each would cost a pass over every voxel each; so far out, levels are
near 1 and rank last anyway). All are computed without the sort: in each pixel ρ is a Gaussian
in r, so the voxels denser than a threshold t are one run of shells,
``|r_k − DISTMU| < DISTSIGMA·√(2 ln(A/t))`` with ``A`` the pixel's peak density, and their
probability is a difference of the pixel's cumulative sums over its shells. Pixels are
taken a chunk at a time (bounded memory, whatever the map's size): at most two passes
over the voxels per call.

Two deliberate differences: a voxel of density exactly equal to the transient's (a tie,
which crossmatch orders arbitrarily) counts as less dense; a transient nearer than the
first shell (``d < d_r``; crossmatch's ``digitize`` then wraps to the last shell) is
placed in the first shell.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: crossmatch's number of shells (its ``n_r``) and the reach of its grid in marginal mean distances.
SHELLS, REACH_MEANS = 1000, 6.0
#: About how many values a chunk of pixels × shells (or × transients) holds at once.
CHUNK_VALUES = 2_000_000


def marginal_mean_mpc(skymap: Any) -> float:
    """The map's marginal (all-sky) mean distance from the ansatz parameters, as
    ligo.skymap's ``distance.parameters_to_marginal_moments`` finds it: Σ over the pixels
    with finite probability, DISTMU and DISTSIGMA of their probability × their mean."""
    layers = skymap.distance
    prob = skymap.probdensity * skymap.pixel_areas_sr()
    mu, sigma = layers["DISTMU"], layers["DISTSIGMA"]
    good = np.isfinite(prob) & np.isfinite(mu) & np.isfinite(sigma)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        means = conditional_mean(mu[good], sigma[good])
    return float(np.sum(np.where(np.isfinite(means), prob[good] * means, 0.0)))


def conditional_mean(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The mean of r under the ansatz, ∝ r² exp(−(r − μ)²/(2σ²)) for r ≥ 0: with
    x = μ/σ, σ · ((x³ + 3x) Φ(x) + (x² + 2) φ(x)) / ((x² + 1) Φ(x) + x φ(x)) (the moments of
    a normal truncated at 0; Φ, φ the standard normal's CDF and density)."""
    x = mu / sigma
    cdf = 0.5 * np.frompyfunc(math.erfc, 1, 1)(-x / math.sqrt(2)).astype(np.float64)
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    second = (x * x + 1) * cdf + x * pdf
    third = (x**3 + 3 * x) * cdf + (x * x + 2) * pdf
    return sigma * third / second


def volume_fields(skymap: Any, rows: np.ndarray, distance_mpc: np.ndarray) -> dict[str, np.ndarray]:
    """For transients in pixel ``rows`` (of ``skymap``, which has distance layers; -1 for
    none) at ``distance_mpc`` (> 0): ``credible_level_volume``, ``prob_density_volume_mpc3``
    and ``distance_sigma`` (module docstring), NaN where undefined."""
    rows, distance_mpc = np.asarray(rows, dtype=np.int64), np.asarray(distance_mpc, dtype=np.float64)
    level = np.full(len(rows), np.nan)
    density = np.full(len(rows), np.nan)
    reach = REACH_MEANS * marginal_mean_mpc(skymap)
    far = distance_mpc > reach  # crossmatch's grid then reaches the farthest of them
    for group, max_r in ((~far, reach), (far, float(np.max(distance_mpc, initial=0.0, where=far)))):
        if np.any(group):
            level[group], density[group] = _searched(skymap, max_r, rows[group], distance_mpc[group])
    mu, sigma = skymap.distance["DISTMU"], skymap.distance["DISTSIGMA"]
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = np.where(rows >= 0, (distance_mpc - mu[rows]) / sigma[rows], np.nan)
    return {"credible_level_volume": level, "prob_density_volume_mpc3": density, "distance_sigma": deviation}


def _searched(skymap: Any, max_r: float, rows: np.ndarray, distance_mpc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(searched probability, density) of each target on the grid reaching ``max_r``."""
    step = max_r / SHELLS
    r = step * np.arange(1, SHELLS)
    shell = np.maximum(np.digitize(distance_mpc, r) - 1, 0)
    peak, mu, sigma, area = _pixels(skymap)
    covered = rows >= 0
    row = np.where(covered, rows, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        own_density = peak[row] * np.exp(-0.5 * np.square((r[shell] - mu[row]) / sigma[row]))
    own_density = np.where(covered & np.isfinite(own_density), own_density, 0.0)
    total = np.zeros(len(rows))
    width = (np.square(r) + step * step / 12) * step  # each shell's volume per steradian
    chunk = max(1, CHUNK_VALUES // max(SHELLS, len(rows)))
    for first in range(0, len(peak), chunk):
        total += _chunk_sum(first, slice(first, first + chunk), (peak, mu, sigma, area), r, width, own_density,
                            row, shell, covered)
    return total, own_density


def _pixels(skymap: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: the peak density of its ansatz A = PROBDENSITY · DISTNORM / (DISTSIGMA √(2π))
    (0 where it is not a finite non-negative number), DISTMU, DISTSIGMA and its area (sr)."""
    layers = skymap.distance
    mu, sigma, norm = (np.asarray(layers[name], dtype=np.float64) for name in ("DISTMU", "DISTSIGMA", "DISTNORM"))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        peak = skymap.probdensity * norm / (sigma * math.sqrt(2 * math.pi))
    peak = np.where(np.isfinite(peak) & (peak > 0) & np.isfinite(mu) & (sigma > 0), peak, 0.0)
    return peak, mu, sigma, skymap.pixel_areas_sr()


def _chunk_sum(first: int, part: slice, pixels: tuple[np.ndarray, ...], r: np.ndarray, width: np.ndarray,
               threshold: np.ndarray, row: np.ndarray, shell: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """The probability, per target, of the voxels of the pixels ``part`` denser than its
    ``threshold`` (its own voxel included when it lies in ``part``)."""
    peak, mu, sigma, area = (values[part] for values in pixels)
    with np.errstate(invalid="ignore", over="ignore"):
        density = peak[:, None] * np.exp(-0.5 * np.square((r[None, :] - mu[:, None]) / sigma[:, None]))
    prob = np.where(np.isfinite(density), density, 0.0) * width[None, :] * area[:, None]
    cumulative = np.zeros((len(peak), len(r) + 1))
    np.cumsum(prob, axis=1, out=cumulative[:, 1:])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        half = sigma[:, None] * np.sqrt(2 * np.log(peak[:, None] / threshold[None, :]))
    half = np.where(peak[:, None] > threshold[None, :], half, np.nan)  # no shell is denser: an empty run
    step = r[0]
    with np.errstate(invalid="ignore"):
        start = np.floor((mu[:, None] - half) / step - 1) + 1  # the first shell with r_k > μ − half
        stop = np.ceil((mu[:, None] + half) / step - 1)  # the first shell with r_k ≥ μ + half
    start = np.clip(np.nan_to_num(start, nan=0.0), 0, len(r)).astype(np.int64)
    stop = np.clip(np.nan_to_num(stop, nan=0.0), 0, len(r)).astype(np.int64)
    stop = np.maximum(stop, start)
    found = (np.take_along_axis(cumulative, stop, axis=1) - np.take_along_axis(cumulative, start, axis=1)).sum(axis=0)
    inside = covered & (row >= first) & (row < first + len(peak))
    targets = np.flatnonzero(inside)
    local = row[targets] - first
    counted = (start[local, targets] <= shell[targets]) & (shell[targets] < stop[local, targets])
    found[targets] += np.where(counted, 0.0, prob[local, shell[targets]])
    return found
