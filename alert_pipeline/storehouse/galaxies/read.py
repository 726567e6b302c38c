"""Read a galaxy file, streamed, into Arrow tables of one schema (``SCHEMA``).

Two formats are read (``sniff`` decides from the first line):

* GLADE+ as its authors publish it (``GLADE+.txt``, Dálya et al. 2022, MNRAS 514, 1403):
  no header, 40 whitespace-separated fields (``GLADE_COLUMNS``), ``null`` for a missing
  value; CRLF line ends and a last line without a newline are accepted.
* A CSV with a header naming its columns: ``ra``/``dec`` (degrees), ``d_L`` (Mpc) or,
  without it, ``z`` (luminosity distance from Planck18), optional ``mass`` (M☉) or ``M*``
  (10¹⁰ M☉, GLADE+'s unit), optional ``name`` or GLADE+'s name columns. Names are matched
  without regard to case; ``null`` and an empty cell are missing.

The file is read ``BLOCK_BYTES`` at a time, cut at the last newline, and each block parsed
by pyarrow (``pyarrow.csv.open_csv`` holds far more than a block of a large file), so the
23-million-row GLADE+ is read in bounded memory. A bad row is counted by reason
(``BadRows``) and skipped: a wrong field count (``malformed``), a missing or non-numeric
position or distance (``missing``), a distance ≤ 0 (``nonpositive_distance``), a position
off the sky (``off_sky``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from alert_pipeline.durable import open_regular
from alert_pipeline.storehouse.galaxies import GalaxyFileError

log = logging.getLogger("transient_kind_builder")

#: GLADE+'s 40 columns in file order (the authors' description, 29 April 2022).
GLADE_COLUMNS = (
    "GLADE no", "PGC no", "GWGC name", "HyperLEDA name", "2MASS name", "WISExSCOS name", "SDSS-DR16Q name",
    "Object type flag", "RA", "Dec", "B", "B_err", "B flag", "B_Abs", "J", "J_err", "H", "H_err", "K", "K_err",
    "W1", "W1_err", "W2", "W2_err", "W1 flag", "B_J", "B_J err", "z_helio", "z_cmb", "z flag", "v_err", "z_err",
    "d_L", "d_L err", "dist flag", "M*", "M*_err", "M* flag", "Merger rate", "Merger rate error",
)
#: GLADE+'s name columns, in the order a galaxy's name is taken from (the first present).
GLADE_NAME_COLUMNS = ("GWGC name", "HyperLEDA name", "2MASS name", "WISExSCOS name", "SDSS-DR16Q name")
#: GLADE+'s stellar mass unit (column ``M*``): 10¹⁰ solar masses; the catalogue stores M☉.
GLADE_MASS_UNIT_MSUN = 1e10
#: The stored catalogue's columns: degrees, Mpc (luminosity distance), redshift (GLADE+'s
#: z_cmb), stellar mass in M☉ (null where unknown).
SCHEMA = pa.schema([("name", pa.string()), ("ra", pa.float64()), ("dec", pa.float64()),
                    ("distance_mpc", pa.float64()), ("z", pa.float64()), ("mass", pa.float64())])
#: Bytes read and parsed at a time (memory is about two blocks).
BLOCK_BYTES = 32 << 20
#: The longest line read (a GLADE+ line is about 300 bytes): a longer one is malformed.
MAX_LINE_BYTES = 1 << 20
#: The longest first line looked at to tell the format.
MAX_FIRST_LINE = 64 << 10
NULLS = ("null", "", "NULL", "nan", "NaN")
BAD_REASONS = ("malformed", "missing", "nonpositive_distance", "off_sky")


@dataclass
class BadRows:
    """Rows skipped, by reason, and the first few named (file, line number, reason)."""

    counts: Counter = field(default_factory=Counter)
    named: list[str] = field(default_factory=list)
    most_named: int = 20

    def add(self, reason: str, count: int, where: str = "") -> None:
        if count:
            self.counts[reason] += count
            if where and len(self.named) < self.most_named:
                self.named.append(f"{where}: {reason}")

    def as_dict(self) -> dict[str, int]:
        return {reason: int(self.counts.get(reason, 0)) for reason in BAD_REASONS}


@dataclass(frozen=True)
class Format:
    """How to read one file: its column names, delimiter, header, and which columns are what."""

    kind: str  # "glade+" or "csv"
    columns: tuple[str, ...]
    delimiter: str
    header: bool
    ra: str
    dec: str
    distance: str | None
    z: str | None
    mass: str | None
    mass_unit: float
    names: tuple[str, ...]
    number: str | None  # a running catalogue number for a name when none is given


def sniff(path: str) -> Format:
    """The file's format from its first line, or GalaxyFileError saying what it is not."""
    try:
        with open_regular(path, follow_links=True) as handle:  # a FIFO or a device is refused, never waited on
            first = handle.readline(MAX_FIRST_LINE).decode("utf-8", "replace").strip("\r\n\ufeff")
    except OSError as exc:
        raise GalaxyFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(first.split()) == len(GLADE_COLUMNS) and "," not in first:
        return glade_format()
    if "," in first:
        header = tuple(cell.strip().strip('"') for cell in first.split(","))
        found = _csv_format(header)
        if found is not None:
            _refuse_ambiguous(path, header, found)
            return found
    raise GalaxyFileError(f"{path}: neither GLADE+ text ({len(GLADE_COLUMNS)} whitespace-separated fields a line) "
                          "nor a CSV whose header names ra, dec and d_L or z; its first line starts "
                          f"{first[:80]!r}")


