"""A light curve as a sparkline: a small RGB PNG, one colour per band, time to the right,
flux up (nJy, linear; the zero line grey when it is in range), the alert's own point
(the newest) circled.

Drawn straight into a numpy array: a matplotlib figure per alert would cost more than the
rest of the report.
"""

from __future__ import annotations

import math

import numpy as np

WIDTH, HEIGHT, MARGIN = 150, 48, 3
#: Band colours (Rubin's usual ultraviolet-to-infrared sequence); other bands black.
BAND_COLOURS: dict[str, tuple[int, int, int]] = {
    "u": (86, 180, 233), "g": (0, 158, 115), "r": (213, 94, 0),
    "i": (204, 121, 167), "z": (120, 60, 20), "y": (60, 60, 60),
}
BACKGROUND, ZERO_LINE, OTHER = (255, 255, 255), (200, 200, 200), (0, 0, 0)


def sparkline(mjd: np.ndarray, bands: list[str], flux: np.ndarray) -> np.ndarray:
    """(HEIGHT, WIDTH, 3) uint8 pixels, row 0 at the top. Points without a finite flux are
    left out; with none, a blank canvas."""
    canvas = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    keep = np.isfinite(mjd) & np.isfinite(flux)
    if not keep.any():
        return canvas
    times, values = mjd[keep], flux[keep]
    names = [band for band, kept in zip(bands, keep, strict=True) if kept]
    x = _scale(times, float(times.min()), float(times.max()), MARGIN, WIDTH - 1 - MARGIN)
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    y = _scale(values, high, low, MARGIN, HEIGHT - 1 - MARGIN)  # high flux at the top
    zero = int(round(_scale(np.array([0.0]), high, low, MARGIN, HEIGHT - 1 - MARGIN)[0]))
    canvas[zero, :] = ZERO_LINE
    for band in dict.fromkeys(names):
        colour = BAND_COLOURS.get(band, OTHER)
        index = [i for i, name in enumerate(names) if name == band]
        for start, end in zip(index, index[1:], strict=False):
            _line(canvas, x[start], y[start], x[end], y[end], tuple(c // 2 + 127 for c in colour))
        for i in index:
            _dot(canvas, x[i], y[i], colour)
    newest = int(np.argmax(times))
    _ring(canvas, x[newest], y[newest], BAND_COLOURS.get(names[newest], OTHER))
    return canvas


def _scale(values: np.ndarray, start: float, stop: float, first: int, last: int) -> np.ndarray:
    """``values`` from [start, stop] to pixel positions [first, last] (the middle when the
    range is empty)."""
    if stop == start:
        return np.full(values.shape, (first + last) / 2)
    return first + (values - start) * (last - first) / (stop - start)


def _dot(canvas: np.ndarray, x: float, y: float, colour: tuple[int, ...]) -> None:
    col, row = int(round(x)), int(round(y))
    canvas[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] = colour


def _ring(canvas: np.ndarray, x: float, y: float, colour: tuple[int, ...]) -> None:
    col, row = int(round(x)), int(round(y))
    for angle in np.linspace(0, 2 * math.pi, 24, endpoint=False):
        r, c = int(round(row + 3 * math.sin(angle))), int(round(col + 3 * math.cos(angle)))
        if 0 <= r < canvas.shape[0] and 0 <= c < canvas.shape[1]:
            canvas[r, c] = colour


def _line(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: tuple[int, ...]) -> None:
    steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    cols = np.rint(np.linspace(x0, x1, steps)).astype(int)
    rows = np.rint(np.linspace(y0, y1, steps)).astype(int)
    canvas[rows, cols] = colour
