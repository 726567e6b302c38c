"""Thumbnails north up, east left, from what a cutout carries: a source placed north (or
east) of the centre on the sky must come out above (or left of) the centre of the PNG.

Headers as Rubin's cutouts come (no CTYPE, a ``ROTPA`` that changes from row to row) and
with a celestial WCS of any rotation and parity (the source's pixel position then comes
from astropy's ``world_to_pixel``, not from the code under test)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from alert_pipeline.report.thumbnails import NORTH_UP, ORIENTATION_UNKNOWN, render_thumbnails

SIZE, OFFSET = 61, 12  # pixels; the source sits OFFSET pixels from the centre on the sky
CENTRE = (SIZE - 1) / 2


def _image_with_source(x: float, y: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    rng = np.random.default_rng(5)
    return (rng.normal(0, 1.0, (SIZE, SIZE)) + 500 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2.0)).astype(np.float32)


def _rotpa_pixel(rotpa: float, east: float, north: float) -> tuple[float, float]:
    """Where a sky offset (east, north) lands in a ROTPA-only cutout, from the definition:
    the +y axis points to position angle ROTPA (north through east) and the +x axis 90°
    clockwise of it on the sky as seen (east left of north, the usual parity)."""
    theta = math.radians(rotpa)
    y_axis = np.array([math.sin(theta), math.cos(theta)])  # (east, north) of a +y step
    x_axis = np.array([-math.cos(theta), math.sin(theta)])  # 90° clockwise of +y, seen from the front
    dx, dy = np.linalg.solve(np.column_stack([x_axis, y_axis]), [east, north])
    return CENTRE + dx, CENTRE + dy


def _write(path: Path, data: np.ndarray, header: fits.Header) -> str:
    fits.PrimaryHDU(data, header=header).writeto(path)
    return f"cutouts/{path.name}"


def _brightest(png: Path) -> tuple[float, float]:
    """(row, column) of the source: the centre of its brightest pixels (within 10 grey
    levels of the peak), row 0 at the top as displayed."""
    pixels = np.asarray(Image.open(io.BytesIO(png.read_bytes())))
    rows, columns = np.nonzero(pixels >= pixels.max() - 10)
    return float(rows.mean()), float(columns.mean())


def _render(tmp_path: Path, cells: list[str]) -> list[tuple[str, str | None]]:
    reports = tmp_path / "reports"
    (reports / "thumbs").mkdir(parents=True, exist_ok=True)
    return render_thumbnails(tmp_path, reports, [(cell, "science") for cell in cells])


@pytest.mark.parametrize("rotpa", [38.0, 120.0, 189.0, 270.0, 333.3])
@pytest.mark.parametrize(("east", "north", "expected"), [(0, OFFSET, (-OFFSET, 0)), (OFFSET, 0, (0, -OFFSET))])
def test_rubin_cutouts_without_wcs_are_turned_by_rotpa(tmp_path, rotpa, east, north, expected):
    (tmp_path / "cutouts").mkdir()
    header = fits.Header({"ROTPA": rotpa, "BUNIT": "nJy"})  # as Rubin's: no CTYPE, a rotation angle
    x, y = _rotpa_pixel(rotpa, east, north)
    cell = _write(tmp_path / "cutouts" / "1_science_20260318_030000.fits", _image_with_source(x, y), header)
    ((status, name),) = _render(tmp_path, [cell])
    assert status == "ok" and name.endswith(NORTH_UP)
    row, column = _brightest(tmp_path / "reports" / name)
    # north: up (a smaller row); east: left (a smaller column)
    assert abs(row - (CENTRE + expected[0])) <= 1 and abs(column - (CENTRE + expected[1])) <= 1


@pytest.mark.parametrize(("rotation", "flip"), [(0.0, False), (25.0, False), (-140.0, False), (70.0, True)])
def test_a_celestial_wcs_wins_over_rotpa_whatever_its_rotation_and_parity(tmp_path, rotation, flip):
    (tmp_path / "cutouts").mkdir()
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [CENTRE + 1, CENTRE + 1]
    wcs.wcs.crval = [150.0, 2.2]
    scale = 0.2 / 3600
    rho = math.radians(rotation)
    pc = np.array([[math.cos(rho), -math.sin(rho)], [math.sin(rho), math.cos(rho)]])
    wcs.wcs.cd = np.diag([-scale if not flip else scale, scale]) @ pc
    centre = SkyCoord(150.0, 2.2, unit="deg")
    north = centre.directional_offset_by(0 * u.deg, OFFSET * scale * u.deg)
    x, y = wcs.world_to_pixel(north)
    header = wcs.to_header()
    header["ROTPA"] = 77.0  # a contradicting angle: the WCS is what counts
    cell = _write(tmp_path / "cutouts" / "2_science_20260318_030000.fits", _image_with_source(float(x), float(y)),
                  header)
    ((status, name),) = _render(tmp_path, [cell])
    assert status == "ok" and name.endswith(NORTH_UP)
    row, column = _brightest(tmp_path / "reports" / name)
    assert abs(row - (CENTRE - OFFSET)) <= 1 and abs(column - CENTRE) <= 1


def test_a_cutout_with_neither_is_shown_as_stored_and_says_so(tmp_path):
    (tmp_path / "cutouts").mkdir()
    cell = _write(tmp_path / "cutouts" / "3_science_20260318_030000.fits",
                  _image_with_source(CENTRE + 7, CENTRE + 12), fits.Header({"BUNIT": "nJy"}))
    ((status, name),) = _render(tmp_path, [cell])
    assert status == "ok" and name.endswith(ORIENTATION_UNKNOWN)
    row, column = _brightest(tmp_path / "reports" / name)
    assert abs(row - (CENTRE - 12)) <= 0.5 and abs(column - (CENTRE + 7)) <= 0.5  # as stored: row 0 at the bottom
    again = _render(tmp_path, [cell])  # reused, and still known to be unoriented
    assert again == [("ok", name)]
