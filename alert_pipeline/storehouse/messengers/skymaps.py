"""Gravitational-wave sky maps: read, check, store as multi-order, measure.

LVK publishes two layouts, both HEALPix in equatorial coordinates, gzipped or not:

* **multi-order** (``ORDERING = NUNIQ``): rows of ``UNIQ`` (order and nested pixel in one
  integer, 4·4^order + ipix) and ``PROBDENSITY`` (per steradian), ~20,000 rows;
* **flat** (``ORDERING = NESTED`` or ``RING``): one ``PROB`` (per pixel) for each of the
  12·NSIDE² pixels, NSIDE up to 1024 (12.6 M pixels).

Either may carry the distance layers of Singer et al.'s ansatz (``DISTMU``, ``DISTSIGMA``
in Mpc, ``DISTNORM`` in Mpc⁻²; ApJL 829 L15, ApJS 226 10): they are kept when all three
are there (``SkyMap.distance``), and a map with only some of them is stored without.

Columns are read with their ``TZERO``/``TSCAL`` applied, as the FITS standard says: an
unsigned 64-bit ``UNIQ`` (``TFORM K`` with ``TZERO = 2^63``, as ligo.skymap before 0.1.8
wrote it, e.g. GraceDB's O3 BAYESTAR maps) is read as unsigned. Every size the headers
declare is checked against a bound before anything is read or allocated, and nothing is
read past the end of the table the header declares, so a gzip file that inflates to far
more than it claims, or a header that claims terabytes, is refused at once.

A flat map is read row chunk by row chunk from its (decompressed) stream into one array
of probabilities in nested order (and one per distance layer), then stored as
multi-order: four sibling pixels equal in density and in each distance layer become
their parent, repeatedly, which is lossless and shrinks the empty sky to a few hundred
rows. So the map sits in memory once, as one float64 per pixel and layer, however it
was packed. Every map is checked before it is stored (finite, non-negative
densities; pixels that do not overlap; probabilities summing to 1 within 1 %), and its
50 % and 90 % credible areas are measured the way ligo.skymap's ``crossmatch`` does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

FITS_BLOCK = 2880
#: Largest sky-map file accepted (compressed or not): a flat NSIDE-1024 map of four
#: float64 columns is 400 MB uncompressed.
MAX_SKYMAP_FILE_BYTES = 1 << 30
MAX_FLAT_NSIDE = 1024
MAX_MOC_ROWS = 4_000_000
#: Largest binary table (declared NAXIS1 x NAXIS2) read: the flat NSIDE-1024 map above.
MAX_TABLE_BYTES = 1 << 29
#: Largest primary-HDU data skipped (an LVK sky map's primary HDU has none).
MAX_PRIMARY_BYTES = 1 << 20
#: Largest value a header's size card (NAXISn, PCOUNT, TFIELDS, a repeat count) may hold.
MAX_CARD_SIZE = 1 << 40
MAX_ORDER = 29
#: Header blocks read at most before ``END`` (a header is a few blocks).
MAX_HEADER_BLOCKS = 64
#: Rows read per chunk from a flat map's stream.
CHUNK_BYTES = 8 << 20
#: How far the probabilities may sum from 1.
PROBABILITY_TOLERANCE = 0.01
SKY_DEG2 = 4 * 180**2 / math.pi  # 41,252.96 deg²
_FORMS = {"D": ">f8", "E": ">f4", "K": ">i8", "J": ">i4", "I": ">i2", "B": "u1"}
_INTEGER_FORMS = ("K", "J", "I", "B")
_UNSIGNED_64_ZERO = 1 << 63
#: The distance layers (Singer et al. 2016's ansatz), with their FITS units.
DISTANCE_COLUMNS = (("DISTMU", "Mpc"), ("DISTSIGMA", "Mpc"), ("DISTNORM", "Mpc-2"))
KEPT_HEADER = ("OBJECT", "DATE-OBS", "MJD-OBS", "INSTRUME", "CREATOR", "ORIGIN", "DISTMEAN", "DISTSTD")


class SkyMapError(ValueError):
    """The bytes are not a usable sky map; the message says why."""


@dataclass
class SkyMap:
    """A multi-order sky map: ``uniq`` and ``probdensity`` (per steradian), the header
    cards worth keeping (``KEPT_HEADER``) and, when the map has them, its distance layers
    (``distance``: ``DISTMU``, ``DISTSIGMA``, ``DISTNORM``, one value per row each)."""

    uniq: np.ndarray
    probdensity: np.ndarray
    header: dict[str, Any] = field(default_factory=dict)
    distance: dict[str, np.ndarray] | None = None

    @property
    def has_distance(self) -> bool:
        return self.distance is not None

    @property
    def orders(self) -> np.ndarray:
        return uniq_order(self.uniq)

    def pixel_areas_sr(self) -> np.ndarray:
        return 4 * np.pi / (12 * np.exp2(2 * self.orders))

    def credible_areas_deg2(self, levels: tuple[float, ...]) -> list[float]:
        """The area of the smallest region holding each probability in ``levels``
        (deg²): pixels sorted by falling density, cumulative probability against
        cumulative area, interpolated from (0, 0) as ligo.skymap's crossmatch does."""
        order = self.greedy_order()
        area = self.pixel_areas_sr()[order]
        prob = np.cumsum(self.probdensity[order] * area)
        cumulative_area = np.cumsum(area) * (180 / np.pi) ** 2
        return [float(value) for value in np.interp(levels, np.pad(prob, (1, 0)), np.pad(cumulative_area, (1, 0)),
                                                    right=SKY_DEG2)]

    def greedy_order(self) -> np.ndarray:
        """Pixel indices by falling density (ties: falling UNIQ, as ligo.skymap sorts)."""
        return np.lexsort((self.uniq, self.probdensity))[::-1]

    def pixel_rows(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """The row of the pixel holding each position (degrees), -1 where no pixel does
        (a multi-order map need not cover the sky)."""
        from astropy import units as u
        from astropy_healpix import lonlat_to_healpix

        orders = self.orders
        top = int(orders.max())
        shift = 2 * (top - orders)
        starts = (self.uniq - 4 * np.left_shift(np.int64(1), 2 * orders)) << shift
        ends = starts + np.left_shift(np.int64(1), shift)  # each pixel covers [start, end) at the top order
        by_start = np.argsort(starts)
        pixel = lonlat_to_healpix(np.asarray(ra_deg) * u.deg, np.asarray(dec_deg) * u.deg, 2**top,
                                  order="nested").astype(np.int64)
        before = np.searchsorted(starts[by_start], pixel, "right") - 1  # the last pixel starting at or before it
        row = by_start[np.maximum(before, 0)]
        return np.where((before >= 0) & (pixel < ends[row]), row, -1)

    def content_sha256(self) -> str:
        """A digest of the pixels and densities (in UNIQ order): equal for the same map
        however it was packed or named, so one event's map loaded twice is recognised."""
        by_uniq = np.argsort(self.uniq, kind="stable")
        digest = hashlib.sha256(self.uniq[by_uniq].astype("<i8").tobytes())
        digest.update(self.probdensity[by_uniq].astype("<f8").tobytes())
        return digest.hexdigest()

    def total_probability(self) -> float:
        return float(np.sum(self.probdensity * self.pixel_areas_sr()))

    def fits_bytes(self) -> bytes:
        """The map as a multi-order FITS file (UNIQ, PROBDENSITY and the distance layers
        when it has them), the same bytes for the same map."""
        from astropy.io import fits

        columns = [fits.Column("UNIQ", "K", array=self.uniq),
                   fits.Column("PROBDENSITY", "D", unit="sr-1", array=self.probdensity)]
        if self.distance is not None:
            columns += [fits.Column(name, "D", unit=unit, array=self.distance[name]) for name, unit in DISTANCE_COLUMNS]
        table = fits.BinTableHDU.from_columns(columns)
        for key, value in (("PIXTYPE", "HEALPIX"), ("ORDERING", "NUNIQ"), ("COORDSYS", "C"),
                           ("MOCORDER", int(self.orders.max())), ("INDXSCHM", "EXPLICIT")):
            table.header[key] = value
        for key in KEPT_HEADER:
            if key in self.header:
                table.header[key] = self.header[key]
        buffer = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
        return buffer.getvalue()


def uniq_order(uniq: np.ndarray) -> np.ndarray:
    """The HEALPix order of each UNIQ value (4·4^order ≤ uniq < 16·4^order)."""
    return ((np.floor(np.log2(uniq.astype(np.float64))).astype(np.int64)) - 2) // 2


def read_skymap(stream: IO[bytes], source_size: int | None = None) -> SkyMap:
    """A checked multi-order ``SkyMap`` from a FITS file's bytes (gzipped or not)."""
    if source_size is not None and source_size > MAX_SKYMAP_FILE_BYTES:
        raise SkyMapError(f"the file is {source_size} bytes, more than a sky map may be ({MAX_SKYMAP_FILE_BYTES})")
    head = stream.read(2)
    stream = _Rewound(head, stream)
    if head == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
    try:
        primary = _read_header(stream)
        if primary.get("SIMPLE") is not True:
            raise SkyMapError("not a FITS file (no SIMPLE = T card)")
        primary_bytes = _data_size(primary)
        if primary_bytes > MAX_PRIMARY_BYTES:
            raise SkyMapError(f"the primary HDU declares {primary_bytes} bytes of data (a sky map's has none)")
        _skip(stream, primary_bytes)
        table = _read_header(stream)
        if table.get("XTENSION") != "BINTABLE":
            raise SkyMapError("the first extension is not a binary table of HEALPix pixels")
        sky_map = _read_table(stream, table)
    except (EOFError, gzip.BadGzipFile, OSError, ValueError, OverflowError, TypeError, zlib.error) as exc:
        if isinstance(exc, SkyMapError):
            raise
        raise SkyMapError(f"not a readable FITS sky map: {type(exc).__name__}: {exc}") from None
    check(sky_map)
    return sky_map


def check(sky_map: SkyMap) -> None:
    """Refuse a map whose densities are not finite and non-negative, whose pixels
    overlap or are out of range, or whose probabilities do not sum to ~1."""
    uniq, density = sky_map.uniq, sky_map.probdensity
    if len(uniq) == 0:
        raise SkyMapError("the sky map has no pixels")
    if np.any(uniq < 4) or np.any(uniq >= 16 * 4**MAX_ORDER):
        raise SkyMapError("UNIQ values out of range (order 0 to 29)")
    if not np.all(np.isfinite(density)) or np.any(density < 0):
        raise SkyMapError("probability densities that are negative, NaN or infinite")
    orders = sky_map.orders
    shift = 2 * (MAX_ORDER - orders)
    starts = (uniq - 4 * np.left_shift(np.int64(1), 2 * orders)) << shift
    ends = starts + (np.int64(1) << shift)
    by_start = np.argsort(starts, kind="stable")
    if np.any(starts[by_start][1:] < ends[by_start][:-1]):
        raise SkyMapError("pixels overlap: not a valid multi-order map")
    total = sky_map.total_probability()
    if not abs(total - 1) <= PROBABILITY_TOLERANCE:
        raise SkyMapError(f"the probabilities sum to {total:.6g}, not 1")


def flat_to_moc(prob_nested: np.ndarray, layers: dict[str, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray] | None]:
    """A flat nested map of probabilities per pixel (and its distance ``layers``, per
    pixel too) → (UNIQ, PROBDENSITY, layers per row): each group of four sibling pixels
    equal in density and in every layer becomes their parent, from the finest order up
    (lossless: a parent is made only of children that all hold its values)."""
    npix = len(prob_nested)
    order = int(round(math.log(npix // 12, 4)))
    names = list(layers or {})
    columns = [prob_nested * (npix / (4 * np.pi))] + [np.asarray(layers[name], dtype=np.float64) for name in names]
    whole = np.ones(npix, dtype=bool)
    kept_uniq: list[np.ndarray] = []
    kept: list[list[np.ndarray]] = [[] for _ in columns]
    for level in range(order, 0, -1):
        quads = [column.reshape(-1, 4) for column in columns]
        merge = whole.reshape(-1, 4).all(axis=1)
        for quad in quads:
            merge &= (quad == quad[:, :1]).all(axis=1)
        emit = np.flatnonzero(whole & ~np.repeat(merge, 4))
        kept_uniq.append(emit + 4 * 4**level)
        for store, column in zip(kept, columns, strict=True):
            store.append(column[emit])
        columns, whole = [quad[:, 0].copy() for quad in quads], merge
    emit = np.flatnonzero(whole)
    kept_uniq.append(emit + 4)
    for store, column in zip(kept, columns, strict=True):
        store.append(column[emit])
    uniq = np.concatenate(kept_uniq).astype(np.int64)
    by_uniq = np.argsort(uniq)
    values = [np.concatenate(store)[by_uniq] for store in kept]
    return uniq[by_uniq], values[0], (dict(zip(names, values[1:], strict=True)) if layers else None)


# ----------------------------------------------------------------------------- FITS, streamed
class _Rewound(io.RawIOBase):
    """``stream`` with ``head`` (already read) put back in front of it."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            size = min(len(buffer), len(self.head))
            buffer[:size], self.head = self.head[:size], self.head[size:]
            return size
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError(f"the file ends {size - len(data)} bytes early")
        data += chunk
    return bytes(data)


def _read_header(stream: IO[bytes]) -> dict[str, Any]:
    from astropy.io import fits

    blocks = []
    for _ in range(MAX_HEADER_BLOCKS):
        block = _read_exactly(stream, FITS_BLOCK)
        blocks.append(block)
        cards = [block[i:i + 80] for i in range(0, FITS_BLOCK, 80)]
        if any(card.rstrip() == b"END" for card in cards):
            header = fits.Header.fromstring(b"".join(blocks).decode("ascii", "replace"))
            return dict(header.items())
    raise SkyMapError(f"no END card in the first {MAX_HEADER_BLOCKS} header blocks")


def _card_int(header: dict[str, Any], key: str, default: int, high: int = MAX_CARD_SIZE) -> int:
    """An integer card, 0 to ``high`` (a float, a bool, 1E400 or a negative size: refused)."""
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise SkyMapError(f"{key} = {value!r} is not a size between 0 and {high}")
    return value


def _data_size(header: dict[str, Any]) -> int:
    """The bytes of data after a header, padded to whole blocks."""
    axes = _card_int(header, "NAXIS", 0, 999)
    if axes == 0:
        return 0
    bitpix = header.get("BITPIX", 8)
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise SkyMapError(f"BITPIX = {bitpix!r} is not a FITS BITPIX")
    size = abs(bitpix) // 8
    for number in range(1, axes + 1):
        size *= _card_int(header, f"NAXIS{number}", 0)
        if size > MAX_CARD_SIZE:
            raise SkyMapError(f"the HDU declares more than {MAX_CARD_SIZE} bytes of data")
    size += _card_int(header, "PCOUNT", 0)
    return -(-size // FITS_BLOCK) * FITS_BLOCK


def _skip(stream: IO[bytes], size: int) -> None:
    while size > 0:
        size -= len(_read_exactly(stream, min(size, CHUNK_BYTES)))


@dataclass(frozen=True)
class _Scaling:
    """A column's ``TZERO``/``TSCAL``: physical value = stored value x scale + zero."""

    code: str
    zero: float | int = 0
    scale: float | int = 1

    def apply(self, stored: np.ndarray) -> np.ndarray:
        if self.zero == 0 and self.scale == 1:
            return stored
        if self.code == "K" and self.zero == _UNSIGNED_64_ZERO and self.scale == 1:
            unsigned = stored.view(stored.dtype.str.replace("i", "u"))  # same bytes, unsigned
            return unsigned ^ np.uint64(_UNSIGNED_64_ZERO)  # the FITS standard's unsigned 64-bit integer
        if self.code in _INTEGER_FORMS and self.scale == 1 and float(self.zero).is_integer() \
                and abs(self.zero) < 2**62:
            return stored.astype(np.int64) + np.int64(int(self.zero))
        return stored.astype(np.float64) * float(self.scale) + float(self.zero)


def _row_dtype(header: dict[str, Any]) -> tuple[np.dtype, dict[str, _Scaling]]:
    """The table's row layout and each column's scaling, by upper-case column name."""
    fields, scalings = [], {}
    for number in range(1, _card_int(header, "TFIELDS", 0, 999) + 1):
        form = str(header.get(f"TFORM{number}", "")).strip()
        code = form[-1:]
        if code not in _FORMS or not (form[:-1].isdigit() or not form[:-1]):
            raise SkyMapError(f"column {number} has a format ({form[:20]!r}) no sky map uses")
        repeat = int(form[:-1]) if form[:-1] else 1
        if not 1 <= repeat <= MAX_TABLE_BYTES:
            raise SkyMapError(f"column {number} repeats {repeat} times (1 to {MAX_TABLE_BYTES})")
        name = str(header.get(f"TTYPE{number}", f"COL{number}")).strip().upper()
        fields.append((name, _FORMS[code], (repeat,)) if repeat > 1 else (name, _FORMS[code]))
        scalings[name] = _Scaling(code, _scaling_card(header, f"TZERO{number}", 0),
                                  _scaling_card(header, f"TSCAL{number}", 1))
    try:
        dtype = np.dtype(fields)
    except (ValueError, TypeError) as exc:
        raise SkyMapError(f"the table's columns are not a row layout: {exc}") from None
    if dtype.itemsize != _card_int(header, "NAXIS1", -1):
        raise SkyMapError("the table's row size does not match its columns")
    return dtype, scalings


def _scaling_card(header: dict[str, Any], key: str, default: int) -> float | int:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0 \
            and key.startswith("TSCAL"):
        raise SkyMapError(f"{key} = {value!r} is not a usable scaling")
    return value


def _read_table(stream: IO[bytes], header: dict[str, Any]) -> SkyMap:
    dtype, scalings = _row_dtype(header)
    rows = _card_int(header, "NAXIS2", 0)
    if rows * dtype.itemsize > MAX_TABLE_BYTES:
        raise SkyMapError(f"a table of {rows} rows of {dtype.itemsize} bytes: more than a sky map may be "
                          f"({MAX_TABLE_BYTES} bytes)")
    ordering = str(header.get("ORDERING", "")).strip().upper()
    kept = {key: header[key] for key in KEPT_HEADER if key in header}
    if ordering == "NUNIQ":
        if not {"UNIQ", "PROBDENSITY"} <= set(dtype.names or ()):
            raise SkyMapError("a multi-order map needs UNIQ and PROBDENSITY columns")
        if not 0 < rows <= MAX_MOC_ROWS:
            raise SkyMapError(f"a multi-order map of {rows} rows (at most {MAX_MOC_ROWS})")
        if dtype["UNIQ"].shape or dtype["PROBDENSITY"].shape:
            raise SkyMapError("UNIQ and PROBDENSITY must hold one value per row")
        uniq = np.empty(rows, dtype=np.int64)
        density = np.empty(rows, dtype=np.float64)
        names = _distance_names(dtype)
        layers = {name: np.empty(rows, dtype=np.float64) for name in names}
        for first, chunk in _row_chunks(stream, dtype, rows):
            stored_uniq = scalings["UNIQ"].apply(chunk["UNIQ"])
            if stored_uniq.dtype.kind not in "iu":
                raise SkyMapError("UNIQ is not an integer column")
            if np.any(stored_uniq < 0) or np.any(stored_uniq >= 16 * 4**MAX_ORDER):
                raise SkyMapError("UNIQ values out of range (order 0 to 29)")
            uniq[first:first + len(chunk)] = stored_uniq
            density[first:first + len(chunk)] = scalings["PROBDENSITY"].apply(chunk["PROBDENSITY"])
            for name in names:
                layers[name][first:first + len(chunk)] = scalings[name].apply(chunk[name])
        return SkyMap(uniq, density, kept, layers or None)
    if ordering not in ("NESTED", "RING"):
        raise SkyMapError(f"ORDERING = {ordering or 'missing'!r}: not NUNIQ, NESTED or RING")
    if "PROB" not in (dtype.names or ()):
        raise SkyMapError("a flat map needs a PROB column")
    names = _distance_names(dtype, dtype["PROB"].shape)
    flat = _read_flat(stream, dtype, rows, ordering == "RING", ["PROB", *names], scalings)
    uniq, density, layers = flat_to_moc(flat["PROB"], {name: flat[name] for name in names} or None)
    return SkyMap(uniq, density, kept, layers)


def _distance_names(dtype: np.dtype, shape: tuple[int, ...] = ()) -> tuple[str, ...]:
    """The distance layers to read: all three when the table has them, each shaped as
    the probability column (one value per pixel); none otherwise."""
    names = tuple(name for name, _ in DISTANCE_COLUMNS)
    present = set(dtype.names or ())
    if not set(names) <= present or any(dtype[name].shape != shape for name in names):
        return ()
    return names


def _row_chunks(stream: IO[bytes], dtype: np.dtype, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of the table, ``CHUNK_BYTES`` at a time: the whole table is never
    held, only the columns kept."""
    rows_per_chunk = max(1, CHUNK_BYTES // dtype.itemsize)
    for first in range(0, rows, rows_per_chunk):
        count = min(rows_per_chunk, rows - first)
        yield first, np.frombuffer(_read_exactly(stream, count * dtype.itemsize), dtype=dtype)


def _read_flat(stream: IO[bytes], dtype: np.dtype, rows: int, ring: bool, names: list[str],
               scalings: dict[str, _Scaling]) -> dict[str, np.ndarray]:
    """The columns ``names`` (PROB first), in nested order, read a chunk of rows at a time."""
    per_row = int(np.prod(dtype["PROB"].shape)) if dtype["PROB"].shape else 1
    npix = rows * per_row
    nside = int(round(math.sqrt(npix / 12))) if npix else 0
    if npix == 0 or 12 * nside * nside != npix or nside & (nside - 1) or nside > MAX_FLAT_NSIDE:
        raise SkyMapError(f"{npix} pixels: not a HEALPix map of NSIDE 1 to {MAX_FLAT_NSIDE}")
    columns = {name: np.empty(npix, dtype=np.float64) for name in names}
    done = 0
    for _, rows_read in _row_chunks(stream, dtype, rows):
        count = len(rows_read) * per_row
        if ring:
            from astropy_healpix.core import ring_to_nested

            where: Any = ring_to_nested(np.arange(done, done + count), nside)
        else:
            where = slice(done, done + count)
        for name in names:
            columns[name][where] = scalings[name].apply(rows_read[name].reshape(-1))
        done += count
    return columns
