"""Which way north and east point in a cutout, and the cutout turned north up, east left.

What a cutout carries decides it:

* a celestial WCS (``CTYPEn`` ``RA---…``/``DEC--…`` with ``CDi_j``, or ``PCi_j`` × ``CDELTn``,
  or ``CDELTn`` with ``CROTA2``): its linear part at the reference pixel, which for a
  cutout a few arcseconds wide is the local sky (parity included);
* else ``ROTPA``, Rubin's rotation angle: the position angle (north through east) of the
  image's +y axis, on a sky of the usual parity (east 90° counter-clockwise from north
  when north is up), which is how Rubin's cutouts without a WCS come;
* else nothing: the image is shown as stored and the page says "orientation unknown".

An orientation is the 2×2 matrix taking a pixel step (dx, dy) to (east, north), in any
unit; ``north_up`` resamples the image through it (bilinear; pixels that come from
outside the cutout are NaN, drawn black). A cutout already north up is returned as it is,
a quarter turn or a flip is a copy of pixels, not an interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

Matrix = tuple[float, float, float, float]  # (a, b, c, d): east = a·dx + b·dy, north = c·dx + d·dy


def orientation(cards: Mapping[str, Any]) -> Matrix | None:
    """The (east, north) ← (dx, dy) matrix of a header, or None when it gives none.
    ``cards`` maps keywords to values, as read (text, with FITS quotes or not) or typed."""
    ctype1, ctype2 = _text(cards.get("CTYPE1")), _text(cards.get("CTYPE2"))
    if ctype1[:4] in ("RA--", "DEC-") and ctype2[:4] in ("RA--", "DEC-") and ctype1[:4] != ctype2[:4]:
        matrix = _linear_part(cards)
        if matrix is not None:
            a, b, c, d = matrix
            return matrix if ctype1.startswith("RA") else (c, d, a, b)
    angle = _number(cards.get("ROTPA"))
    if angle is None:
        return None
    theta = math.radians(angle)
    return (-math.cos(theta), math.sin(theta), math.sin(theta), math.cos(theta))


def north_up(data: np.ndarray, matrix: Matrix) -> np.ndarray | None:
    """``data`` (row 0 = y 0) resampled so that +y is north and -x east, same shape and
    pixel scale, about the image centre; None when the matrix is singular."""
    a, b, c, d = matrix
    det = a * d - b * c
    if not math.isfinite(det) or det == 0:
        return None
    scale = math.sqrt(abs(det))
    # The inverse, at unit scale: (dx, dy) of a display step (east, north).
    inverse = [value / (det / scale) for value in (d, -b, -c, a)]
    # A quarter turn or a flip (the usual case, a cutout already north up) maps pixels onto
    # pixels: snap away the rounding so they are copied, not interpolated.
    inverse = [round(value) if abs(value - round(value)) < 1e-9 else value for value in inverse]
    i00, i01, i10, i11 = inverse
    if (i00, i01, i10, i11) == (-1, 0, 0, 1):
        return data  # already north up, east left
    east, north = _display_offsets(data.shape)
    height, width = data.shape
    sx = i00 * east + i01 * north + (width - 1) / 2
    sy = i10 * east + i11 * north + (height - 1) / 2
    if all(isinstance(value, int) for value in inverse):
        return _copied(data, sx, sy)
    return _bilinear(data, sx, sy)


@lru_cache(maxsize=8)
def _display_offsets(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, its offset from the centre to the east and to the north (display:
    x to the west, y to the north)."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    east, north = -(xx - (width - 1) / 2), yy - (height - 1) / 2
    east.flags.writeable = north.flags.writeable = False
    return east, north


def _copied(data: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    height, width = data.shape
    columns, rows = np.rint(sx).astype(int), np.rint(sy).astype(int)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    return np.where(inside, data[np.clip(rows, 0, height - 1), np.clip(columns, 0, width - 1)], np.nan)


def _bilinear(data: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    height, width = data.shape
    edge = 1e-9
    inside = (sx >= -edge) & (sx <= width - 1 + edge) & (sy >= -edge) & (sy <= height - 1 + edge)
    x0 = np.clip(np.floor(sx).astype(int), 0, max(width - 2, 0))
    y0 = np.clip(np.floor(sy).astype(int), 0, max(height - 2, 0))
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = np.clip(sx - x0, 0, 1), np.clip(sy - y0, 0, 1)
    top = data[y0, x0] * (1 - fx) + data[y0, x1] * fx
    bottom = data[y1, x0] * (1 - fx) + data[y1, x1] * fx
    return np.where(inside, top * (1 - fy) + bottom * fy, np.nan)


def _linear_part(cards: Mapping[str, Any]) -> Matrix | None:
    cd = [_number(cards.get(f"CD{i}_{j}")) for i in (1, 2) for j in (1, 2)]
    if any(value is not None for value in cd):
        matrix = tuple(value or 0.0 for value in cd)
    else:
        cdelt1, cdelt2 = _number(cards.get("CDELT1")), _number(cards.get("CDELT2"))
        if cdelt1 is None or cdelt2 is None or cdelt1 == 0 or cdelt2 == 0:
            return None
        pc = [_number(cards.get(f"PC{i}_{j}")) for i in (1, 2) for j in (1, 2)]
        if any(value is not None for value in pc):
            p11, p12, p21, p22 = (value if value is not None else float(index in (0, 3))
                                  for index, value in enumerate(pc))
        else:
            rho = math.radians(_number(cards.get("CROTA2")) or 0.0)
            p11, p12 = math.cos(rho), -math.sin(rho) * cdelt2 / cdelt1
            p21, p22 = math.sin(rho) * cdelt1 / cdelt2, math.cos(rho)
        matrix = (cdelt1 * p11, cdelt1 * p12, cdelt2 * p21, cdelt2 * p22)
    a, b, c, d = matrix
    finite = all(math.isfinite(value) for value in matrix)
    return matrix if finite and math.isfinite(a * d - b * c) and a * d - b * c != 0 else None


def _text(value: Any) -> str:
    return str(value or "").strip().strip("'").strip().upper()


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip().strip("'").replace("D", "E"))
    except ValueError:
        return None
    return number if math.isfinite(number) else None
