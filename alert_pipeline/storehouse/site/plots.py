"""Light curves and zoomed sky plots as inline SVG, drawn from the slot's numbers.

Inline SVG, not matplotlib: a site of 100,000 transients needs a plot per page, and a few
hundred bytes of path text cost ~0.1 ms where a matplotlib figure costs ~50 ms
(``benchmarks/site_scale.py``). Every label is escaped; axes carry their units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from alert_pipeline.storehouse.site.markup import finite, text

#: One colour per ZTF band (and a grey for any other band name).
BAND_COLOURS = {"g": "#2ca02c", "r": "#d62728", "i": "#9467bd"}
OTHER_COLOUR = "#555555"
WIDTH, HEIGHT = 640, 330
#: The largest magnitude error drawn as a bar (a larger one is no measurement: the point has no bar).
MAX_ERROR_MAG = 10.0
LEFT, RIGHT, TOP, BOTTOM = 62, 150, 16, 48


def ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high] (none for a range no float spans)."""
    span = high - low if high > low else 1.0
    if not math.isfinite(span):
        return []
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _tick_format(values: Sequence[float]) -> str:
    """The format of an axis's tick labels: as many decimals as its step needs (0.25: two)."""
    step = abs(values[1] - values[0]) if len(values) > 1 else 1.0
    decimals = 0
    while decimals < 8 and abs(round(step, decimals) - step) > 1e-6 * step:
        decimals += 1
    return f".{decimals}f"


class _Frame:
    """A plot area mapping data (x, y) to pixels; ``flip_x``/``flip_y`` put larger values left/up-side-down."""

    def __init__(self, x: tuple[float, float], y: tuple[float, float], flip_x: bool = False,
                 flip_y: bool = False) -> None:
        self.x, self.y, self.flip_x, self.flip_y = x, y, flip_x, flip_y
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(self, value: float) -> float:
        share = (value - self.x[0]) / (self.x[1] - self.x[0])
        return LEFT + (1 - share if self.flip_x else share) * self.w

    def py(self, value: float) -> float:
        share = (value - self.y[0]) / (self.y[1] - self.y[0])
        return TOP + (share if self.flip_y else 1 - share) * self.h

    def axes(self, x_label: str, y_label: str) -> list[str]:
        """The frame, its tick marks (one path) and tick labels, and the axis labels."""
        xs, ys = ticks(*self.x), ticks(*self.y)
        x_format, y_format, base = _tick_format(xs), _tick_format(ys), TOP + self.h
        x_at = [(f"{self.px(value):.1f}", format(value, x_format)) for value in xs]
        y_at = [(f"{self.py(value):.1f}", format(value, y_format)) for value in ys]
        marks = "".join([f"M{at} {base}v5" for at, _ in x_at] + [f"M{LEFT - 5} {at}h5" for at, _ in y_at])
        x_labels = "".join([f'<text x="{at}" y="{base + 18}">{label}</text>' for at, label in x_at])
        y_labels = "".join([f'<text x="{LEFT - 8}" y="{at}" dy="4">{label}</text>' for at, label in y_at])
        return [f'<rect x="{LEFT}" y="{TOP}" width="{self.w}" height="{self.h}" fill="#fff" stroke="#333"/>'
                f'<path class="ticks" d="{marks}" stroke="#333"/>'
                f'<g class="x-ticks" text-anchor="middle">{x_labels}</g><g class="y-ticks" text-anchor="end">{y_labels}</g>'
                f'<text x="{LEFT + self.w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">{text(x_label)}</text>'
                f'<text transform="translate(16 {TOP + self.h / 2:.0f}) rotate(-90)" text-anchor="middle">'
                f"{text(y_label)}</text>"]


def _svg(title: str, parts: list[str], width: int = WIDTH) -> str:
    return (f'<svg class="plot" role="img" viewBox="0 0 {width} {HEIGHT}" width="{width}" height="{HEIGHT}" '
            f'font-family="sans-serif" font-size="12"><title>{text(title)}</title>{"".join(parts)}</svg>')


def _legend(entries: Sequence[tuple[str, str]], left: float = WIDTH - RIGHT + 16) -> list[str]:
    """Legend beside the plot: (marker markup at 0,0, label)."""
    parts = []
    for index, (marker, label) in enumerate(entries):
        y = TOP + 14 + index * 18
        parts.append(f'<g transform="translate({left:.0f} {y})">{marker}</g>'
                     f'<text x="{left + 12:.0f}" y="{y + 4}">{text(label)}</text>')
    return parts