def glade_format() -> Format:
    return Format("glade+", GLADE_COLUMNS, " ", False, "RA", "Dec", "d_L", "z_cmb", "M*", GLADE_MASS_UNIT_MSUN,
                  GLADE_NAME_COLUMNS, "GLADE no")


def _csv_format(header: tuple[str, ...]) -> Format | None:
    lower = {name.lower(): name for name in header}

    def pick(*candidates: str) -> str | None:
        return next((lower[c.lower()] for c in candidates if c.lower() in lower), None)

    ra, dec = pick("ra", "ra_deg"), pick("dec", "dec_deg")
    distance, z = pick("d_l", "distance_mpc", "dist"), pick("z", "z_cmb", "redshift")
    if ra is None or dec is None or (distance is None and z is None):
        return None
    mass = pick("mass", "mass_msun")
    unit = 1.0
    if mass is None and (mass := pick("M*")) is not None:
        unit = GLADE_MASS_UNIT_MSUN
    names = tuple(found for c in ("name", *GLADE_NAME_COLUMNS) if (found := pick(c)))
    return Format("csv", header, ",", True, ra, dec, distance, z, mass, unit, names, pick("GLADE no"))


def _refuse_ambiguous(path: str, header: tuple[str, ...], form: Format) -> None:
    """A column the reader uses named twice in the header (regardless of case, as names are
    matched) would be read from one of them silently: the file is refused instead."""
    used = {name.lower() for name in (form.ra, form.dec, form.distance, form.z, form.mass, *form.names, form.number)
            if name}
    twice = sorted({cell for cell in header if cell.lower() in used and
                    sum(other.lower() == cell.lower() for other in header) > 1}, key=str.lower)
    if twice:
        raise GalaxyFileError(f"{path}: its header names a column more than once ({', '.join(twice)}): which one "
                              "holds the values is ambiguous")


def read_tables(path: str, bad: BadRows, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Table]:
    """The file's good rows as tables of ``SCHEMA``, a block at a time; bad rows counted."""
    form = sniff(path)
    first_row = 0
    with open_regular(path, follow_links=True) as handle:
        if form.header:
            handle.readline()
        for block, line_number in _blocks(handle, block_bytes, 2 if form.header else 1, bad, path):
            malformed = bad.counts["malformed"]
            table = _parse(block, form, bad, f"{path}, a line from line {line_number} on")
            exact = bad.counts["malformed"] == malformed  # row i is line line_number + i
            yield _clean(table, form, bad, first_row, path, line_number if exact else None)
            first_row += table.num_rows


def _blocks(handle: IO[bytes], block_bytes: int, first_line: int, bad: BadRows,
            path: str) -> Iterator[tuple[bytes, int]]:
    """Newline-aligned blocks of the file and the line number each starts at. A line
    longer than ``MAX_LINE_BYTES`` (no galaxy's) is skipped as malformed, never held."""
    carry, line, skipping = b"", first_line, False
    while chunk := handle.read(block_bytes):
        data = carry + chunk
        if skipping:
            end = data.find(b"\n")
            if end < 0:
                carry = b""
                continue
            data, skipping, line = data[end + 1:], False, line + 1
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            if len(carry) > MAX_LINE_BYTES:
                bad.add("malformed", 1, f"{path}: line {line} is longer than {MAX_LINE_BYTES} bytes")
                carry, skipping = b"", True
            continue
        carry, data = data[cut + 1:], data[: cut + 1]
        yield data, line
        line += data.count(b"\n")
    if carry.strip() and not skipping:
        yield carry, line


def _parse(block: bytes, form: Format, bad: BadRows, where: str) -> pa.Table:
    """One block as text columns (numbers are converted in ``_numbers``, so one bad cell
    costs its row, not the block)."""
    wanted = [c for c in (form.ra, form.dec, form.distance, form.z, form.mass, *form.names, form.number) if c]
    wanted = list(dict.fromkeys(wanted))

    def malformed(row: Any) -> str:
        bad.add("malformed", 1, f"{where}: a line of {row.actual_columns} fields, not {row.expected_columns}")
        return "skip"

    try:
        block.decode("utf-8")
    except UnicodeDecodeError:  # a Latin-1 name, binary junk: pyarrow would refuse the whole block
        block = block.decode("utf-8", "replace").encode()
    try:
        return _read_csv(block, form, wanted, malformed)
    except pa.ArrowInvalid as exc:  # what the row handler cannot skip: the file is refused, never a traceback
        raise GalaxyFileError(f"{where}: cannot be parsed ({exc})") from None


