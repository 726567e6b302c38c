"""FITS cutouts → PNG thumbnails, with the stretch astronomers use.

Science and template images: ``ZScaleInterval`` (IRAF's zscale) limits, linear. The
difference image: limits symmetric around zero (± the larger zscale limit), so zero is
mid-grey, a brightening is white and a fading black. North up (FITS row 0 at the
bottom). A thumbnail is made once: a rerun reuses it while it is newer than its FITS.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

MISSING, UNREADABLE = "missing", "unreadable"
#: What the consumer writes in a cutout cell; anything else (an edited CSV, an added column
#: written by ``process_alert``) is never opened: no path can lead the report outside cutouts/.
CUTOUT_CELL = re.compile(r"cutouts/[A-Za-z0-9_-]+\.fits")


def thumbnail_name(cutout_path: str) -> str:
    """``cutouts/123_science_20261120_020315.fits`` → ``thumbs/123_science_20261120_020315.png``."""
    return f"thumbs/{Path(cutout_path).stem}.png"


def stretch(data: np.ndarray, kind: str) -> np.ndarray:
    """8-bit grey levels of a 2-D image (non-finite pixels black)."""
    from astropy.visualization import ZScaleInterval

    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype=np.uint8)
    low, high = ZScaleInterval().get_limits(data[finite])
    if kind == "difference":
        high = max(abs(low), abs(high)) or 1.0
        low = -high
    if high <= low:
        high = low + 1.0
    scaled = np.clip((np.where(finite, data, low) - low) / (high - low), 0.0, 1.0)
    return np.flipud((scaled * 255 + 0.5).astype(np.uint8))


def render(fits_path: Path, png_path: Path, kind: str) -> str:
    """Write ``png_path`` from the first image HDU of ``fits_path``; returns "ok", or
    UNREADABLE when the file is not a 2-D FITS image (never raises for bad input)."""
    from astropy.io import fits
    from PIL import Image

    try:
        with warnings.catch_warnings():  # "file may have been truncated": we say so ourselves
            warnings.simplefilter("ignore")
            data = fits.getdata(fits_path, memmap=False)
        if data is None or data.ndim != 2 or 0 in data.shape:
            return UNREADABLE
        pixels = stretch(np.asarray(data, dtype=np.float64), kind)
    except (OSError, ValueError, TypeError, IndexError):
        return UNREADABLE
    temp = png_path.with_name(f".{png_path.name}.tmp-{os.getpid()}")
    try:
        Image.fromarray(pixels).save(temp, format="PNG", compress_level=1)
        os.replace(temp, png_path)
    finally:
        if temp.exists():
            temp.unlink()
    return "ok"


def thumbnail(output_dir: Path, reports_dir: Path, cutout_path: str, kind: str) -> tuple[str, str | None]:
    """(status, thumbnail path relative to ``reports_dir``) for one CSV cutout cell."""
    if not cutout_path:
        return MISSING, None
    if not CUTOUT_CELL.fullmatch(cutout_path):  # only the consumer's own cutouts/<name>.fits
        return UNREADABLE, None
    fits_path = output_dir / cutout_path
    if not fits_path.is_file():
        return MISSING, None
    name = thumbnail_name(cutout_path)
    png_path = reports_dir / name
    try:
        if png_path.stat().st_mtime_ns >= fits_path.stat().st_mtime_ns:
            return "ok", name  # made by an earlier run
    except FileNotFoundError:
        pass
    status = render(fits_path, png_path, kind)
    return status, name if status == "ok" else None
