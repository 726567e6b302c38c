"""IRAF's zscale display limits for many images at once.

The algorithm and its defaults are astropy's ``ZScaleInterval`` (sample up to 1000 pixels
at a fixed stride, sort them, fit a line with iterative k-sigma rejection, widen the
rejected set by 1 % of the samples, scale the slope by the contrast). astropy fits each
image in a Python loop of small numpy calls, which cost more than reading the FITS file
and writing the PNG together (``benchmarks/report_thumbnails.py``). Here the images of one
sample count are fitted together as the rows of one array, so each numpy call serves a
whole chunk of cutouts. The straight-line fit is the closed-form weighted least squares
that ``np.polyfit`` solves with 0/1 weights; ``tests/test_report.py`` compares the limits
with astropy's on many images.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

N_SAMPLES = 1000
CONTRAST = 0.25
MAX_REJECT = 0.5
MIN_NPIXELS = 5
KREJ = 2.5
MAX_ITERATIONS = 5


def zscale_limits(images: Sequence[np.ndarray]) -> list[tuple[float, float]]:
    """(low, high) of each image, as ``ZScaleInterval().get_limits`` gives them.

    Every image must hold finite values only (the caller drops NaN and inf) and at least one.
    """
    limits: list[tuple[float, float]] = [(0.0, 0.0)] * len(images)
    groups: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for index, image in enumerate(images):
        values = np.asarray(image, dtype=np.float64).ravel()
        stride = int(max(1.0, values.size / N_SAMPLES))
        samples = values[::stride][:N_SAMPLES]
        groups[samples.size].append((index, samples))
    for members in groups.values():
        rows = np.sort(np.stack([samples for _, samples in members]), axis=1)
        for (index, _), low, high in zip(members, *_fit_rows(rows), strict=True):
            limits[index] = (float(low), float(high))
    return limits


def _fit_rows(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Limits for each row of sorted samples (all rows the same length)."""
    rows, npix = samples.shape
    minpix = max(MIN_NPIXELS, int(npix * MAX_REJECT))
    x = np.arange(npix, dtype=np.float64)
    bad = np.zeros((rows, npix), dtype=bool)
    good_count = np.full(rows, npix)
    last_count = np.full(rows, npix + 1)
    fitting = np.ones(rows, dtype=bool)  # rows whose rejection loop has not stopped
    slope = np.zeros(rows)
    fitted_once = np.zeros(rows, dtype=bool)
    for _ in range(MAX_ITERATIONS):
        fitting &= (good_count < last_count) & (good_count >= minpix)
        rows_fitted = np.flatnonzero(fitting)
        if not rows_fitted.size:
            break
        values, old_bad = samples[rows_fitted], bad[rows_fitted]
        weight = (~old_bad).astype(np.float64)
        count = weight.sum(axis=1)
        x_mean = weight @ x / count
        y_mean = (weight * values).sum(axis=1) / count
        dx = (x[None, :] - x_mean[:, None]) * weight
        new_slope = (dx * (values - y_mean[:, None])).sum(axis=1) / (dx * dx).sum(axis=1)
        flat = values - (y_mean[:, None] + new_slope[:, None] * (x[None, :] - x_mean[:, None]))
        flat_mean = (weight * flat).sum(axis=1) / count
        threshold = KREJ * np.sqrt((weight * (flat - flat_mean[:, None]) ** 2).sum(axis=1) / count)
        rejected = _grow(old_bad | (np.abs(flat) > threshold[:, None]), max(1, int(npix * 0.01)))
        bad[rows_fitted] = rejected
        slope[rows_fitted] = new_slope
        fitted_once[rows_fitted] = True
        last_count[rows_fitted] = good_count[rows_fitted]
        good_count[rows_fitted] = npix - rejected.sum(axis=1)
    low, high = samples[:, 0].copy(), samples[:, -1].copy()
    use = fitted_once & (good_count >= minpix)
    scaled = slope / CONTRAST if CONTRAST > 0 else slope
    center = (npix - 1) // 2
    median = 0.5 * (samples[:, (npix - 1) // 2] + samples[:, npix // 2])
    low = np.where(use, np.maximum(low, median - (center - 1) * scaled), low)
    high = np.where(use, np.minimum(high, median + (npix - center) * scaled), high)
    return low, high


def _grow(bad: np.ndarray, width: int) -> np.ndarray:
    """``np.convolve(row, ones(width), mode="same") > 0`` for every row: a rejected sample
    rejects its neighbours (the window numpy's "same" mode centres on each sample)."""
    npix = bad.shape[1]
    shift = (width - 1) // 2
    padded = np.pad(bad, ((0, 0), (width, width))).astype(np.int32)
    prefix = np.concatenate([np.zeros((bad.shape[0], 1), np.int32), np.cumsum(padded, axis=1)], axis=1)
    start = shift + 1
    return (prefix[:, start + width:start + width + npix] - prefix[:, start:start + npix]) > 0
