"""FITS cutouts → PNG thumbnails, with the stretch astronomers use; light-curve tables →
sparklines.

Science and template images: from zscale's lower limit (IRAF's, as astropy's
``ZScaleInterval`` computes them) to the image's 99.9th percentile (or zscale's upper limit
when that is higher), through an asinh stretch (astropy's ``AsinhStretch``) whose linear
part reaches at least zscale's upper limit: the sky and faint sources look as under
zscale, and a host galaxy's core, which zscale alone clips to a flat disc, keeps its
shape (at most 0.1 % of the pixels are clipped). The difference image: the same, symmetric
around zero, so zero is mid-grey, a brightening is white and a fading black. North up,
east left, from the cutout's WCS or ``ROTPA`` (``orientation``); a cutout with neither is
shown as stored (FITS row 0 at the bottom) and its thumbnail's name says so
(``ORIENTATION_UNKNOWN``). A thumbnail is made once: a rerun reuses it while it is newer
than its FITS. Cutouts are rendered in chunks so that one zscale fit serves a whole chunk.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alert_pipeline.consumer.lightcurve import read_lightcurve
from alert_pipeline.consumer.records import LIGHTCURVE
from alert_pipeline.report.images import png_bytes, png_text, read_cutout
from alert_pipeline.report.orientation import north_up, orientation
from alert_pipeline.report.sparkline import Scale, sparkline
from alert_pipeline.report.zscale import zscale_limits

MISSING, UNREADABLE = "missing", "unreadable"
#: What the consumer writes in a cutout cell; anything else (an edited CSV, an added column
#: written by ``process_alert``) is never opened: no path can lead the report outside cutouts/.
CUTOUT_CELL = re.compile(r"cutouts/[A-Za-z0-9_-]+\.fits")

#: Pixels held for one zscale fit at most (32 MB as float64); a chunk of 90 Rubin cutouts
#: (60x60) holds 0.3 M, so only unusually large cutouts are fitted in smaller groups.
PENDING_PIXELS = 2**22
#: The stretch's top: this percentile of the pixels (0.1 % may be clipped: a hot pixel or a
#: cosmic ray does not darken the rest); astropy's AsinhStretch default softening.
TOP_PERCENTILE, ASINH_SOFTENING = 99.9, 0.1
#: The PNG text chunk holding a sparkline's scale (JSON), read back when the PNG is reused.
SCALE_KEY = "sparkline-scale"
Job = tuple[str, str]  # (the CSV's cell, "science" | "template" | "difference" | LIGHTCURVE)
Result = tuple[str, "str | None"]  # (status, thumbnail path relative to the reports folder)
#: Thumbnail name endings: turned north up; shown as stored (no WCS, no ROTPA); a sparkline.
NORTH_UP, ORIENTATION_UNKNOWN, SPARKLINE = ".n.png", ".u.png", ".lc.png"


def thumbnail_name(cutout_path: str, ending: str = NORTH_UP) -> str:
    """``cutouts/123_science_20261120_020315.fits`` → ``thumbs/123_science_20261120_020315.n.png``."""
    return f"thumbs/{Path(cutout_path).stem}{ending}"


def stretch(data: np.ndarray, kind: str, limits: tuple[float, float] | None = None) -> np.ndarray:
    """8-bit grey levels of a 2-D image (non-finite pixels black); ``limits`` are the
    image's zscale limits when the caller has computed them already."""
    finite = np.isfinite(data)
    all_finite = bool(finite.all())
    if not all_finite and not finite.any():
        return np.zeros(data.shape, dtype=np.uint8)
    values = data if all_finite else data[finite]
    if limits is None:
        (limits,) = zscale_limits([values])
    low, high = limits
    if kind == "difference":
        top = max(abs(low), abs(high), float(np.percentile(np.abs(values), TOP_PERCENTILE))) or 1.0
        shown = np.clip((data if all_finite else np.where(finite, data, -top)) / top, -1.0, 1.0)
        grey = 0.5 + 0.5 * asinh_stretch(shown, max(abs(low), abs(high)) / top)
    else:
        top = max(high, float(np.percentile(values, TOP_PERCENTILE)))
        top = top if top > low else low + 1.0
        shown = np.clip(((data if all_finite else np.where(finite, data, low)) - low) / (top - low), 0.0, 1.0)
        grey = asinh_stretch(shown, (high - low) / (top - low))
    return np.flipud((grey * 255.0 + 0.5).astype(np.uint8))


def asinh_stretch(values: np.ndarray, zscale_part: float) -> np.ndarray:
    """astropy's ``AsinhStretch(a)`` of values in [-1, 1] (odd: a negative value is the
    mirror of its positive one). ``a`` is ASINH_SOFTENING, or less when zscale's range is a
    smaller part of the interval, so the noise is never squeezed into a few grey levels."""
    softening = min(ASINH_SOFTENING, zscale_part) if zscale_part > 0 else ASINH_SOFTENING
    return np.arcsinh(values / softening) / np.arcsinh(1.0 / softening)


