"""The report's own image code against the libraries it stands in for on the hot path:
zscale limits against astropy's ``ZScaleInterval``, the cutout reader against
``astropy.io.fits.getdata``, the PNG writer against Pillow's decoder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.visualization import ZScaleInterval
from PIL import Image

from alert_pipeline.report.images import _plain_primary_image, png_bytes, read_image
from alert_pipeline.report.zscale import zscale_limits
from devtools.factory import make_cutout


def _images(rng: np.random.Generator) -> list[np.ndarray]:
    """Noise of every scale and offset, cosmic rays, bright stars, constant and tiny
    images, integer counts, one-row strips, and Rubin-like cutouts."""
    images = []
    for index in range(240):
        shape = (int(rng.integers(1, 130)), int(rng.integers(1, 130))) if index % 3 == 0 else (60, 60)
        image = rng.normal(rng.uniform(-500, 1e5), rng.uniform(1e-3, 300), shape)
        if index % 4 == 0:
            image[rng.random(shape) < 0.03] *= rng.uniform(-50, 50)
        if index % 5 == 0:
            image = np.round(image)
        if index % 9 == 0:
            image[:] = rng.uniform(-10, 10)
        images.append(image)
    images += [np.array([[7.0]]), np.array([[1.0, 2.0]]), np.arange(5.0)[None, :], np.arange(5000.0)[None, :]]
    images += [fits.getdata(io.BytesIO(make_cutout(size, seed))).astype(np.float64)
               for size, seed in ((30, 1), (60, 2), (67, 3), (120, 4))]
    return images


def test_zscale_limits_are_astropys():
    images = [image.ravel() for image in _images(np.random.default_rng(14))]
    ours = zscale_limits(images)  # all at once: groups of equal sample counts fitted together
    for image, (low, high) in zip(images, ours, strict=True):
        ref_low, ref_high = ZScaleInterval().get_limits(image)
        scale = abs(ref_low) + abs(ref_high) + 1.0
        assert low == pytest.approx(ref_low, abs=1e-9 * scale) and high == pytest.approx(ref_high, abs=1e-9 * scale)
    one_by_one = [zscale_limits([image])[0] for image in images[:40]]
    assert one_by_one == ours[:40]  # a chunk's neighbours never change an image's limits


def _cutout_files(tmp_path: Path) -> list[Path]:
    """Rubin-like cutouts (both layouts) and FITS images astropy writes in other ways."""
    files: dict[str, bytes | fits.HDUList] = {
        "ccddata.fits": make_cutout(67, 1),
        "psf_layout.fits": make_cutout(41, 2, psf=True),
    }
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 3000, (20, 30)).astype(np.int16)
    files["int16.fits"] = fits.HDUList([fits.PrimaryHDU(counts)])
    files["uint16_bzero.fits"] = fits.HDUList([fits.PrimaryHDU(counts.astype(np.uint16) + 40000)])
    scaled = fits.PrimaryHDU(rng.normal(0, 1, (16, 16)).astype(np.float32))
    scaled.scale("int16", bscale=0.001, bzero=3.0)
    files["bscale.fits"] = fits.HDUList([scaled])
    files["float64_nan.fits"] = fits.HDUList([fits.PrimaryHDU(np.where(rng.random((9, 11)) < 0.2, np.nan, 1.5))])
    files["uint8.fits"] = fits.HDUList([fits.PrimaryHDU(rng.integers(0, 255, (5, 7)).astype(np.uint8))])
    files["in_extension.fits"] = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(counts.astype(np.float32))])
    long_header = fits.PrimaryHDU(counts.astype(np.float32))
    for line in range(120):  # a header of four blocks
        long_header.header.add_history(f"processing step {line}")
    files["long_header.fits"] = fits.HDUList([long_header])
    files["cube.fits"] = fits.HDUList([fits.PrimaryHDU(np.zeros((2, 3, 4), np.float32))])
    paths = []
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.writeto(path)
        paths.append(path)
    return paths


def test_read_image_is_getdata(tmp_path):
    for path in _cutout_files(tmp_path):
        reference = fits.getdata(path)
        ours = read_image(path)
        if reference.ndim != 2:
            assert ours is None, path.name
            continue
        assert ours is not None and ours.dtype == np.float64, path.name
        np.testing.assert_array_equal(ours, reference.astype(np.float64), err_msg=path.name)
    # The fast path serves Rubin's plain images; scaled integers and extensions go to astropy.
    fast = {path.name for path in tmp_path.iterdir() if _plain_primary_image(path.read_bytes()) is not None}
    assert fast == {"ccddata.fits", "psf_layout.fits", "int16.fits", "float64_nan.fits", "uint8.fits",
                    "long_header.fits"}


def test_read_image_of_damaged_files_never_raises(tmp_path):
    whole = make_cutout(60, 5)
    for length in (0, 10, 2879, 2880, 3000, 5760, len(whole) - 2880, len(whole) - 1):
        path = tmp_path / f"cut_{length}.fits"
        path.write_bytes(whole[:length])
        result = read_image(path)  # None, or what astropy makes of what is there
        assert result is None or (result.ndim == 2 and result.dtype == np.float64)
    assert read_image(tmp_path / "cut_3000.fits") is None  # header whole, pixels cut
    (tmp_path / "text.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"garbage" * 500)
    assert read_image(tmp_path / "text.fits") is None
    assert read_image(tmp_path / "absent.fits") is None


def test_a_header_declaring_terabytes_is_refused_without_allocating(tmp_path):
    """A damaged or hostile header (10^6 x 10^6 float32 pixels, 3.6 TiB) in the primary HDU
    or in the extension getdata would read: None, where astropy alone tries to allocate."""
    def card(keyword: str, value: str) -> bytes:
        return f"{keyword:<8}= {value:>20}".ljust(80).encode()

    def header(*cards: bytes) -> bytes:
        return (b"".join(cards) + b"END".ljust(80)).ljust(2880)

    huge = (card("BITPIX", "-32"), card("NAXIS", "2"), card("NAXIS1", "1000000"), card("NAXIS2", "1000000"))
    primary = header(card("SIMPLE", "T"), *huge) + bytes(2880)
    empty_primary = header(card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T"))
    extension = empty_primary + header(card("XTENSION", "'IMAGE   '"), *huge, card("PCOUNT", "0"),
                                       card("GCOUNT", "1")) + bytes(2880)
    for name, content in (("primary.fits", primary), ("extension.fits", extension)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(MemoryError):  # what astropy's read into memory does with it
            fits.getdata(tmp_path / name, memmap=False)
        assert read_image(tmp_path / name) is None


@pytest.mark.parametrize("shape", [(1, 1), (67, 67), (3, 300), (200, 2)])
def test_png_bytes_decode_to_the_same_pixels(shape):
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.uint8)
    image = Image.open(io.BytesIO(png_bytes(pixels)))
    image.load()  # checks every CRC and the zlib stream
    assert image.mode == "L" and image.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_thumbnails_are_astropys_zscale_in_any_grouping(tmp_path, monkeypatch):
    """render_thumbnails over real cutouts, a damaged one, a missing one and a foreign cell:
    every PNG shows the image stretched from astropy's own ZScaleInterval limits, and
    fitting one image at a time (a tiny PENDING_PIXELS) gives byte-identical files."""
    from alert_pipeline.report import thumbnails
    output = tmp_path / "out"
    (output / "cutouts").mkdir(parents=True)
    jobs = []
    for index, (size, kind) in enumerate([(60, "science"), (41, "template"), (67, "difference"), (30, "science")]):
        name = f"cutouts/{index}_{kind}_20261123_000000.fits"
        (output / name).write_bytes(make_cutout(size, index))
        jobs.append((name, kind))
    (output / "cutouts/9_difference_20261123_000000.fits").write_bytes(make_cutout(60, 9)[:3000])
    jobs += [("cutouts/9_difference_20261123_000000.fits", "difference"), ("", "science"),
             ("../etc/passwd", "template")]

    def render(folder: str) -> tuple[list, dict[str, bytes]]:
        reports = tmp_path / folder
        (reports / "thumbs").mkdir(parents=True)
        results = thumbnails.render_thumbnails(output, reports, jobs)
        return results, {path.name: path.read_bytes() for path in (reports / "thumbs").iterdir()}

    results, together = render("together")
    assert [status for status, _ in results] == ["ok"] * 4 + ["unreadable", "missing", "unreadable"]
    for (cutout, kind), (_, name) in zip(jobs[:4], results[:4], strict=True):
        data = fits.getdata(output / cutout).astype(np.float64)
        expected = thumbnails.stretch(data, kind, ZScaleInterval().get_limits(data))
        shown = np.asarray(Image.open(io.BytesIO(together[Path(name).name])))
        assert np.abs(shown.astype(int) - expected).max() <= 1  # rounding at a grey-level edge at most
    monkeypatch.setattr(thumbnails, "PENDING_PIXELS", 1)
    assert render("one_by_one") == (results, together)
