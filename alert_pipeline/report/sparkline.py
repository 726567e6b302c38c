"""A light curve as a sparkline: a small RGB PNG, one colour per band, time to the right,
flux up (nJy, linear; the zero line grey when it is in range), the alert's own point
(the newest) circled.

Drawn straight into a numpy array: a matplotlib figure per alert would cost more than the
rest of the report.
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT, MARGIN = 150, 48, 3
#: Band colours (Rubin's usual ultraviolet-to-infrared sequence); other bands black.
BAND_COLOURS: dict[str, tuple[int, int, int]] = {
    "u": (86, 180, 233), "g": (0, 158, 115), "r": (213, 94, 0),
    "i": (204, 121, 167), "z": (120, 60, 20), "y": (60, 60, 60),
}
BACKGROUND, ZERO_LINE, OTHER = (255, 255, 255), (200, 200, 200), (0, 0, 0)


def sparkline(mjd: np.ndarray, bands: list[str], flux: np.ndarray) -> np.ndarray:
    """(HEIGHT, WIDTH, 3) uint8 pixels, row 0 at the top. Points without a finite flux, or
    with a time or flux no measurement has (|MJD| ≥ 10⁷, |flux| ≥ 10³⁰ nJy: a damaged table),
    are left out; with none, a blank canvas."""
    canvas = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(mjd) & np.isfinite(flux) & (np.abs(mjd) < 1e7) & (np.abs(flux) < 1e30)
    if not keep.any():
        return canvas
    times, values = mjd[keep], flux[keep]
    names = [band for band, kept in zip(bands, keep, strict=True) if kept]
    x = _scale(times, float(times.min()), float(times.max()), MARGIN, WIDTH - 1 - MARGIN)
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    y = _scale(values, high, low, MARGIN, HEIGHT - 1 - MARGIN)  # high flux at the top
    zero = int(round(_scale(np.array([0.0]), high, low, MARGIN, HEIGHT - 1 - MARGIN)[0]))
    canvas[zero, :] = ZERO_LINE
    columns, rows = np.rint(x).astype(int), np.rint(y).astype(int)
    labels = np.array(names)
    for band in dict.fromkeys(names):
        colour = BAND_COLOURS.get(band, OTHER)
        mine = np.flatnonzero(labels == band)
        _lines(canvas, columns[mine], rows[mine], tuple(c // 2 + 127 for c in colour))
        _dots(canvas, columns[mine], rows[mine], colour)
    newest = int(np.argmax(times))
    _ring(canvas, columns[newest], rows[newest], BAND_COLOURS.get(names[newest], OTHER))
    return canvas


def _scale(values: np.ndarray, start: float, stop: float, first: int, last: int) -> np.ndarray:
    """``values`` from [start, stop] to pixel positions [first, last] (the middle when the
    range is empty)."""
    if stop == start:
        return np.full(values.shape, (first + last) / 2)
    return first + (values - start) * (last - first) / (stop - start)


#: The pixels of a dot (3×3) and of the ring round the newest point (radius 3), as offsets.
_DOT = np.array([(row, column) for row in (-1, 0, 1) for column in (-1, 0, 1)])
_ANGLES = np.linspace(0, 2 * np.pi, 24, endpoint=False)
_RING = np.unique(np.rint(3 * np.column_stack([np.sin(_ANGLES), np.cos(_ANGLES)])).astype(int), axis=0)


def _stamp(canvas: np.ndarray, rows: np.ndarray, columns: np.ndarray, shape: np.ndarray,
           colour: tuple[int, ...]) -> None:
    """``shape`` (row, column offsets) drawn at every point, clipped to the canvas."""
    height, width = canvas.shape[:2]
    all_rows = (rows[:, None] + shape[None, :, 0]).ravel()
    all_columns = (columns[:, None] + shape[None, :, 1]).ravel()
    inside = (all_rows >= 0) & (all_rows < height) & (all_columns >= 0) & (all_columns < width)
    canvas[all_rows[inside], all_columns[inside]] = colour


def _dots(canvas: np.ndarray, columns: np.ndarray, rows: np.ndarray, colour: tuple[int, ...]) -> None:
    """A 3×3 dot at each point."""
    _stamp(canvas, rows, columns, _DOT, colour)


def _ring(canvas: np.ndarray, column: int, row: int, colour: tuple[int, ...]) -> None:
    _stamp(canvas, np.array([row]), np.array([column]), _RING, colour)


def _lines(canvas: np.ndarray, columns: np.ndarray, rows: np.ndarray, colour: tuple[int, ...]) -> None:
    """Straight segments joining consecutive points, all sampled in one go (one sample per
    pixel along the longer axis of each segment)."""
    if len(columns) < 2:
        return
    d_col, d_row = np.diff(columns), np.diff(rows)
    steps = np.maximum(np.abs(d_col), np.abs(d_row)) + 1
    segment = np.repeat(np.arange(len(steps)), steps)
    first = np.repeat(np.cumsum(steps) - steps, steps)
    fraction = (np.arange(int(steps.sum())) - first) / np.maximum(steps[segment] - 1, 1)
    canvas[np.rint(rows[segment] + fraction * d_row[segment]).astype(int),
           np.rint(columns[segment] + fraction * d_col[segment]).astype(int)] = colour
