"""Read a cutout's pixels; write an 8-bit grey PNG.

Both sit on the report's hot path (three per alert, tens of thousands a night), where
astropy's general FITS reader (mostly header machinery) and Pillow's PNG writer (mostly
plugin set-up) cost more than everything else together (``benchmarks/report_thumbnails.py``).

* ``read_image``: a cutout whose primary HDU is a plain 2-D image (no BSCALE, BZERO or
  BLANK, which is what Rubin's cutouts are) is read straight from its bytes: the header's
  cards are scanned, the data become a big-endian numpy array. Anything else — scaled
  integers, an image in an extension, a header this scan does not follow — goes to
  ``astropy.io.fits``, so the result is always what ``fits.getdata`` returns;
  ``tests/test_report.py`` checks that on every schema version's cutouts.
* ``png_bytes``: the PNG file format for one grey channel or RGB (signature, IHDR, text
  chunks, one zlib IDAT, IEND), decoded back by Pillow in the tests; ``png_text`` reads the
  text chunks back (a sparkline keeps its scale there, so a reused one still has it).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

FITS_BLOCK = 2880
CARD = 80
MAX_HEADER_BLOCKS = 36  # a cutout's header fits in one or two blocks; beyond this, astropy
PIXEL_TYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
NEEDS_ASTROPY = (b"BSCALE", b"BZERO", b"BLANK")  # scaled or flagged integers
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


Header = dict[str, Any]  # the image HDU's cards: {keyword: value}, as read or as astropy typed them


def read_image(path: Path) -> np.ndarray | None:
    """The cutout's image as float64, or None when the file is not a 2-D FITS image."""
    image = read_cutout(path)
    return None if image is None else image[0]


def read_cutout(path: Path) -> tuple[np.ndarray, Header] | None:
    """The cutout's image as float64 and its HDU's header cards, or None when the file is
    not a 2-D FITS image."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    cards: dict[bytes, bytes] = {}
    pixels = _plain_primary_image(data, cards)
    if pixels is not None:
        return pixels, {key.decode("ascii", "replace"): value.decode("ascii", "replace") for key, value in cards.items()}
    return _read_with_astropy(path)


def _plain_primary_image(data: bytes, cards: dict[bytes, bytes] | None = None) -> np.ndarray | None:
    """The primary image when it is plain and whole, else None (astropy decides);
    ``cards`` receives the header's cards."""
    if not data.startswith(b"SIMPLE  =") or data[29:30] != b"T":
        return None
    cards = {} if cards is None else cards
    for start in range(0, min(len(data), MAX_HEADER_BLOCKS * FITS_BLOCK), CARD):
        keyword = data[start:start + 8].rstrip()
        if keyword == b"END":
            header_bytes = -(-(start + CARD) // FITS_BLOCK) * FITS_BLOCK
            return _image_after_header(data, cards, header_bytes)
        if keyword in NEEDS_ASTROPY:
            return None
        if data[start + 8:start + 10] == b"= ":
            cards[keyword] = data[start + 10:start + CARD].split(b"/")[0].strip()
    return None


def _image_after_header(data: bytes, cards: dict[bytes, bytes], header_bytes: int) -> np.ndarray | None:
    try:
        if int(cards[b"NAXIS"]) != 2:
            return None
        width, height = int(cards[b"NAXIS1"]), int(cards[b"NAXIS2"])
        pixel_type = np.dtype(PIXEL_TYPES[int(cards[b"BITPIX"])])
    except (KeyError, ValueError):
        return None
    count = width * height
    if width <= 0 or height <= 0 or header_bytes + count * pixel_type.itemsize > len(data):
        return None  # empty or truncated: astropy says which
    pixels = np.frombuffer(data, dtype=pixel_type, count=count, offset=header_bytes)
    return pixels.reshape(height, width).astype(np.float64)


def _read_with_astropy(path: Path) -> tuple[np.ndarray, Header] | None:
    """``fits.getdata``'s choice of HDU (the primary, or the first extension when the
    primary is empty), opened lazily so that mask and variance planes stay unread."""
    from astropy.io import fits

    try:
        with warnings.catch_warnings():  # "file may have been truncated": we say so ourselves
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdus:
                hdu = hdus[0] if hdus[0].size else hdus[1]
                if hdu.size > os.path.getsize(path):
                    return None  # a header declaring more pixels than the file holds: never allocated
                data = hdu.data
                if data is None or data.ndim != 2 or 0 in data.shape:
                    return None
                return np.asarray(data, dtype=np.float64), dict(hdu.header.items())
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return None


def png_bytes(pixels: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """An 8-bit PNG of a 2-D uint8 array (grey) or an (h, w, 3) one (RGB); row 0 at the top;
    ``text`` as tEXt chunks (Latin-1 keywords and values), before the pixels."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    rows = np.zeros((height, width * channels + 1), dtype=np.uint8)  # each row: filter type 0, then pixels
    rows[:, 1:] = pixels.reshape(height, width * channels)
    colour_type = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)  # 8 bits, no interlace
    notes = b"".join(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
                     for key, value in (text or {}).items())
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + notes
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + _chunk(b"IEND", b""))


def png_text(path: Path, max_bytes: int = 4096) -> dict[str, str]:
    """The tEXt chunks that come before the pixels of a PNG ``png_bytes`` wrote (only its
    first ``max_bytes`` are read); {} for anything else."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes)
    except OSError:
        return {}
    found: dict[str, str] = {}
    position = len(PNG_SIGNATURE)
    if not data.startswith(PNG_SIGNATURE):
        return found
    while position + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[position:position + 4]), data[position + 4:position + 8]
        payload = data[position + 8:position + 8 + length]
        if kind == b"IDAT" or len(payload) < length:
            break
        if kind == b"tEXt" and b"\0" in payload:
            key, value = payload.split(b"\0", 1)
            found[key.decode("latin-1")] = value.decode("latin-1")
        position += 12 + length
    return found


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
