"""A light curve as a sparkline: a small RGB PNG, one colour per band, time to the right,
AB magnitude up (brighter up), the alert's own point (the newest) circled; and its
``Scale``, which the page prints beside it (the magnitude range, the time span).

Magnitudes come from ``psfFlux`` (nJy): m = 31.4 − 2.5 log₁₀ f. A difference flux can be
zero or negative (a fading source): such a point has no magnitude and is drawn as a dash
along the bottom edge, below the faint end, at its time.

Time runs left to right, linearly within each stretch of observations; a gap longer than
``GAP_DAYS`` (a season gap) is cut to a narrow dotted band, and each stretch gets width by
its duration and by its number of points. So the 300 visits of a deep-drilling season do
not pile into a few pixels at the right of a year-long axis, and the page says how many
gaps were cut.

Drawn straight into a numpy array: a matplotlib figure per alert would cost more than the
rest of the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

WIDTH, HEIGHT, MARGIN = 150, 48, 3
#: Band colours (Rubin's usual ultraviolet-to-infrared sequence); other bands black.
BAND_COLOURS: dict[str, tuple[int, int, int]] = {
    "u": (86, 180, 233), "g": (0, 158, 115), "r": (213, 94, 0),
    "i": (204, 121, 167), "z": (120, 60, 20), "y": (60, 60, 60),
}
BACKGROUND, BREAK_LINE, OTHER = (255, 255, 255), (170, 170, 170), (0, 0, 0)
#: AB zero point of fluxes in nJy: m = AB_NJY − 2.5 log10(flux).
AB_NJY = 31.4
#: A gap between observations longer than this is cut; each cut takes BREAK_SHARE of the
#: width (all cuts together at most a third of it).
GAP_DAYS, BREAK_SHARE = 30.0, 0.04


@dataclass(frozen=True)
class Scale:
    """What a sparkline shows: the magnitude range drawn (``bright`` at the top, ``faint``
    at the bottom; None without a positive flux), the first and last time (MJD TAI), how
    many points, how many gaps were cut, how many points had no positive flux."""

    bright: float | None
    faint: float | None
    first_mjd: float | None
    last_mjd: float | None
    points: int
    cut_gaps: int
    non_positive: int

    def as_dict(self) -> dict:
        return asdict(self)


EMPTY = Scale(None, None, None, None, 0, 0, 0)


def magnitudes(flux: np.ndarray) -> np.ndarray:
    """AB magnitudes of fluxes in nJy; NaN where the flux is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flux > 0, AB_NJY - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def sparkline(mjd: np.ndarray, bands: list[str], flux: np.ndarray) -> tuple[np.ndarray, Scale]:
    """(HEIGHT, WIDTH, 3) uint8 pixels, row 0 at the top, and the scale drawn. Points
    without a finite flux, or with a time or flux no measurement has (|MJD| ≥ 10⁷,
    |flux| ≥ 10³⁰ nJy: a damaged table), are left out; with none, a blank canvas."""
    canvas = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(mjd) & np.isfinite(flux) & (np.abs(mjd) < 1e7) & (np.abs(flux) < 1e30)
    if not keep.any():
        return canvas, EMPTY
    times, values = mjd[keep], flux[keep]
    names = [band for band, kept in zip(bands, keep, strict=True) if kept]
    position, breaks = time_axis(times)
    x = MARGIN + position * (WIDTH - 1 - 2 * MARGIN)
    for place in breaks:
        canvas[::3, int(round(MARGIN + place * (WIDTH - 1 - 2 * MARGIN)))] = BREAK_LINE
    mags = magnitudes(values)
    measured = np.isfinite(mags)
    bright = float(mags[measured].min()) if measured.any() else None
    faint = float(mags[measured].max()) if measured.any() else None
    y = np.full(len(mags), float(HEIGHT - 2))  # no positive flux: a dash along the bottom
    if measured.any():
        y[measured] = _scale(mags[measured], bright, faint, MARGIN, HEIGHT - 1 - 2 * MARGIN)
    columns, rows = np.rint(x).astype(int), np.rint(y).astype(int)
    labels = np.array(names)
    for band in dict.fromkeys(names):
        colour = BAND_COLOURS.get(band, OTHER)
        mine = labels == band
        drawn = np.flatnonzero(mine & measured)
        _lines(canvas, columns[drawn], rows[drawn], tuple(c // 2 + 127 for c in colour))
        _dots(canvas, columns[drawn], rows[drawn], colour)
        _dashes(canvas, columns[mine & ~measured], rows[mine & ~measured], colour)
    newest = int(np.argmax(times))
    _ring(canvas, columns[newest], rows[newest], BAND_COLOURS.get(names[newest], OTHER))
    scale = Scale(bright, faint, float(times.min()), float(times.max()), int(keep.sum()), len(breaks),
                  int((~measured).sum()))
    return canvas, scale


def time_axis(times: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Each time's place on the axis (0 to 1) and the places of the cut gaps. Stretches of
    observations are separated where two consecutive times are more than GAP_DAYS apart;
    each stretch is as wide as half its share of the observed time plus half its share of
    the points, and within it the points are placed by time."""
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    cuts = np.flatnonzero(np.diff(ordered) > GAP_DAYS)
    starts, ends = np.r_[0, cuts + 1], np.r_[cuts, len(ordered) - 1]
    durations, counts = ordered[ends] - ordered[starts], ends - starts + 1
    break_share = min(BREAK_SHARE, 1 / (3 * len(cuts))) if len(cuts) else 0.0
    observed = durations.sum()
    time_share = durations / observed if observed > 0 else np.full(len(counts), 1 / len(counts))
    widths = (1 - len(cuts) * break_share) * (0.5 * time_share + 0.5 * counts / counts.sum())
    lefts = np.r_[0.0, np.cumsum(widths[:-1] + break_share)]
    segment = np.repeat(np.arange(len(counts)), counts)
    span = durations[segment]
    within = np.where(span > 0, (ordered - ordered[starts][segment]) / np.where(span > 0, span, 1.0), 0.5)
    places = np.empty(len(times))
    places[order] = np.clip(lefts[segment] + within * widths[segment], 0.0, 1.0)
    return places, [float(left - break_share / 2) for left in lefts[1:]]


def _scale(values: np.ndarray, start: float, stop: float, first: int, last: int) -> np.ndarray:
    """``values`` from [start, stop] to pixel positions [first, last] (the middle when the
    range is empty)."""
    if stop == start:
        return np.full(values.shape, (first + last) / 2)
    return first + (values - start) * (last - first) / (stop - start)


#: The pixels of a dot (3×3) and of the ring round the newest point (radius 3), as offsets.
_DOT = np.array([(row, column) for row in (-1, 0, 1) for column in (-1, 0, 1)])
_DASH = np.array([(0, -1), (0, 0), (0, 1)])
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


def _dashes(canvas: np.ndarray, columns: np.ndarray, rows: np.ndarray, colour: tuple[int, ...]) -> None:
    """A 3-pixel horizontal dash at each point (no positive flux: no magnitude)."""
    _stamp(canvas, rows, columns, _DASH, colour)


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
