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
outside the cutout are NaN, drawn black).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def orientation(cards: Mapping[str, Any]) -> np.ndarray | None:
    """The (east, north) ← (dx, dy) matrix of a header, or None when it gives none.
    ``cards`` maps keywords to values, as read (text, with FITS quotes or not) or typed."""
    ctype1, ctype2 = _text(cards.get("CTYPE1")), _text(cards.get("CTYPE2"))
    if ctype1[:4] in ("RA--", "DEC-") and ctype2[:4] in ("RA--", "DEC-") and ctype1[:4] != ctype2[:4]:
        matrix = _linear_part(cards)
        if matrix is not None:
            return matrix if ctype1.startswith("RA") else matrix[::-1]
    angle = _number(cards.get("ROTPA"))
    if angle is None:
        return None
    theta = math.radians(angle)
    return np.array([[-math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]])


def north_up(data: np.ndarray, matrix: np.ndarray) -> np.ndarray | None:
    """``data`` (row 0 = y 0) resampled so that +y is north and -x east, same shape and
    pixel scale, about the image centre; None when the matrix is singular."""
    scale = math.sqrt(abs(float(np.linalg.det(matrix))))
    if not math.isfinite(scale) or scale == 0:
        return None
    inverse = np.linalg.inv(matrix / scale)
    # A quarter turn or a flip (the usual case, a cutout already north up) maps pixels onto
    # pixels: snap away the rounding so they are copied, not interpolated.
    inverse = np.where(np.abs(inverse - np.round(inverse)) < 1e-9, np.round(inverse), inverse)
    height, width = data.shape
    cy, cx = (height - 1) / 2, (width - 1) / 2
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    east, north = -(xx - cx), yy - cy  # display: x to the west (right), y to the north (up)
    sx = inverse[0, 0] * east + inverse[0, 1] * north + cx
    sy = inverse[1, 0] * east + inverse[1, 1] * north + cy
    return _bilinear(data, sx, sy)


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


def _linear_part(cards: Mapping[str, Any]) -> np.ndarray | None:
    cd = [[_number(cards.get(f"CD{i}_{j}")) for j in (1, 2)] for i in (1, 2)]
    if any(value is not None for row in cd for value in row):
        matrix = np.array([[value or 0.0 for value in row] for row in cd])
    else:
        cdelt = [_number(cards.get(f"CDELT{i}")) for i in (1, 2)]
        if cdelt[0] is None or cdelt[1] is None:
            return None
        pc = [[_number(cards.get(f"PC{i}_{j}")) for j in (1, 2)] for i in (1, 2)]
        if any(value is not None for row in pc for value in row):
            pc_matrix = np.array([[value if value is not None else float(i == j) for j, value in enumerate(row)]
                                  for i, row in enumerate(pc)])
        else:
            rho = math.radians(_number(cards.get("CROTA2")) or 0.0)
            pc_matrix = np.array([[math.cos(rho), -math.sin(rho) * cdelt[1] / cdelt[0]],
                                  [math.sin(rho) * cdelt[0] / cdelt[1], math.cos(rho)]])
        matrix = np.diag(cdelt) @ pc_matrix
    return matrix if np.all(np.isfinite(matrix)) and np.linalg.det(matrix) != 0 else None


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