def render_thumbnails(output_dir: Path, reports_dir: Path, jobs: Sequence[Job]) -> list[Result]:
    """Each job's (status, thumbnail): made now, reused, MISSING or UNREADABLE. Never raises
    for bad input: a damaged cutout is UNREADABLE and the others are still made. Images
    wait to be fitted together until they hold ``PENDING_PIXELS``: a chunk of unusually
    large cutouts costs memory one image at a time, not a chunk at a time."""
    results: list[Result] = []
    pending: list[tuple[np.ndarray, str, Path]] = []
    held = 0  # pixels in pending
    for cutout_path, kind in jobs:
        endings = (SPARKLINE,) if kind == LIGHTCURVE else (NORTH_UP, ORIENTATION_UNKNOWN)
        status, name = _classify(output_dir, reports_dir, cutout_path, endings)
        if status == "render" and kind == LIGHTCURVE:
            status, name = _render_sparkline(output_dir / cutout_path, reports_dir, cutout_path)
        elif status == "render":
            data = _north_up_image(output_dir / cutout_path)
            if data is None:
                status, name = UNREADABLE, None
            else:
                image, ending = data
                name = thumbnail_name(cutout_path, ending)
                pending.append((image, kind, reports_dir / name))
                held += image.size
                status = "ok"
        results.append((status, name))
        if held >= PENDING_PIXELS:
            _render(pending)
            pending, held = [], 0
    _render(pending)
    return results


def _render(pending: list[tuple[np.ndarray, str, Path]]) -> None:
    """Stretch and save images, with one zscale fit for all of them."""
    finite = [_finite_values(data) for data, _, _ in pending]
    limits = iter(zscale_limits([values for values in finite if values is not None]))
    for (data, kind, png_path), values in zip(pending, finite, strict=True):
        _save_png(stretch(data, kind, None if values is None else next(limits)), png_path)


def _north_up_image(path: Path) -> tuple[np.ndarray, str] | None:
    """The cutout's pixels turned north up (NORTH_UP), or as stored (ORIENTATION_UNKNOWN)."""
    cutout = read_cutout(path)
    if cutout is None:
        return None
    data, cards = cutout
    matrix = orientation(cards)
    turned = north_up(data, matrix) if matrix is not None else None
    return (turned, NORTH_UP) if turned is not None else (data, ORIENTATION_UNKNOWN)


def _render_sparkline(table_path: Path, reports_dir: Path, cell: str) -> Result:
    table = read_lightcurve(table_path)
    if table is None:
        return UNREADABLE, None
    bands = [band.decode("ascii", "replace").strip() for band in table["band"]]
    pixels, scale = sparkline(table["midpointMjdTai"].astype(np.float64), bands,
                              table["psfFlux"].astype(np.float64))
    name = thumbnail_name(cell, SPARKLINE)
    _save_png(pixels, reports_dir / name, {SCALE_KEY: json.dumps(scale.as_dict())})
    return "ok", name


def sparkline_scale(png_path: Path) -> Scale | None:
    """The scale a sparkline was drawn with (kept in its PNG), or None when the PNG has none
    (made by an earlier version, or damaged): the page then shows the curve unlabelled."""
    try:
        fields = json.loads(png_text(png_path).get(SCALE_KEY, "null"))
        scale = Scale(**fields) if isinstance(fields, dict) else None
    except (ValueError, TypeError):
        return None
    if scale is None or not _sane(scale):
        return None
    return scale


def _sane(scale: Scale) -> bool:
    """Every field of the type the page formats (a PNG is a file anyone could have edited)."""
    numbers = (scale.bright, scale.faint, scale.first_mjd, scale.last_mjd)
    counts = (scale.points, scale.cut_gaps, scale.non_positive)
    return (all(value is None or (isinstance(value, float | int) and math.isfinite(value)) for value in numbers)
            and all(isinstance(count, int) and 0 <= count < 10**9 for count in counts))


def _classify(output_dir: Path, reports_dir: Path, cutout_path: str,
              endings: tuple[str, ...]) -> tuple[str, str | None]:
    """MISSING, UNREADABLE, "ok" (an earlier run made it) or "render" (make it now)."""
    if not cutout_path:
        return MISSING, None
    if not CUTOUT_CELL.fullmatch(cutout_path):  # only the consumer's own cutouts/<name>.fits
        return UNREADABLE, None
    try:
        fits_made = (output_dir / cutout_path).stat().st_mtime_ns
    except FileNotFoundError:
        return MISSING, None
    for ending in endings:
        name = thumbnail_name(cutout_path, ending)
        try:
            made = (reports_dir / name).stat()
            if made.st_mtime_ns >= fits_made and made.st_size:  # empty: torn by a power cut
                return "ok", name
        except FileNotFoundError:
            pass
    return "render", None


def _finite_values(data: np.ndarray) -> np.ndarray | None:
    """The pixels zscale looks at, or None when there are none."""
    finite = np.isfinite(data)
    if finite.all():
        return data
    return data[finite] if finite.any() else None


def _save_png(pixels: np.ndarray, png_path: Path, text: dict[str, str] | None = None) -> None:
    """Write atomically: a thumbnail is either whole or absent, so reuse can trust it."""
    temp = png_path.with_name(f".{png_path.name}.tmp-{os.getpid()}")
    try:
        temp.write_bytes(png_bytes(pixels, text))
        os.replace(temp, png_path)
    finally:
        if temp.exists():
            temp.unlink()