def _read_csv(block: bytes, form: Format, wanted: list[str], malformed: Any) -> pa.Table:
    return pacsv.read_csv(
        pa.py_buffer(block),
        read_options=pacsv.ReadOptions(column_names=list(form.columns), block_size=len(block) + (1 << 20),
                                       use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=form.delimiter, invalid_row_handler=malformed,
                                         quote_char='"' if form.header else False),
        convert_options=pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in wanted},
                                             null_values=list(NULLS), strings_can_be_null=True))


def _numbers(column: pa.ChunkedArray) -> pa.Array:
    """Text to float64; a cell that is not a number becomes null (counted as missing)."""
    try:
        return pc.cast(column, pa.float64()).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_float(text) for text in column.to_pylist()], pa.float64())


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _clean(table: pa.Table, form: Format, bad: BadRows, first_row: int, path: str,
           first_line: int | None) -> pa.Table:
    """The block's good rows in ``SCHEMA``; the others counted by reason and the first of
    each reason in the block named by its line (``first_line``: the block's first row's line,
    None when a malformed line in the block makes it unknown)."""
    ra, dec = _numbers(table[form.ra]), _numbers(table[form.dec])
    z = _numbers(table[form.z]) if form.z else pa.nulls(table.num_rows, pa.float64())
    distance = _numbers(table[form.distance]) if form.distance else luminosity_distance_mpc(z)
    missing = pc.fill_null(pc.or_(pc.or_(pc.is_null(ra, nan_is_null=True), pc.is_null(dec, nan_is_null=True)),
                                  pc.is_null(distance, nan_is_null=True)), True)
    unbounded = pc.or_(pc.is_inf(ra), pc.or_(pc.is_inf(dec), pc.is_inf(distance)))
    missing = pc.or_(missing, pc.fill_null(unbounded, False))
    nonpositive = pc.and_(pc.invert(missing), pc.fill_null(pc.less_equal(distance, 0.0), False))
    off = pc.or_(pc.or_(pc.less(ra, 0.0), pc.greater_equal(ra, 360.0)), pc.greater(pc.abs(dec), 90.0))
    off = pc.and_(pc.invert(pc.or_(missing, nonpositive)), pc.fill_null(off, False))
    for reason, mask in (("missing", missing), ("nonpositive_distance", nonpositive), ("off_sky", off)):
        count = pc.sum(mask).as_py() or 0
        row = pc.index(mask, True).as_py() if count else -1
        line = f"line {first_line + row}" if first_line is not None else f"data row {first_row + row + 1}"
        bad.add(reason, count, f"{path}: {line}")
    keep = pc.invert(pc.or_(pc.or_(missing, nonpositive), off))
    mass = (pc.multiply(_numbers(table[form.mass]), form.mass_unit) if form.mass
            else pa.nulls(table.num_rows, pa.float64()))
    mass = pc.if_else(pc.fill_null(pc.is_finite(mass), False), mass, pa.scalar(None, pa.float64()))
    z = pc.if_else(pc.fill_null(pc.is_finite(z), False), z, pa.scalar(None, pa.float64()))
    out = pa.table([_names(table, form, first_row), ra, dec, distance, z, mass], schema=SCHEMA)
    return out.filter(keep)


def _names(table: pa.Table, form: Format, first_row: int) -> pa.Array:
    """A galaxy's name: the first of its name columns present, else ``GLADE+ <no>`` (or,
    for a CSV without names, ``row <n>``: its data row in the file)."""
    if form.number:
        fallback = pc.binary_join_element_wise("GLADE+", pc.fill_null(table[form.number], "?"), " ")
    else:
        fallback = pa.array([f"row {first_row + i + 1}" for i in range(table.num_rows)], pa.string())
    columns = [table[name] for name in form.names]
    return pc.coalesce(*columns, fallback).combine_chunks() if columns else pa.chunked_array(
        [fallback]).combine_chunks()


def luminosity_distance_mpc(z: pa.Array) -> pa.Array:
    """Luminosity distance (Mpc) of redshift ``z`` in astropy's Planck18 cosmology; null
    for a missing or negative redshift."""
    import numpy as np
    from astropy.cosmology import Planck18

    values = np.asarray(z.to_numpy(zero_copy_only=False), dtype=np.float64)
    usable = np.isfinite(values) & (values >= 0)
    out = np.full(values.shape, math.nan)
    if usable.any():
        out[usable] = Planck18.luminosity_distance(values[usable]).to_value("Mpc")
    return pa.array(out, pa.float64(), mask=~usable)