def _points(curve: Mapping[str, Any]) -> list[tuple[float, float, float, bool]]:
    """(mjd, mag, error, positive) of a band's usable points."""
    mjds, mags, errors, positives = (value if isinstance(value := curve.get(name), list | tuple) else []
                                     for name in ("mjd", "mag", "mag_err", "positive"))  # a hand-edited odd value: none
    n_errors, n_positives, isfinite = len(errors), len(positives), math.isfinite
    found = []
    for index, (when, mag) in enumerate(zip(mjds, mags, strict=False)):
        if type(when) is float and type(mag) is float and isfinite(when + mag) or finite(when) and finite(mag):
            error = errors[index] if index < n_errors else None
            if type(error) is not float or not isfinite(error):
                error = float(error) if finite(error) else 0.0
            if not 0.0 <= error <= MAX_ERROR_MAG:  # a negative or absurd error: the point without its bar
                error = 0.0
            found.append((float(when), float(mag), error,
                          (positives[index] if index < n_positives else True) is not False))
    return found


def _limits(slot: Mapping[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Upper limits, when the slot has them: ``upper_limits`` = {band: {"mjd": [...], "mag" or "maglim": [...]}}."""
    found: dict[str, list[tuple[float, float]]] = {}
    given = slot.get("upper_limits")
    if not isinstance(given, Mapping):
        return found
    for band, curve in given.items():
        if isinstance(curve, Mapping):
            mjds, mags = curve.get("mjd"), curve.get("mag", curve.get("maglim"))
            if isinstance(mjds, list | tuple) and isinstance(mags, list | tuple):  # an odd value: no limit
                found[str(band)] = [(float(t), float(m)) for t, m in zip(mjds, mags, strict=False)
                                    if finite(t) and finite(m)]
    return found


def _band_marks(points: Sequence[tuple[float, float, float, bool]], colour: str,
                x0: float, sx: float, y0: float, sy: float) -> list[str]:
    """A band's points as three paths, not an element a point: error bars, dots (a zero-length
    stroke with round caps draws a disc) and the hollow centres of negative differences. A
    light curve of a hundred points is then a few hundred bytes of path data, not a few kB."""
    bars, dots, hollow = [], [], []
    for when, mag, error, positive in points:
        x = f"M{LEFT + (when - x0) * sx:.1f} "
        y = TOP + (mag - y0) * sy
        dot = f"{x}{y:.1f}h0"
        dots.append(dot)
        if error:
            half = error * sy
            bars.append(f"{x}{y - half:.1f}V{y + half:.1f}")
        if not positive:
            hollow.append(dot)
    parts = [f'<path class="bars" d="{"".join(bars)}" stroke="{colour}"/>'] if bars else []
    parts.append(f'<path class="points" d="{"".join(dots)}" stroke="{colour}" stroke-width="8" '
                 'stroke-linecap="round"/>')
    if hollow:
        parts.append(f'<path class="hollow" d="{"".join(hollow)}" stroke="#fff" stroke-width="6" '
                     'stroke-linecap="round"/>')
    return parts


def light_curve(slot: Mapping[str, Any]) -> str:
    """The per-band light curve: magnitude (bright up) against MJD, error bars, a colour
    per band, negative differences hollow, upper limits as open triangles; '' without points."""
    curve = slot.get("light_curve")
    bands = {str(band): _points(data) for band, data in curve.items() if isinstance(data, Mapping)} \
        if isinstance(curve, Mapping) else {}
    bands = {band: points for band, points in bands.items() if points}
    limits = _limits(slot)
    times, mags, errors = [], [], []
    for points in bands.values():
        for when, mag, error, _ in points:
            times.append(when)
            mags.append(mag)
            errors.append(error)
    for pairs in limits.values():
        for when, mag in pairs:
            times.append(when)
            mags.append(mag)
    if not times:
        return ""
    t0, t1 = min(times), max(times)
    pad_t = max((t1 - t0) * 0.05, 0.5)
    m0, m1 = min(mags), max(mags)
    pad_m = max((m1 - m0) * 0.08, max(errors, default=0.0), 0.2)
    x_range, y_range = (t0 - pad_t, t1 + pad_t), (m0 - pad_m, m1 + pad_m)
    if not all(math.isfinite(high - low) for low, high in (x_range, y_range)):
        return ""  # values no float range spans (a hand-edited ±1e308): nothing to draw
    frame = _Frame(x_range, y_range, flip_y=True)
    parts = frame.axes("MJD (days)", "magnitude (AB, brighter up)")
    legend = []
    x0, sx = frame.x[0], frame.w / (frame.x[1] - frame.x[0])
    y0, sy = frame.y[0], frame.h / (frame.y[1] - frame.y[0])
    for band in sorted(set(bands) | set(limits), key=lambda b: ("gri".find(b) % 10, b)):
        colour = BAND_COLOURS.get(band, OTHER_COLOUR)
        if band in bands:
            parts += _band_marks(bands[band], colour, x0, sx, y0, sy)
            legend.append((f'<circle r="3.5" fill="{colour}" stroke="{colour}"/>', f"{band} band"))
        if band in limits:
            triangles = "".join(f"M{frame.px(when) - 4:.1f} {frame.py(mag) - 3:.1f}h8l-4 7z"
                                for when, mag in limits[band])
            parts.append(f'<path class="limits" d="{triangles}" fill="none" stroke="{colour}"/>')
            legend.append((f'<path d="M-4 -3h8l-4 7z" fill="none" stroke="{colour}"/>', f"{band} upper limit"))
    if any(not positive for points in bands.values() for *_, positive in points):
        legend.append(('<circle r="3.5" fill="#fff" stroke="#333"/>', "negative difference"))
    return _svg(f"light curve of {slot.get('slot_id')}", parts + _legend(legend))


def _offset(ra: float, dec: float, ra0: float, dec0: float) -> tuple[float, float]:
    """Degrees east and north of (ra0, dec0) on the tangent plane (gnomonic)."""
    a, d, a0, d0 = map(math.radians, (ra, dec, ra0, dec0))
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    if cos_c <= 0:
        return math.nan, math.nan
    x = math.cos(d) * math.sin(a - a0) / cos_c
    y = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cos_c
    return math.degrees(x), math.degrees(y)


def region_outline(region: Mapping[str, float]) -> list[tuple[float, float]]:
    """The error region's outline in tangent-plane degrees: a circle (``radius_deg``) or an
    ellipse of asymmetric half-axes (``east``, ``west``, ``north``, ``south``, degrees on the sky)."""
    if "radius_deg" in region:
        r = region["radius_deg"]
        east = west = north = south = r
    else:
        east, west, north, south = (region[k] for k in ("east", "west", "north", "south"))
    outline = []
    for step in range(73):
        angle = 2 * math.pi * step / 72
        c, s = math.cos(angle), math.sin(angle)
        outline.append(((east if c > 0 else west) * c, (north if s > 0 else south) * s))
    return outline


def sky_zoom(event_id: str, ra0: float, dec0: float, region: Mapping[str, float] | None,
             candidates: Sequence[tuple[str, float, float]], region_label: str) -> str:
    """The event's neighbourhood: its position, its error region and the candidates
    (numbered by rank), east to the left as on the sky."""
    outline = region_outline(region) if region else []
    placed = [(name, *_offset(ra, dec, ra0, dec0)) for name, ra, dec in candidates]
    placed = [(name, x, y) for name, x, y in placed if math.isfinite(x)]
    reach = max([abs(v) for point in outline for v in point] + [abs(v) for _, x, y in placed for v in (x, y)]
                + [0.25])
    reach *= 1.15
    frame = _Frame((-reach, reach), (-reach, reach), flip_x=True)
    frame.w = frame.h  # square: a degree is a degree both ways
    parts = frame.axes("east offset ΔRA·cos δ (deg, east left)", "north offset ΔDec (deg)")
    legend = [('<path d="M-5 0h10M0 -5v10" stroke="#000" stroke-width="2"/>', f"{event_id}")]
    if outline:
        path = "M" + "L".join(f"{frame.px(x):.1f} {frame.py(y):.1f}" for x, y in outline) + "Z"
        parts.append(f'<path d="{path}" fill="#1f77b4" fill-opacity="0.12" stroke="#1f77b4"/>')
        legend.append(('<rect x="-6" y="-5" width="12" height="10" fill="#1f77b4" fill-opacity="0.12" '
                       'stroke="#1f77b4"/>', region_label))
    parts.append(f'<path d="M{frame.px(0) - 7:.1f} {frame.py(0):.1f}h14M{frame.px(0):.1f} {frame.py(0) - 7:.1f}v14" '
                 'stroke="#000" stroke-width="2"/>')
    for rank, (name, x, y) in enumerate(placed, 1):
        parts.append(f'<g><title>{text(name)}</title><circle cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="4" '
                     f'fill="#ff7f0e" stroke="#000"/><text x="{frame.px(x) + 6:.1f}" y="{frame.py(y) - 5:.1f}">'
                     f"{rank}</text></g>")
    if placed:
        legend.append(('<circle r="4" fill="#ff7f0e" stroke="#000"/>', "candidates (by rank)"))
    left = LEFT + frame.w + 16
    return _svg(f"sky around {event_id}", parts + _legend(legend, left), int(left + 200))
