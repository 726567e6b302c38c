"""Spectroscopic classes from the Transient Name Server refine the transient slots.

Reads the TNS files a user downloaded (the project never fetches):

* the daily **public objects CSV** (``tns_public_objects.csv``, or the ``.zip`` TNS
  serves: a first line with the file's date, then ``objid, name_prefix, name, ra,
  declination, redshift, typeid, type, …, discoverydate, …, internal_names, …``): the
  whole catalogue, which replaces the one kept;
* its **daily delta** files (``tns_public_objects_YYYYMMDD.csv[.zip]``, same layout): the
  objects added or changed that day, which update only those objects (by ``objid``);
* the **search export** of the TNS web site (``"ID","Name","RA","DEC","Obj. Type",
  "Redshift",…,"Disc. Internal Name",…,"Discovery Date (UT)"``, sexagesimal RA/Dec; the
  2019 header and the current one, keyed on those columns only): a page of a search, so
  like a delta it updates only the objects it lists.

The layout is recognised from the header; a Parquet file, a JSON document (an answer of
TNS's API), a gzip file or other binary is refused with a message saying what was
expected. Files are read streaming by pyarrow's CSV reader within declared bounds
(``MAX_FILE_BYTES`` on disk, ``MAX_CSV_BYTES`` uncompressed, ``MAX_ROWS`` rows,
``MAX_ROW_BYTES`` a row; text cells cut to ``MAX_TEXT_CHARS``, internal names to
``MAX_ALIASES``; a byte that is not UTF-8 replaced in its cell), each cut counted. A file
that cannot be used (missing, another format, corrupt, past a bound) is a
``TnsFileError``: the command exits 9. Given a directory, ``apply`` applies the files in
it named ``DIRECTORY_NAMES`` it has not applied yet (by content hash), in date order, and
names every other entry; a whole file applies whatever its date, a delta dated no later
than the whole file kept is superseded and skipped.

The catalogue (one row per TNS object) is kept under ``<storehouse>/state/tns/`` with the
state of every matched slot, so a delta needs no full file and a rerun reads no file it
has applied and no slot that has not changed: each matched slot's file identity (inode,
size, mtime, ctime) is recorded and checked by one ``stat`` each run, so a slot restored
from a backup or rebuilt from scratch without its ``tns`` gets it back.

A slot matches a TNS object by name first (an internal name equal to its slot id,
whatever the distance; among several objects naming it, the lowest TNS id), else by
position (the nearest TNS object within the radius, 1.5″ by default; Vincenty
separations, as astropy's). A matched slot gets ``tns`` (``name``, ``type``, ``redshift``,
``discovery_date``, ``match``, ``separation_arcsec``) and ``spectroscopic_class``; a
supernova type (``SN…``, ``SLSN…``) sets ``subtype`` to ``sn``, ``Kilonova`` to
``kilonova``, anything else only records the class; a slot with a class is no longer
``provisional``; a redshift gives it a ``distance`` (``fink.distance``, through the
transient kind's refinement); ``fink_classification`` is never changed. The refinement is a function
of Fink's label and the current record only (recomputed from ``fink_classification``, so
a class that changes or goes away leaves nothing stale) and is re-applied whenever the
build rewrites a slot (``refine``). The state kept is checked when read (a bad one is no
state) and never removes a record.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import logging
import os
import re
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from alert_pipeline.durable import NotRegularFile, not_regular, open_regular, write_atomically
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.collector import held_off
from alert_pipeline.storehouse.fink.transient import FINK_SUBTYPES, refine, subtype_of_class
from alert_pipeline.storehouse.layout import (
    ENRICHED_FIELDS,
    KIND_FILE_STEMS,
    StorehouseLayout,
    read_bounded,
    read_json_file,
    update_roster,
)
from alert_pipeline.storehouse.slots import SlotNames, index_entry, is_reserved, slot_bytes

log = logging.getLogger("transient_kind_builder")
#: tns keeps its state in ``state/tns/`` (``STATE_NAME`` commits the Arrow files beside it);
#: the first versions kept ``state/tns.json`` (``LEGACY_STATE``), read once to carry it over.
STATE, LEGACY_STATE = "tns", "tns"
STATE_NAME = "state.json"
#: The slot fields tns owns (the record, the class; the roster's section is the record's
#: name): the layout's fields of this step.
RECORD_FIELD, CLASS_FIELD = ENRICHED_FIELDS["tns"]
DEFAULT_RADIUS_ARCSEC = 1.5
#: Largest TNS file read as it is on disk (the full public objects CSV is ~50 MB; zipped ~10 MB).
MAX_FILE_BYTES = 512 << 20
#: Largest CSV read once decompressed (a zip may declare or hold more: refused). The real
#: full file is ~55 MB: nine times that and more.
MAX_CSV_BYTES = 512 << 20
#: Most rows a TNS file may have (TNS holds ~170,000 objects).
MAX_ROWS = 5_000_000
#: Longest row (pyarrow's block size: a row longer than a block is refused).
MAX_ROW_BYTES = 4 << 20
#: Longest internal name kept for the name match (longer ones cannot be slot ids).
MAX_ALIAS_CHARS = 64
#: Most internal names kept of one object (real objects have a handful; the rest is cut, counted).
MAX_ALIASES = 64
#: Longest text cell kept of a name, a type or a date (longer ones are cut, counted): what
#: a row may cost in memory is bounded whatever the file holds.
MAX_TEXT_CHARS = 256
#: Longest internal names cell kept (``MAX_ALIASES`` names of ~16 characters).
MAX_INTERNAL_CHARS = 1024
SNIFF_BYTES = 64 << 10
PUBLIC_COLUMNS = ("objid", "name_prefix", "name", "ra", "declination", "redshift", "type", "discoverydate",
                  "internal_names")
SEARCH_COLUMNS = ("ID", "Name", "RA", "DEC", "Obj. Type", "Redshift", "Disc. Internal Name", "Discovery Date (UT)")
PUBLIC_LAYOUT, SEARCH_LAYOUT = "public objects CSV", "search export"
FULL_NAME = re.compile(r"tns_public_objects\.csv(\.zip)?")
DELTA_NAME = re.compile(r"tns_public_objects_(\d{8})\.csv(\.zip)?")
HOURLY_NAME = re.compile(r"tns_public_objects_(\d{2})\.csv(\.zip)?")
DIRECTORY_NAMES = ("tns_public_objects.csv[.zip] and tns_public_objects_YYYYMMDD.csv[.zip] (a search export "
                   "only when given as a FILE)")
SUPERSEDED = "superseded: a delta no later than the whole file kept"
NOT_TNS_NAME = f"not a name a TNS directory applies (it applies {DIRECTORY_NAMES}); left alone"
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DATE_LINE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_SEXAGESIMAL = r"^\s*(?P<sign>[-+]?)(?P<a>\d+):(?P<b>\d+):(?P<c>\d+(?:\.\d*)?)\s*$"
EXPECTED = ("TNS's public objects CSV (tns_public_objects.csv, its .zip, or a daily tns_public_objects_YYYYMMDD.csv) "
            "or a TNS search export (CSV)")


#: The catalogue kept: one row per TNS object, sorted by TNS id.
CATALOGUE_COLUMNS = ("objid", "name", "type", "redshift", "discovery", "internal", "ra", "dec")


class TnsFileError(ValueError):
    """The TNS file cannot be used (missing, in neither TNS layout, corrupt, past a bound,
    superseded): nothing of it was used. The command exits 9 (input not used)."""


class TnsSetupError(ValueError):
    """The storehouse is not ready for ``tns`` (no transient index): a usage error, exit 2."""


# ---------------------------------------------------------------- reading one file


@dataclass
class TnsFile:
    """One TNS file read: its rows as a catalogue table (``objid``, ``name``, ``type``,
    ``redshift``, ``discovery``, ``internal``, ``ra``, ``dec``), what it is and when.
    ``delta``: it updates only the objects it lists (a daily delta, or a search export:
    a page of a search, not the catalogue). ``cut``: cells cut to their bound or
    repaired (invalid UTF-8 replaced), by reason."""

    path: str
    layout: str
    delta: bool
    as_of: str | None
    table: Any
    skipped: Counter = field(default_factory=Counter)
    cut: Counter = field(default_factory=Counter)


def file_kind(path: str) -> tuple[bool, str | None]:
    """(is a daily delta, its timestamp from the name) — refuses TNS's hourly files,
    whose names carry no date."""
    name = os.path.basename(path)
    if HOURLY_NAME.fullmatch(name):
        raise TnsFileError(f"{path} is one of TNS's hourly files (no date in its name): apply the daily "
                           "tns_public_objects_YYYYMMDD.csv files or the full file")
    delta = DELTA_NAME.fullmatch(name)
    if not delta:
        return False, None
    try:
        day = dt.datetime.strptime(delta.group(1), "%Y%m%d")
    except ValueError:
        raise TnsFileError(f"{path}: {delta.group(1)} is not a date") from None
    return True, (day + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")  # the changes of that whole day


#: What reading a file may raise that is that file's problem (a corrupt zip: a bad CRC,
#: a broken deflate stream, a truncated member; memory it would need).
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, MemoryError)


def read_file(path: str) -> TnsFile:
    """Every usable row of a TNS file (malformed rows counted and skipped); TnsFileError
    when the file is not one, is corrupt or is past a bound."""
    import pyarrow as pa

    delta, as_of = file_kind(path)
    try:
        with _Source(path) as source:
            layout, header_line, dated = _layout_of(path, source.head())
            table, skipped, cut = _read_rows(path, source, layout, header_line)
    except (OSError, *_UNREADABLE, pa.ArrowMemoryError) as exc:
        what = "too large to read in the memory available" if isinstance(exc, MemoryError | pa.ArrowMemoryError) \
            else f"{type(exc).__name__}: {str(exc)[:200]}"
        raise TnsFileError(f"cannot read {path} ({what})") from None
    return TnsFile(path, layout, delta or layout == SEARCH_LAYOUT, as_of or dated, table, skipped, cut)


class _Bounded(io.RawIOBase):
    """A stream read at most ``MAX_CSV_BYTES`` far (whatever a zip's header declares)."""

    def __init__(self, inner: Any, path: str, owns: bool = False) -> None:
        self.inner, self.path, self.read_so_far, self.owns = inner, path, 0, owns

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self.owns and not self.closed:
            self.inner.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > MAX_CSV_BYTES:
            raise TnsFileError(f"{self.path}: the CSV is larger than {MAX_CSV_BYTES} bytes (once unzipped), more "
                               "than a TNS file may be")
        buffer[:len(data)] = data
        return len(data)


class _Source:
    """The CSV bytes of a TNS file, from one handle opened as a regular file (a link to
    one is followed; a FIFO or device is refused before any read): the file itself, or
    the one CSV of its zip. ``head()`` gives its first bytes; ``stream()`` all of them
    (from the start), bounded."""

    def __init__(self, path: str) -> None:
        self.path, self.handle, self.archive, self.member = path, None, None, None

    def __enter__(self) -> _Source:
        try:
            self.handle = open_regular(self.path, follow_links=True)
        except NotRegularFile as exc:
            raise TnsFileError(f"{self.path} is not a regular file ({exc.strerror}: a FIFO, device or directory "
                               "is never read)") from None
        size = os.fstat(self.handle.fileno()).st_size
        if size > MAX_FILE_BYTES:
            self.__exit__()
            raise TnsFileError(f"{self.path} is larger than a TNS file may be ({MAX_FILE_BYTES} bytes)")
        if self.handle.read(4) == b"PK\x03\x04":
            try:
                self._open_member()
            except BaseException:
                self.__exit__()
                raise
        elif size > MAX_CSV_BYTES:
            self.__exit__()
            raise TnsFileError(f"{self.path} is larger than a TNS CSV may be ({MAX_CSV_BYTES} bytes)")
        return self

    def _open_member(self) -> None:
        self.handle.seek(0)
        self.archive = zipfile.ZipFile(self.handle)
        members = [info for info in self.archive.infolist() if not info.is_dir()]
        if len(members) != 1 or not members[0].filename.endswith(".csv"):
            raise TnsFileError(f"{self.path}: a zip holding one CSV expected, found "
                               f"{[info.filename for info in members][:5]}")
        if members[0].file_size > MAX_CSV_BYTES:
            raise TnsFileError(f"{self.path}: the CSV inside declares {members[0].file_size} bytes, more than "
                               f"a TNS file may be ({MAX_CSV_BYTES})")
        self.member = members[0]

    def stream(self) -> Any:
        """The CSV's bytes from the start, read at most ``MAX_CSV_BYTES`` far."""
        if self.archive is not None:
            return io.BufferedReader(_Bounded(self.archive.open(self.member), self.path, owns=True), 1 << 20)
        self.handle.seek(0)
        return io.BufferedReader(_Bounded(self.handle, self.path), 1 << 20)

    def head(self) -> bytes:
        with self.stream() as stream:
            return stream.read(SNIFF_BYTES)

    def __exit__(self, *_: Any) -> None:
        if self.archive is not None:
            self.archive.close()
        if self.handle is not None:
            self.handle.close()


def _layout_of(path: str, head: bytes) -> tuple[str, int, str | None]:
    """(layout, the header's line number, the date on the first line) or TnsFileError
    saying what the file looks like and what was expected."""
    stripped = head.lstrip()
    if head.startswith(b"PAR1"):
        raise TnsFileError(f"{path} is a Parquet file; expected {EXPECTED}")
    if stripped[:1] in (b"{", b"["):
        raise TnsFileError(f"{path} is a JSON document (an answer of TNS's API?); expected {EXPECTED}")
    if head.startswith(b"\x1f\x8b"):
        raise TnsFileError(f"{path} is a gzip file; expected {EXPECTED} (unzip it, or give TNS's .zip)")
    if b"\x00" in head:
        raise TnsFileError(f"{path} is a binary file; expected {EXPECTED}")
    lines = head.decode("utf-8-sig", errors="replace").splitlines()[:2]
    for number, line in enumerate(lines):
        header = next(csv.reader([line]), [])
        if all(column in header for column in PUBLIC_COLUMNS):
            first = next(csv.reader([lines[0]]), [""]) if number else [""]
            return PUBLIC_LAYOUT, number, first[0] if first and _DATE_LINE.fullmatch(first[0].strip()) else None
        if all(column in header for column in SEARCH_COLUMNS):
            return SEARCH_LAYOUT, number, None
    first = lines[0][:80] if lines else ""
    raise TnsFileError(f"{path} is neither TNS's public objects CSV nor a TNS search export (first line: {first!r}); "
                       f"expected {EXPECTED}")


def _read_rows(path: str, source: _Source, layout: str, header_line: int) -> tuple[Any, Counter, Counter]:
    """The catalogue table of the file, read block by block: each block is cut to the
    catalogue's columns and bounded cells before the next is read, so memory is
    proportional to the rows kept."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = PUBLIC_COLUMNS if layout == PUBLIC_LAYOUT else SEARCH_COLUMNS
    skipped: Counter = Counter()
    cut: Counter = Counter()

    def invalid(_row: Any) -> str:
        skipped["malformed_row"] += 1
        return "skip"

    options = (pacsv.ReadOptions(skip_rows=header_line, block_size=MAX_ROW_BYTES),
               pacsv.ParseOptions(invalid_row_handler=invalid),
               pacsv.ConvertOptions(include_columns=list(columns), column_types={c: pa.binary() for c in columns},
                                    strings_can_be_null=False, quoted_strings_can_be_null=False))
    batches, rows = [], 0
    with source.stream() as stream:
        try:
            reader = pacsv.open_csv(stream, read_options=options[0], parse_options=options[1],
                                    convert_options=options[2])
            for batch in reader:
                rows += batch.num_rows
                if rows > MAX_ROWS:
                    raise TnsFileError(f"{path} has more than {MAX_ROWS} rows, more than a TNS file may have")
                batches.append(_normalise(_as_text(batch, cut), layout, skipped, cut))
        except pa.ArrowInvalid as exc:
            detail = str(exc).splitlines()[0][:200]
            if "straddling" in detail or "block size" in detail:
                detail = f"a row longer than {MAX_ROW_BYTES} bytes"
            raise TnsFileError(f"{path}: not a readable CSV ({detail})") from None
    return (pa.concat_tables(batches) if batches else _empty_catalogue()), skipped, cut


def _as_text(batch: Any, cut: Counter) -> Any:
    """The block's columns (read as bytes) as UTF-8 text; a cell that is not UTF-8 (a
    Latin-1 byte) has its bad bytes replaced (U+FFFD) and is counted, so one bad row
    costs itself, not the file."""
    import pyarrow as pa

    columns = []
    for column in batch.columns:
        try:
            columns.append(column.cast(pa.string()))
        except pa.ArrowInvalid:
            values = column.to_pylist()
            repaired = [value.decode("utf-8", errors="replace") for value in values]
            cut["invalid_utf8_replaced"] += sum(value.encode("utf-8") != raw
                                                for value, raw in zip(repaired, values, strict=True))
            columns.append(pa.array(repaired, pa.string()))
    return pa.Table.from_arrays(columns, names=batch.schema.names)


def _empty_catalogue() -> Any:
    import pyarrow as pa

    types = (pa.int64(), pa.string(), pa.string(), pa.float64(), pa.string(), pa.string(), pa.float64(),
                       pa.float64())
    return pa.Table.from_arrays([pa.array([], kind) for kind in types], names=list(CATALOGUE_COLUMNS))


def _normalise(table: Any, layout: str, skipped: Counter, cut: Counter) -> Any:
    """The rows in the catalogue's columns; a row without an id, a name or a position on
    the sky counted as ``malformed_row`` and left out; text cells cut to their bounds
    (``MAX_TEXT_CHARS``; ``MAX_ALIASES`` internal names, ``MAX_INTERNAL_CHARS``), counted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if layout == PUBLIC_LAYOUT:
        objid, name = table["objid"], pc.utf8_trim_whitespace(
            pc.binary_join_element_wise(pc.utf8_trim_whitespace(table["name_prefix"]),
                                        pc.utf8_trim_whitespace(table["name"]), " "))
        ra, dec = _number(table["ra"]), _number(table["declination"])
        names = ("type", "redshift", "discoverydate", "internal_names")
    else:
        objid, name = table["ID"], pc.utf8_trim_whitespace(table["Name"])
        ra, dec = _angle(table["RA"], 15.0), _angle(table["DEC"], 1.0)
        names = ("Obj. Type", "Redshift", "Discovery Date (UT)", "Disc. Internal Name")
    kind, redshift, discovery, internal = (table[column] for column in names)
    name, kind, discovery = (_bounded_text(column, MAX_TEXT_CHARS, label, cut) for column, label in
                             ((name, "name"), (kind, "type"), (discovery, "discovery_date")))
    internal = _bounded_aliases(internal, cut)
    ids = pc.match_substring_regex(objid, r"^\s*\d{1,18}\s*$")
    valid = pc.and_(pc.and_(ids, pc.greater(pc.utf8_length(name), 0)),
                    pc.and_(pc.and_(pc.greater_equal(ra, 0.0), pc.less_equal(ra, 360.0)),
                            pc.and_(pc.greater_equal(dec, -90.0), pc.less_equal(dec, 90.0))))
    valid = pc.fill_null(valid, False)
    dropped = len(table) - (pc.sum(valid).as_py() or 0)
    if dropped:
        skipped["malformed_row"] += dropped
    blank = pa.scalar(None, pa.string())
    kind, discovery = pc.utf8_trim_whitespace(kind), pc.utf8_trim_whitespace(discovery)
    columns = [pc.cast(pc.utf8_trim_whitespace(pc.if_else(ids, objid, "0")), pa.int64()), name,
               pc.if_else(pc.greater(pc.utf8_length(kind), 0), kind, blank), _number(redshift),
               pc.if_else(pc.greater(pc.utf8_length(discovery), 0), discovery, blank), internal, ra, dec]
    # Table.from_arrays, not pa.table(dict): that one imports pandas (a second) to ask if it was given a DataFrame
    return pa.Table.from_arrays(columns, names=list(CATALOGUE_COLUMNS)).filter(valid)


def _bounded_text(column: Any, limit: int, label: str, cut: Counter) -> Any:
    """``column`` with every cell cut to ``limit`` characters (counted as ``<label>_cut``)."""
    import pyarrow.compute as pc

    over = pc.sum(pc.greater(pc.utf8_length(column), limit)).as_py() or 0
    if not over:
        return column
    cut[f"{label}_cut"] += over
    return pc.utf8_slice_codeunits(column, 0, limit)


def _bounded_aliases(column: Any, cut: Counter) -> Any:
    """The internal names cells cut to their first ``MAX_ALIASES`` names and
    ``MAX_INTERNAL_CHARS`` characters (each cell cut counted once, ``internal_names_cut``)."""
    import pyarrow.compute as pc

    many = pc.greater_equal(pc.count_substring(column, ","), MAX_ALIASES)
    long = pc.greater(pc.utf8_length(column), MAX_INTERNAL_CHARS)
    over = pc.sum(pc.or_(many, long)).as_py() or 0
    if not over:
        return column
    cut["internal_names_cut"] += over
    kept = pc.binary_join(pc.list_slice(pc.split_pattern(column, ",", max_splits=MAX_ALIASES), 0, MAX_ALIASES), ",")
    return pc.utf8_slice_codeunits(pc.if_else(many, kept, column), 0, MAX_INTERNAL_CHARS)


def _number(column: Any) -> Any:
    """Decimal strings as float64; anything else (empty, NaN, text) null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    good = pc.match_substring_regex(column, _NUMBER)
    values = pc.cast(pc.utf8_trim_whitespace(pc.if_else(good, column, "0")), pa.float64())
    return pc.if_else(good, values, pa.scalar(None, pa.float64()))


def _angle(column: Any, scale: float) -> Any:
    """Sexagesimal (``22:28:51.860``, ``-05:02:01.2``) or decimal degrees as float64
    degrees; ``scale`` 15 for hours of right ascension."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.extract_regex(column, _SEXAGESIMAL)
    sexagesimal = pc.is_valid(parts)
    a, b, c = (pc.cast(pc.if_else(sexagesimal, pc.struct_field(parts, key), "0"), pa.float64())
               for key in ("a", "b", "c"))
    magnitude = pc.multiply(pc.add(pc.add(a, pc.divide(b, 60.0)), pc.divide(c, 3600.0)), scale)
    negative = pc.equal(pc.if_else(sexagesimal, pc.struct_field(parts, "sign"), ""), "-")
    degrees = pc.if_else(negative, pc.negate(magnitude), magnitude)
    return pc.if_else(sexagesimal, degrees, _number(column))


# ---------------------------------------------------------------- the catalogue kept


def merge(catalogue: Any, update: TnsFile) -> Any:
    """The catalogue after a file: a delta replaces and adds only the objects it names; a
    whole file replaces everything. Sorted by TNS id (one order whatever the history)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _unique_ids(update.table)
    if update.delta and catalogue is not None and len(catalogue):
        merged = _merged_in_order(catalogue, table)
        if merged is not None:
            return merged
        kept = catalogue.filter(pc.invert(pc.is_in(catalogue["objid"], value_set=table["objid"])))
        table = pa.concat_tables([kept, table.cast(kept.schema)])
    return table.take(pc.sort_indices(table, [("objid", "ascending")]))


def _merged_in_order(catalogue: Any, table: Any) -> Any:
    """A delta's rows (unique ids) put in place in a catalogue already in id order, in one
    ``take`` (a daily delta's merge: no filtered copy, no sort of the whole catalogue); None
    when the catalogue is not in strict id order or an id is missing (the general way then)."""
    import pyarrow as pa

    if catalogue["objid"].null_count or table["objid"].null_count:
        return None
    objids = catalogue["objid"].to_numpy()
    if len(objids) > 1 and not bool(np.all(objids[1:] > objids[:-1])):
        return None
    new_ids = table["objid"].to_numpy()
    kept_rows = np.flatnonzero(~np.isin(objids, new_ids))
    order = np.argsort(new_ids, kind="stable")
    at = np.searchsorted(objids[kept_rows], new_ids[order])
    rows = np.insert(kept_rows, at, len(objids) + order)
    return pa.concat_tables([catalogue, table.cast(catalogue.schema)]).take(pa.array(rows, pa.int64()))


def _unique_ids(table: Any) -> Any:
    """One row per TNS id: the last one of the file (its latest version), every id kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(table) == len(pc.unique(table["objid"])):
        return table
    positions = pa.array(np.arange(len(table)))
    last = table.append_column("_row", positions).group_by("objid").aggregate([("_row", "max")])
    rows = last["_row_max"]
    return table.take(rows.take(pc.sort_indices(rows)))  # the rows themselves (not 0..k-1), in file order


ALIAS_CHUNK_ROWS = 32_768


def _aliases_among(catalogue: Any, wanted: Any) -> tuple[Any, Any]:
    """(internal name, TNS id) of every internal name of every object that is one of
    ``wanted`` (Arrow strings). A block of rows is split at a time: the split of a whole
    catalogue of wide cells is tens of millions of names, of which only the few that are
    slot ids are ever used."""
    import pyarrow as pa
    import pyarrow.compute as pc

    length = pc.utf8_length(wanted)
    wanted = wanted.filter(pc.and_(pc.greater(length, 0), pc.less_equal(length, MAX_ALIAS_CHARS)))
    names, objids = [], []
    for start in range(0, len(catalogue), ALIAS_CHUNK_ROWS):
        block = catalogue.slice(start, ALIAS_CHUNK_ROWS)
        internal = block["internal"].combine_chunks().cast(pa.string())  # a large_string column too
        lists = pc.list_slice(pc.split_pattern(internal, ",", max_splits=MAX_ALIASES), 0, MAX_ALIASES)
        parents = pc.list_parent_indices(lists)
        flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
        keep = pc.is_in(flat, value_set=wanted)
        names.append(flat.filter(keep))
        objids.append(pc.take(block["objid"].combine_chunks(), parents.filter(keep)))
    objid_type = catalogue.schema.field("objid").type
    return (pa.chunked_array(names, pa.string()).combine_chunks(),
            pa.chunked_array(objids, objid_type).combine_chunks())


# ---------------------------------------------------------------- matching


def match(catalogue: Any, entries: list[dict[str, Any]], radius_arcsec: float) -> dict[str, tuple[int, dict]]:
    """(TNS id, record) of every slot (index entries) that matches, by slot id: by
    internal name first, else the nearest TNS object within ``radius_arcsec``."""
    import pyarrow as pa

    if catalogue is None or not len(catalogue) or not entries:
        return {}
    ids = [e["slot_id"] for e in entries]
    ra, dec = _positions(entries, "ra_deg"), _positions(entries, "dec_deg")
    placed = np.isfinite(ra) & np.isfinite(dec) & (dec >= -90) & (dec <= 90)
    ra = np.mod(ra, 360.0)
    where = {ids[i]: (ra[i], dec[i]) for i in np.flatnonzero(placed).tolist()}
    objids = catalogue["objid"].to_numpy()
    alias, alias_objid = _aliases_among(catalogue, pa.array(ids, pa.string()))
    named: dict[str, int] = {}
    for name, objid in zip(alias.to_pylist(), alias_objid.to_pylist(), strict=True):
        named[name] = min(objid, named.get(name, objid))
    named_rows = np.searchsorted(objids, np.array(list(named.values()), dtype=np.int64)).tolist()
    rows: dict[str, tuple[int, str]] = {slot_id: (row, "internal_name")
                                        for slot_id, row in zip(named, named_rows, strict=True)}
    unnamed = np.flatnonzero(placed & np.fromiter((slot_id not in named for slot_id in ids), bool, len(ids)))
    if len(unnamed):
        query, row, _ = nearest_within(ra[unnamed], dec[unnamed], catalogue["ra"].to_numpy(),
                                       catalogue["dec"].to_numpy(), radius_arcsec / 3600.0)
        rows.update({ids[unnamed[q]]: (r, "position") for q, r in zip(query.tolist(), row.tolist(), strict=True)})
    return _records(catalogue, rows, where)


def _positions(entries: list[dict[str, Any]], name: str) -> np.ndarray:
    """A coordinate of every index entry (NaN where it is missing or not a number)."""
    return np.fromiter((value if isinstance(value := entry.get(name), int | float) and not isinstance(value, bool)
                        else np.nan for entry in entries), dtype=float, count=len(entries))


def _records(catalogue: Any, rows: dict[str, tuple[int, str]], where: dict[str, tuple[float, float]]
             ) -> dict[str, tuple[int, dict]]:
    import pyarrow as pa

    slot_ids = sorted(rows)
    picked = catalogue.take(pa.array([rows[s][0] for s in slot_ids], pa.int64())).to_pylist()
    placed = [i for i, slot_id in enumerate(slot_ids) if slot_id in where]
    arcsec = separation_deg(np.array([where[slot_ids[i]][0] for i in placed]),
                            np.array([where[slot_ids[i]][1] for i in placed]),
                            np.array([picked[i]["ra"] for i in placed]),
                            np.array([picked[i]["dec"] for i in placed])) * 3600.0
    separations = dict(zip(placed, arcsec.tolist(), strict=True))
    found = {}
    for i, (slot_id, row) in enumerate(zip(slot_ids, picked, strict=True)):
        separation = separations.get(i)
        found[slot_id] = (row["objid"], {"name": row["name"], "type": row["type"], "redshift": row["redshift"],
                                         "discovery_date": row["discovery"], "match": rows[slot_id][1],
                                         "separation_arcsec": separation})
    return found


def separation_deg(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Angular separations in degrees (Vincenty's formula, as astropy's
    ``angular_separation``: exact at every distance)."""
    lon1, lat1, lon2, lat2 = (np.radians(values) for values in (ra1, dec1, ra2, dec2))
    delta = lon2 - lon1
    sin_delta, cos_delta = np.sin(delta), np.cos(delta)
    sin1, cos1, sin2, cos2 = np.sin(lat1), np.cos(lat1), np.sin(lat2), np.cos(lat2)
    across = np.hypot(cos2 * sin_delta, cos1 * sin2 - sin1 * cos2 * cos_delta)
    return np.degrees(np.arctan2(across, sin1 * sin2 + cos1 * cos2 * cos_delta))


#: Most candidate pairs held at once by ``nearest_within`` (bounded memory).
MAX_PAIRS = 2_000_000


def nearest_within(ra: np.ndarray, dec: np.ndarray, cat_ra: np.ndarray, cat_dec: np.ndarray, radius_deg: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, catalogue index, separation in degrees) of the nearest catalogue
    position within ``radius_deg`` of each query position that has one (ties: the lower
    catalogue index)."""
    queries, rows, separations = pairs_within(ra, dec, cat_ra, cat_dec, radius_deg)
    best = np.lexsort((rows, separations, queries))
    keep = best[np.r_[True, queries[best][1:] != queries[best][:-1]]] if len(best) else best
    return queries[keep], rows[keep], separations[keep]


def pairs_within(ra: np.ndarray, dec: np.ndarray, cat_ra: np.ndarray, cat_dec: np.ndarray, radius_deg: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, catalogue index, separation in degrees) of every pair within ``radius_deg``.

    The catalogue is cut in declination zones one radius high, sorted by zone then right
    ascension; each query looks at its own and the two next zones, in the right-ascension
    range the radius spans there (two ranges across 0h): every candidate pair is found
    with a few binary searches and measured exactly. Pairs are made in chunks of queries
    (``MAX_PAIRS``), so memory stays bounded whatever the density."""
    height = max(radius_deg, 1e-7)
    zone = np.floor((cat_dec + 90.0) / height)
    key = zone * 512.0 + cat_ra
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts, stops, owners = _candidate_ranges(ra, dec, sorted_key, radius_deg, height)
    counts = stops - starts
    found_query, found_row, found_sep = [], [], []
    first = 0
    cumulative = np.cumsum(counts)
    while first < len(counts):
        base = cumulative[first - 1] if first else 0
        last = max(int(np.searchsorted(cumulative, base + MAX_PAIRS, side="right")), first + 1)
        chunk = slice(first, last)
        size = counts[chunk]
        total = int(size.sum())
        if total:
            offsets = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
            rows = order[np.repeat(starts[chunk], size) + offsets]
            queries = np.repeat(owners[chunk], size)
            separations = separation_deg(ra[queries], dec[queries], cat_ra[rows], cat_dec[rows])
            inside = separations <= radius_deg
            found_query.append(queries[inside])
            found_row.append(rows[inside])
            found_sep.append(separations[inside])
        first = last
    if not found_query:
        return np.array([], int), np.array([], int), np.array([], float)
    queries, rows, separations = (np.concatenate(parts) for parts in (found_query, found_row, found_sep))
    return queries, rows, separations


def _candidate_ranges(ra: np.ndarray, dec: np.ndarray, sorted_key: np.ndarray, radius_deg: float, height: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, stop, query) of every range of ``sorted_key`` a query must look in."""
    zone = np.floor((dec + 90.0) / height)
    highest = np.radians(np.minimum(np.abs(dec) + radius_deg + height, 90.0))
    ratio = np.sin(np.radians(radius_deg)) / np.maximum(np.cos(highest), 1e-300)
    half = np.where(ratio >= 1.0, 360.0, np.degrees(np.arcsin(np.minimum(ratio, 1.0))) * (1 + 1e-9) + 1e-9)
    starts, stops, owners = [], [], []
    queries = np.arange(len(ra))
    for step in (-1.0, 0.0, 1.0):
        base = (zone + step) * 512.0
        low, high = ra - half, ra + half
        whole = half >= 180.0
        spans = [(np.where(whole, 0.0, np.maximum(low, 0.0)), np.where(whole, 360.0, np.minimum(high, 360.0))),
                 (np.where(~whole & (low < 0), low + 360.0, 1.0), np.where(~whole & (low < 0), 360.0, 0.0)),
                 (np.where(~whole & (high > 360), 0.0, 1.0), np.where(~whole & (high > 360), high - 360.0, 0.0))]
        for lower, upper in spans:
            start = np.searchsorted(sorted_key, base + lower, side="left")
            stop = np.searchsorted(sorted_key, base + upper, side="right")
            stop = np.maximum(stop, start)
            starts.append(start)
            stops.append(stop)
            owners.append(queries)
    return np.concatenate(starts), np.concatenate(stops), np.concatenate(owners)


# ---------------------------------------------------------------- state

#: Columns of the kept slot table (``slots-N.arrow``): one row per matched slot, its file
#: identity as last checked (-1: never checked) and its record as JSON.
SLOT_COLUMNS = ("slot_id", "objid", "record", "fink", "ino", "size", "mtime_ns", "ctime_ns")
#: A file whose recorded ctime is this much older than its hash is known by its identity
#: alone: any later write sets its ctime to the time of that write (the clock's granularity
#: is far finer), so an equal identity means the bytes hashed.
TRUSTED_AGE_NS = 2_000_000_000


class KeptSlots:
    """The matched slots kept: the Arrow table read (one row per slot: ``SLOT_COLUMNS``)
    and this run's changes on top, so a run that touches a few slots neither parses nor
    re-encodes the others. A mapping of slot id to ``objid``, ``record``, ``fink`` and
    ``file`` (its identity, None when never checked)."""

    def __init__(self, table: Any = None, legacy: dict[str, dict[str, Any]] | None = None) -> None:
        self.base = table if table is not None else _slot_table({})
        self.changes: dict[str, dict[str, Any] | None] = dict(legacy or {})
        self._rows: dict[str, int] | None = None

    def _row_of(self) -> dict[str, int]:
        if self._rows is None:
            self._rows = {slot_id: row for row, slot_id in enumerate(self.base["slot_id"].to_pylist())}
        return self._rows

    def bulk(self, slot_ids: Any) -> dict[str, dict[str, Any]]:
        """The kept slots among ``slot_ids``, read from the table at once."""
        import pyarrow as pa
        import pyarrow.compute as pc

        found = {slot_id: self.changes[slot_id] for slot_id in slot_ids if self.changes.get(slot_id) is not None}
        rest = pa.array([slot_id for slot_id in slot_ids if slot_id not in self.changes], pa.string())
        if len(rest) and len(self.base):
            for row in self.base.filter(pc.is_in(self.base["slot_id"], value_set=rest)).to_pylist():
                found[row["slot_id"]] = {"objid": row["objid"], "record": orjson.loads(row["record"]),
                                         "fink": row["fink"],
                                         "file": None if row["ino"] < 0 else [row[c] for c in SLOT_COLUMNS[4:]]}
        return found

    def __setitem__(self, slot_id: str, kept: dict[str, Any]) -> None:
        self.changes[slot_id] = kept

    def pop(self, slot_id: str, _default: Any = None) -> None:
        if slot_id in self:
            self.changes[slot_id] = None

    def __contains__(self, slot_id: object) -> bool:
        if slot_id in self.changes:
            return self.changes[slot_id] is not None
        return slot_id in self._row_of()

    def ids(self) -> set[str]:
        return ({slot_id for slot_id in self._row_of() if slot_id not in self.changes}
                | {slot_id for slot_id, kept in self.changes.items() if kept is not None})

    def with_objids(self, objids: Any) -> set[str]:
        """The slots matched to any of these TNS ids."""
        import pyarrow.compute as pc

        hits = self.base["slot_id"].filter(pc.is_in(self.base["objid"], value_set=objids)).to_pylist()
        wanted = set(objids.to_pylist())
        return ({slot_id for slot_id in hits if slot_id not in self.changes}
                | {slot_id for slot_id, kept in self.changes.items() if kept is not None and kept["objid"] in wanted})

    def identities(self) -> tuple[Any, np.ndarray]:
        """(slot ids, a list or an Arrow array; their file identities as an n × 4 array,
        -1 where never checked), without parsing a record (a rerun's whole need)."""
        table = self.table()
        columns = [table[name].to_numpy() for name in SLOT_COLUMNS[4:]]
        return table["slot_id"].combine_chunks(), (np.stack(columns, axis=1) if len(table)
                                                   else np.empty((0, 4), np.int64))

    def table(self) -> Any:
        """The whole table, this run's changes applied, sorted by slot id."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.changes:
            return self.base
        unchanged = self.base.filter(pc.invert(pc.is_in(self.base["slot_id"],
                                                        value_set=pa.array(list(self.changes), pa.string()))))
        new = _slot_table({slot_id: kept for slot_id, kept in self.changes.items() if kept is not None})
        merged = pa.concat_tables([unchanged, new.cast(unchanged.schema)])
        self.base, self.changes, self._rows = merged.take(pc.sort_indices(merged["slot_id"])), {}, None
        return self.base

    def matches(self) -> dict[str, Any]:
        """Matches by kind and TNS type, and where TNS's class and Fink's label disagree (a
        class other than the label's, or an Unknown object that the class refines)."""
        import pyarrow.compute as pc

        table = self.table()
        counts = [pc.value_counts(pc.fill_null(table[name], "none")).to_pylist() for name in ("match", "type")]
        by_match, by_type = ({count["values"]: count["counts"] for count in part} for part in counts)
        typed = table.filter(pc.is_valid(table["type"]))
        disagreements = []
        for slot_id, kind, label, record in zip(*(typed[name].to_pylist() for name in
                                                  ("slot_id", "type", "fink", "record")), strict=True):
            refined, expected = subtype_of_class(kind), FINK_SUBTYPES.get(label or "")
            expected = None if expected == "unknown" else expected  # Unknown: any class refines it
            if (label == "Unknown" and refined) or (expected is not None and refined != expected):
                disagreements.append({"slot_id": slot_id, "fink_classification": label, "tns_type": kind,
                                      "tns_name": orjson.loads(record)["name"]})
        return {"matched": len(table), "by_match": dict(sorted(by_match.items())),
                "by_type": dict(sorted(by_type.items())), "disagreements": disagreements[:100],
                "disagreement_count": len(disagreements)}


def _slot_table(slots: dict[str, dict[str, Any]]) -> Any:
    import pyarrow as pa

    ids = sorted(slots)
    identities = np.array([slots[s]["file"] or (-1, -1, -1, -1) for s in ids], np.int64).reshape(len(ids), 4)
    records = [slots[s]["record"] for s in ids]
    columns = [pa.array(ids, pa.string()), pa.array([slots[s]["objid"] for s in ids], pa.int64()),
               pa.array([orjson.dumps(record).decode() for record in records], pa.string()),
               pa.array([slots[s].get("fink") for s in ids], pa.string()),
               *(pa.array(identities[:, i], pa.int64()) for i in range(4)),
               pa.array([record.get("match") for record in records], pa.string()),
               pa.array([record.get("type") for record in records], pa.string())]
    return pa.Table.from_arrays(columns, names=[*SLOT_COLUMNS, "match", "type"])


#: The Arrow files the state names, by key, and the only names ``tns`` writes or deletes there.
KEPT_FILES = {"catalogue": "catalogue", "slot_file": "slot", "position_file": "position"}
KEPT_FILE = re.compile(r"(catalogue|slot|position)-\d{1,18}\.arrow")
_STATE_DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ints(value: Any, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and all(_is_int(item) for item in value)


def _date_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(_STATE_DATE.fullmatch(value)))


def _applied_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("file"), str) and _date_or_none(entry.get("as_of"))


def _seen_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and _ints(entry.get("identity"), 5) and isinstance(entry.get("digest"), str) \
        and _is_int(entry.get("hashed_at"))


def _legacy_slot(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("record"), dict) \
        and (entry.get("objid") is None or _is_int(entry.get("objid"))) \
        and (entry.get("file") is None or _ints(entry.get("file"), 4))


def _matches(value: Any) -> bool:
    return isinstance(value, dict) and _is_int(value.get("matched")) and _is_int(value.get("disagreement_count")) \
        and all(isinstance(value.get(key), dict) for key in ("by_match", "by_type")) \
        and isinstance(value.get("disagreements"), list)


#: What every field of ``state.json`` must be (a field may be absent).
_STATE_FIELDS = {
    "generation": lambda v: _is_int(v) and v >= 0,
    "applied": lambda v: isinstance(v, dict) and all(_applied_entry(e) for e in v.values()),
    "seen": lambda v: isinstance(v, dict) and all(_seen_entry(e) for e in v.values()),
    "as_of": _date_or_none, "full_as_of": _date_or_none,
    "complete": lambda v: isinstance(v, bool),
    "layout": lambda v: v is None or v in (PUBLIC_LAYOUT, SEARCH_LAYOUT),
    "tns_objects": lambda v: _is_int(v) and v >= 0,
    "radius_arcsec": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "index": lambda v: v is None or _ints(v, 4), "positions_index": lambda v: v is None or _ints(v, 4),
    "matches": _matches,
    "slots": lambda v: isinstance(v, dict) and all(_legacy_slot(e) for e in v.values()),
    **{key: (lambda v, prefix=prefix: v is None or (isinstance(v, str) and KEPT_FILE.fullmatch(v) is not None
                                                   and v.startswith(prefix + "-")))
       for key, prefix in KEPT_FILES.items()},
}


def state_problem(data: Any) -> str | None:
    """What makes ``data`` not a state ``tns`` writes (None when it is one): every field's
    type is checked, and the files it names must be names this code makes (a name such as
    ``../../x`` would make ``save`` delete a file outside ``state/tns/``)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("version") not in (2, 3):
        return f"version {str(data.get('version'))[:20]!r} is not 2 or 3"
    for key, valid in _STATE_FIELDS.items():
        if key in data and not valid(data[key]):
            return f"{key!r} is {str(data[key])[:80]!r}"
    return None


class State:
    """What ``tns`` keeps under ``state/tns/``: Arrow files named by their generation (the
    catalogue; the matched slots with their records and file identities; the positions of
    the slots as last read from the index), and ``state.json``, written last, which commits
    them: the files applied (by content hash, with their identity so an unchanged file is
    not hashed again), the radius, the index identity, and the match counts."""

    def __init__(self, storehouse: str) -> None:
        layout = StorehouseLayout.at(storehouse)
        self.directory = layout.state_directory(STATE)
        try:
            self.raw = read_bounded(os.path.join(self.directory, STATE_NAME))
            self.data = orjson.loads(self.raw)
        except FileNotFoundError:
            self.raw, self.data = b"", {}
        except (OSError, ValueError) as exc:
            log.warning("tns: the kept state (%s) is unreadable (%s): starting from no state", STATE_NAME, exc)
            self.raw, self.data = b"", {}
        problem = state_problem(self.data) if self.data else None
        if problem:
            log.warning("tns: the kept state (%s) is not one tns writes (%s): starting from no state",
                        os.path.join(self.directory, STATE_NAME), problem)
            self.data = {}
        self._forget_unreadable_tables()
        self._slots: KeptSlots | None = None
        self._positions: Any = None
        self.positions_changed = False
        legacy = None
        if isinstance(self.data.get("slots"), dict):  # version 2 kept the slots in state.json
            legacy = self.data.pop("slots")
            self.data.pop("slot_file", None)
        self.data["version"] = 3
        for key, empty in (("applied", {}), ("seen", {}), ("generation", 0)):
            self.data.setdefault(key, empty)
        first = read_json_file(layout.state_file(LEGACY_STATE))
        if not self.data.get("slot_file") and not legacy and isinstance(first, dict) \
                and isinstance(first.get("slots"), dict):
            # the first version kept only the records: check those slots once
            legacy = {slot_id: {"objid": None, "record": record, "file": None}
                      for slot_id, record in first["slots"].items() if isinstance(record, dict)}
        if legacy:
            self._slots = KeptSlots(None, legacy)
        self.slots_changed = legacy is not None

    def _forget_unreadable_tables(self) -> None:
        """A kept Arrow file that is gone or unreadable is no state: without the catalogue,
        what was built from it (the files applied, its date) is forgotten too, so the next
        whole file applies in full and a delta says the catalogue is incomplete; without
        the slot table, the files applied are forgotten so the next file matches every
        slot again. Never a reason to remove a slot's record."""
        import pyarrow as pa

        forget = {"catalogue": ("applied", "seen", "as_of", "full_as_of", "complete", "layout", "tns_objects"),
                  "slot_file": ("applied", "seen", "matches"), "position_file": ("positions_index",)}
        for key, derived in forget.items():
            name = self.data.get(key)
            if not name:
                continue
            try:
                with _mapped(os.path.join(self.directory, name)) as source:
                    pa.ipc.open_file(source)
                continue
            except (OSError, pa.ArrowInvalid) as exc:
                log.warning("tns: the kept %s is gone or unreadable (%s): %s", name, exc,
                            "the next whole file applies in full" if key != "position_file" else "read again")
            for dropped in (key, *derived):
                self.data.pop(dropped, None)

    def _table(self, key: str) -> Any:
        import pyarrow as pa

        name = self.data.get(key)
        if not name:
            return None
        try:
            with _mapped(os.path.join(self.directory, name)) as source:
                return pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowInvalid) as exc:
            log.warning("tns: the kept %s is unreadable (%s)", name, exc)
            self.data[key] = None
            return None

    def catalogue(self) -> Any:
        return self._table("catalogue")

    def slots(self) -> KeptSlots:
        """Per matched slot: ``objid``, ``record``, ``fink`` and ``file`` (its identity)."""
        if self._slots is None:
            self._slots = KeptSlots(self._table("slot_file"))
        return self._slots

    def positions(self) -> Any:
        """The slots' positions as last read from the index (``slot_id``, ``ra``, ``dec``),
        valid while the index file is the one then read (``positions_index``)."""
        if self._positions is None:
            self._positions = self._table("position_file")
        return self._positions

    def keep_positions(self, entries: list[dict[str, Any]], index_identity: list[int] | None) -> None:
        import pyarrow as pa

        self._positions = pa.Table.from_arrays(
            [pa.array([entry["slot_id"] for entry in entries], pa.string()),
             pa.array(_positions(entries, "ra_deg")), pa.array(_positions(entries, "dec_deg"))],
            names=["slot_id", "ra", "dec"])
        self.data["positions_index"] = index_identity
        self.positions_changed = True

    def changed(self) -> bool:
        """Whether anything differs from what was read (a rerun that changed nothing writes nothing)."""
        return self.slots_changed or self.positions_changed or orjson.dumps(self.data) != self.raw

    def save(self, catalogue: Any | None) -> None:
        """Write the Arrow files that changed and then ``state.json``, which commits them."""
        import pyarrow as pa

        os.makedirs(self.directory, exist_ok=True)
        tables = {}
        if catalogue is not None:
            tables["catalogue"] = catalogue
        if self.slots_changed:
            tables["slot_file"] = self.slots().table()
        if self.positions_changed:
            tables["position_file"] = self._positions
        if tables:
            self.data["generation"] += 1
        for key, table in tables.items():
            name = f"{key.split('_')[0]}-{self.data['generation']}.arrow"
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            write_atomically(os.path.join(self.directory, name), sink.getvalue())  # the buffer, not a copy
            self.data[key] = name
        write_atomically(os.path.join(self.directory, STATE_NAME), orjson.dumps(self.data))
        self._remove_unused_files()

    def _remove_unused_files(self) -> None:
        """Delete the Arrow files of earlier generations: only names this code makes
        (``KEPT_FILE``), found in ``state/tns/`` itself and not named by the state."""
        in_use = {self.data.get(key) for key in KEPT_FILES}
        for name in os.listdir(self.directory):
            if KEPT_FILE.fullmatch(name) and name not in in_use:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, name))


def _mapped(path: str) -> Any:
    """A kept Arrow file, memory-mapped; ``OSError`` when it is not a regular file (a FIFO
    planted in its place would be waited on for ever)."""
    import pyarrow as pa

    what = not_regular(os.stat(path).st_mode)
    if what:
        raise OSError(f"{path} is {what}, not a file tns wrote")
    return pa.memory_map(path)


def file_identity(path: str) -> list[int] | None:
    """What changes whenever a file is replaced or rewritten (inode, size, mtime, ctime)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]


def content_hash(path: str) -> str:
    """The file's SHA-256, read from a handle opened as a regular file (never a FIFO)."""
    digest = hashlib.sha256()
    with open_regular(path, follow_links=True) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def known_hash(path: str, seen: dict[str, Any]) -> str:
    """The content hash of ``path``, taken from ``seen`` without reading the file when its
    identity (device, inode, size, mtime, ctime) is the one recorded and its ctime was
    ``TRUSTED_AGE_NS`` older than the hash then (``seen`` updated otherwise)."""
    status = os.stat(path)
    identity = [status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]
    key = os.path.abspath(path)
    known = seen.get(key)
    if isinstance(known, dict) and known.get("identity") == identity \
            and status.st_ctime_ns < known.get("hashed_at", 0) - TRUSTED_AGE_NS:
        return known["digest"]
    hashed_at = time.time_ns()
    digest = content_hash(path)
    seen[key] = {"identity": identity, "digest": digest, "hashed_at": hashed_at}
    return digest


# ---------------------------------------------------------------- applying


@dataclass
class Plan:
    """The files to apply, in order, and the ones left out with their reason."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (path, content hash)
    left_out: list[dict[str, str]] = field(default_factory=list)


def plan(path: str, applied: dict[str, Any], seen: dict[str, Any] | None = None) -> Plan:
    """The files of ``path`` (a file, or a directory of TNS public objects files) not
    applied yet, in date order (a day's delta before the next day's full file). In a
    directory, every entry not applied is named: a name a directory does not apply at
    WARNING (``ignored``), a TNS name that is not a regular file (a link to one is) or
    cannot be read in ``left_out`` with its reason; a directory that holds entries and no
    TNS name at all is itself left out, saying which names it applies."""
    seen = {} if seen is None else seen
    chosen = Plan()
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise TnsFileError(f"{path}: no such file (or a link to nothing)")
        regular = os.path.isfile(path)
        digest = known_hash(path, seen) if regular else ""
        if not regular or digest not in applied:
            chosen.files.append((path, digest))
        else:
            before = applied[digest]
            log.info("tns: %s was applied before (the same bytes, as %s of %s): nothing new in it", path,
                     before.get("file"), before.get("as_of") or "an undated file")
        return chosen
    dated, recognised = [], 0
    names = sorted(os.listdir(path))
    for name in names:
        full = os.path.join(path, name)
        if not (FULL_NAME.fullmatch(name) or DELTA_NAME.fullmatch(name) or HOURLY_NAME.fullmatch(name)):
            hint = _ignored_hint(name)
            log.warning("tns: %s in %s is ignored: %s%s", name, path, NOT_TNS_NAME, hint)
            chosen.left_out.append({"file": name, "reason": NOT_TNS_NAME + hint, "ignored": True})
            continue
        what = _not_a_file(full)
        if what:
            chosen.left_out.append({"file": name, "reason": f"named like a TNS file but {what}: never read"})
            continue
        recognised += 1
        try:
            digest = known_hash(full, seen)
            if digest in applied:
                continue
            delta, when = file_kind(full)
            when = when or _first_line_date(full)
        except (TnsFileError, OSError) as exc:
            chosen.left_out.append({"file": name, "reason": str(exc)})
            continue
        dated.append((when or "", 0 if delta else 1, name, full, digest))
    chosen.files = [(full, digest) for *_, full, digest in sorted(dated)]
    if names and not recognised:
        chosen.left_out.append({"file": path, "reason": f"nothing in this directory could be applied: it applies "
                                                        f"only {DIRECTORY_NAMES}"})
    return chosen


_REDOWNLOAD = re.compile(r"(tns_public_objects(?:_\d{8})?)\s*(?:\(\d+\))?\.csv(?:\.zip)?(?:\.\d+)?")


def _ignored_hint(name: str) -> str:
    """A hint for a name that looks like a TNS file saved twice (``… (1).csv``, ``….csv.1``)."""
    found = _REDOWNLOAD.fullmatch(name)
    return f" (a second download? rename it to {found.group(1)}.csv)" if found else ""


def _not_a_file(path: str) -> str:
    """What ``path`` is when it is not a regular file once links are followed ('' when it is one)."""
    try:
        return not_regular(os.stat(path).st_mode)
    except OSError:
        return "a link to nothing"


def _first_line_date(path: str) -> str | None:
    """The date on the first line of a public objects file (None when there is none)."""
    try:
        with _Source(path) as source:
            _, _, dated = _layout_of(path, source.head())
    except (TnsFileError, OSError, *_UNREADABLE):
        return None
    return dated


def apply(storehouse: str, path: str, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC) -> dict[str, Any]:
    """Apply the TNS file at ``path`` (or the files of the directory ``path`` not applied
    yet) to the transient slots of ``storehouse``; the summary, also written into the
    transient roster (``tns``). TnsFileError when a single file given is refused;
    a single file given that is superseded is in ``files_left_out``."""
    spec = kinds.spec("transient")
    index_path = StorehouseLayout.at(storehouse).index(spec.name)
    if not os.path.isfile(index_path):  # checked before anything is created: a mistyped storehouse stays absent
        raise TnsSetupError(f"no transient index ({index_path}); run the build first")
    store = spec.store(storehouse)
    state = State(storehouse)
    given_file = not os.path.isdir(path)
    chosen = plan(path, state.data["applied"], state.data["seen"])
    catalogue, changed, files = None, False, []
    updates: list[Any] | None = []  # the rows of the deltas applied (None: a whole catalogue changed)
    for file_path, digest in chosen.files:
        try:
            read = read_file(file_path)
        except TnsFileError as exc:
            if given_file:
                raise
            log.error("tns: %s; that file was not used", exc)
            chosen.left_out.append({"file": os.path.basename(file_path), "reason": str(exc)})
            continue
        superseded = _superseded(read, state.data)
        if superseded:
            files.append(_file_summary(read, superseded))
            if given_file:  # said every time it is given
                chosen.left_out.append({"file": os.path.basename(file_path), "reason": f"{superseded} (of "
                                        f"{state.data['full_as_of']}: it holds this day's changes); not used"})
            else:  # a directory's file: not read again
                state.data["applied"][digest] = {"file": os.path.basename(file_path), "as_of": read.as_of}
            continue
        if catalogue is None and not changed:
            catalogue = state.catalogue() if read.delta else None
        if read.delta and catalogue is None:
            log.warning("tns: %s updates only the objects it lists and no whole TNS file was applied before: the "
                        "catalogue holds only the objects of such files (catalogue_complete false)", file_path)
            state.data["complete"] = False
        elif not read.delta:
            state.data.update({"complete": True, "full_as_of": read.as_of})
        if updates is not None and read.delta and catalogue is not None:
            updates.append(read.table)
        else:
            updates = None
        catalogue, changed = merge(catalogue, read), True
        _advance_date(state.data, read)
        state.data["layout"] = read.layout
        state.data["applied"][digest] = {"file": os.path.basename(file_path), "as_of": read.as_of}
        files.append(_file_summary(read, "applied"))
    if not chosen.files and not state.data.get("catalogue") and given_file:
        raise TnsFileError(f"{path}: nothing to apply")
    _prune(state.data["applied"], state.data["seen"])
    with held_off():  # the index's and the catalogue's hundreds of thousands of rows: no cycle among them
        return _refresh(store, spec, state, catalogue if changed else None, updates, radius_arcsec, files,
                        chosen.left_out)


def _superseded(read: TnsFile, data: dict[str, Any]) -> str:
    """Why the file is not applied ('' when it is): only a daily delta dated no later than
    the whole file kept is superseded (that file holds its changes). A whole file is the
    whole truth of its day and replaces the catalogue whatever its date, so a mistyped
    future date cannot block the files after it."""
    kept = data.get("full_as_of")
    if read.delta and read.as_of and kept and read.as_of <= kept:
        return SUPERSEDED
    return ""


def _advance_date(data: dict[str, Any], read: TnsFile) -> None:
    """The catalogue's date after ``read``: a whole file's own; a delta's when later."""
    if not read.delta:
        data["as_of"] = read.as_of
    elif read.as_of and (not data.get("as_of") or read.as_of > data["as_of"]):
        data["as_of"] = read.as_of


def _file_summary(read: TnsFile, status: str) -> dict[str, Any]:
    scope = ("the objects it lists (a search export is a page of a search, not the catalogue)"
             if read.layout == SEARCH_LAYOUT else "the objects it lists" if read.delta else "the whole catalogue")
    return {"file": os.path.basename(read.path), "layout": read.layout, "delta": read.delta, "updates": scope,
            "as_of": read.as_of, "rows": len(read.table), "skipped_rows": dict(read.skipped),
            "cut_cells": dict(read.cut), "status": status}


def _prune(applied: dict[str, Any], seen: dict[str, Any], keep: int = 5000) -> None:
    """Remember the newest ``keep`` files applied (a year of daily files and more), and the
    identities of the files whose hash is still remembered."""
    if len(applied) > keep:
        for digest in sorted(applied, key=lambda d: applied[d].get("as_of") or "")[:len(applied) - keep]:
            del applied[digest]
    if len(seen) > keep:
        for key in sorted(seen, key=lambda k: seen[k].get("hashed_at", 0))[:len(seen) - keep]:
            del seen[key]


def _refresh(store: Any, spec: Any, state: State, catalogue: Any | None, updates: list[Any] | None,
             radius_arcsec: float, files: list[dict[str, Any]], left_out: list[dict[str, str]]) -> dict[str, Any]:
    """Match what may have changed (everything when a whole file or the radius changed;
    after deltas, only the slots named by, near, or matched to the objects they name; after
    the index changed, also the slots new or moved since the positions kept); check every matched slot's file identity; then read and write only the
    slots whose record changed or whose file is not the one last checked."""
    index_path = store.layout.index(spec.name)
    index_identity = file_identity(index_path)
    data = state.data
    same = data.get("radius_arcsec") == radius_arcsec and data.get("index") == index_identity
    entries = None
    wanted: dict[str, tuple[int, dict] | None] = {}
    rematched = 0
    if (catalogue is not None or not same) and (catalogue is None or updates) and _positions_kept(state, data,
                                                                                                radius_arcsec):
        # deltas, or the index rewritten by a build: only new, moved or gone slots and those
        # the deltas can change (a slot's match depends on its id, its position and the catalogue)
        if data.get("positions_index") != index_identity:
            entries = _read_index(index_path)
            wanted = _rematch_changed(catalogue if catalogue is not None else state.catalogue(), entries, state,
                                      radius_arcsec)
            state.keep_positions(entries, index_identity)
        if updates:
            wanted.update(_rematch_near(catalogue, updates, state, radius_arcsec))
        rematched = len(wanted)
    elif catalogue is not None or not same:
        entries = _read_index(index_path)
        current = catalogue if catalogue is not None else state.catalogue()
        found = match(current, entries, radius_arcsec)
        wanted = {slot_id: found.get(slot_id) for slot_id in set(found) | state.slots().ids()}
        state.keep_positions(entries, index_identity)
        rematched = len(entries)
    slots = state.slots()
    moved = _moved_on_disk(store, *slots.identities())
    known = slots.bulk(set(wanted) | moved)
    for slot_id in moved:
        wanted.setdefault(slot_id, (known[slot_id]["objid"], known[slot_id]["record"]))
    todo = {}
    silent = _silent_objids(catalogue if catalogue is not None else state.catalogue, wanted, known) \
        if not data.get("complete") else set()
    for slot_id, target in wanted.items():
        kept = known.get(slot_id)
        if target is None and kept is not None and kept["objid"] in silent:
            continue  # an incomplete catalogue's silence on an object is not its removal
        if kept is not None and slot_id not in moved and target is not None and kept["record"] == target[1]:
            if kept["objid"] != target[0]:
                slots[slot_id] = {**kept, "objid": target[0]}
                state.slots_changed = True
            continue
        if kept is None and target is None:
            continue
        todo[slot_id] = target
    written, restored, index_changes = _apply_records(store, spec, state, todo, known)
    if index_changes:
        if not store.patch_index(index_changes):
            entries = entries if entries is not None else _read_index(index_path)
            store.write_index([index_changes.get(entry["slot_id"], entry) for entry in entries])
        if data.get("positions_index") == index_identity:
            data["positions_index"] = file_identity(index_path)  # tns changes no position
        index_identity = file_identity(index_path)
    data.update({"radius_arcsec": radius_arcsec, "index": index_identity})
    if state.slots_changed or "matches" not in data:
        data["matches"] = slots.matches()
    summary = {**_summary(state, catalogue, files, left_out, written, restored, len(todo)),
               "slots_rematched": rematched}
    if catalogue is not None or state.changed():
        state.save(catalogue)
        update_roster(store.layout, spec.name, {RECORD_FIELD: summary})
    return summary


def _positions_kept(state: State, data: dict[str, Any], radius_arcsec: float) -> bool:
    """Whether the slots' positions and a catalogue are kept for the same radius (so only
    what changed needs matching)."""
    return data.get("radius_arcsec") == radius_arcsec and state.positions() is not None \
        and state.catalogue() is not None


def _rematch_changed(catalogue: Any, entries: list[dict[str, Any]], state: State, radius_arcsec: float
                     ) -> dict[str, tuple[int, dict] | None]:
    """After the index changed (a build): the match of each slot that is new or moved since
    the positions kept, and no match for a matched slot no longer in the index. Every
    other slot has the same id and position, so the same match."""
    positions = state.positions()
    ids = [entry["slot_id"] for entry in entries]
    ra, dec = _positions(entries, "ra_deg"), _positions(entries, "dec_deg")
    before = dict(zip(positions["slot_id"].to_pylist(), zip(positions["ra"].to_numpy(zero_copy_only=False).tolist(),
                                                            positions["dec"].to_numpy(zero_copy_only=False).tolist(),
                                                            strict=True), strict=True))
    changed = [i for i, (slot_id, now) in enumerate(zip(ids, zip(ra.tolist(), dec.tolist(), strict=True),
                                                        strict=True))
               if not _same_place(before.get(slot_id), now)]
    found = match(catalogue, [entries[i] for i in changed], radius_arcsec)
    wanted: dict[str, tuple[int, dict] | None] = {ids[i]: found.get(ids[i]) for i in changed}
    listed = set(ids)
    wanted.update({slot_id: None for slot_id in state.slots().ids() if slot_id not in listed})
    return wanted


def _same_place(before: tuple[float, float] | None, now: tuple[float, float]) -> bool:
    return before is not None and all(a == b or (a != a and b != b) for a, b in zip(before, now, strict=True))


def _silent_objids(catalogue: Any, wanted: dict[str, Any], known: dict[str, dict[str, Any]]) -> set[Any]:
    """The TNS ids kept for slots about to lose their match that an incomplete catalogue
    does not hold (it never had them, or it was lost: nothing says they are gone).
    ``catalogue`` may be a callable giving it, called only when needed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    losing = {known[slot_id]["objid"] for slot_id, target in wanted.items()
              if target is None and known.get(slot_id) is not None}
    if not losing:
        return set()
    table = catalogue() if callable(catalogue) else catalogue
    if table is None or not len(table):
        return losing
    ids = pa.array(sorted(objid for objid in losing if objid is not None), pa.int64())
    held = set(ids.filter(pc.is_in(ids, value_set=table["objid"])).to_pylist())
    return losing - held


def _rematch_near(catalogue: Any, updates: list[Any], state: State, radius_arcsec: float
                  ) -> dict[str, tuple[int, dict] | None]:
    """After deltas: the new match of every slot they can change, against the whole
    catalogue. Only these can: a slot matched to an object a delta names (its record, its
    position or its names changed), a slot whose id is among the internal names of those
    rows (a name match at any distance, or a lower TNS id naming it), and a slot within
    the radius of one of their positions (a nearer object). Every other slot's name and
    position candidates are unchanged, so its match is too."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = pa.concat_tables([table.cast(updates[0].schema) for table in updates])
    affected = state.slots().with_objids(pc.unique(rows["objid"]))
    positions = state.positions()
    slot_ids = positions["slot_id"]
    alias, _ = _aliases_among(rows, slot_ids.combine_chunks())
    affected.update(pc.unique(alias).to_pylist())
    slot_ra, slot_dec = positions["ra"].to_numpy(zero_copy_only=False), positions["dec"].to_numpy(zero_copy_only=False)
    placed = np.flatnonzero(np.isfinite(slot_ra) & np.isfinite(slot_dec))
    _, near, _ = pairs_within(rows["ra"].to_numpy(zero_copy_only=False), rows["dec"].to_numpy(zero_copy_only=False),
                              np.mod(slot_ra[placed], 360.0), slot_dec[placed], radius_arcsec / 3600.0)
    affected.update(slot_ids.take(pa.array(placed[np.unique(near)], pa.int64())).to_pylist())
    chosen = positions.filter(pc.is_in(slot_ids, value_set=pa.array(sorted(affected), pa.string())))
    entries = [{"slot_id": s, "ra_deg": r, "dec_deg": d} for s, r, d in zip(
        chosen["slot_id"].to_pylist(), chosen["ra"].to_pylist(), chosen["dec"].to_pylist(), strict=True)]
    found = match(catalogue, entries, radius_arcsec)
    return {slot_id: found.get(slot_id) for slot_id in affected}


def _moved_on_disk(store: Any, ids: Any, kept: np.ndarray) -> set[str]:
    """The slots (``ids``: a list or an Arrow array) whose file identity is not the one
    kept: one ``stat`` each, relative to the kind's directory, compared at once. (Threads
    measured no faster: the stats contend in the kernel.)"""
    if not len(ids):
        return set()
    names = _slot_names(store, ids)
    directory = os.open(store.directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        current = _identities_at(directory, names)
    finally:
        os.close(directory)
    differ = np.flatnonzero((np.array(current, np.int64).reshape(len(ids), 4) != kept).any(axis=1))
    if isinstance(ids, list):
        return {ids[i] for i in differ.tolist()}
    return set(ids.take(differ).to_pylist())


_MISSING = (-2, -2, -2, -2)


def _identities_at(directory: int, names: list[str | None]) -> list[tuple[int, int, int, int]]:
    """(inode, size, mtime, ctime) of each file name in ``directory`` (-2s when missing)."""
    identities = []
    status_of = os.stat
    for name in names:
        try:
            status = status_of(name, dir_fd=directory, follow_symlinks=False)  # type: ignore[arg-type]
        except (OSError, TypeError):
            identities.append(_MISSING)
            continue
        identities.append((status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return identities


def _slot_names(store: Any, ids: Any) -> list[str | None]:
    """The file name of each slot id (None for one that names none): for a kind whose ids
    are their own file names, checked all at once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = ids if isinstance(ids, pa.Array) else pa.array(ids, pa.string())
    if type(store.names) is SlotNames:
        plain = pc.match_substring_regex(column, f"^(?:{_PLAIN_ID.pattern})$")
        reserved = pc.is_in(pc.utf8_lower(column), value_set=pa.array(list(KIND_FILE_STEMS)))
        if pc.all(pc.and_(plain, pc.invert(reserved))).as_py():
            return pc.binary_join_element_wise(column, ".json", "").to_pylist()
    return [_slot_name(store, slot_id) for slot_id in column.to_pylist()]


def _slot_name(store: Any, slot_id: str) -> str | None:
    """The slot's file name in the kind's directory (None for an id that names none)."""
    if type(store.names) is SlotNames and _PLAIN_ID.fullmatch(slot_id) and not is_reserved(slot_id):
        return f"{slot_id}.json"
    try:
        return os.path.basename(store.slot_path(slot_id))
    except ValueError:
        return None


#: Slot files read and replaced at once: replacing a file frees the old one's blocks, which
#: waits on the disk (~0.3-0.7 ms each on the ext4 measured), so reads and replacements
#: overlap in threads.
WRITER_THREADS = 8
#: At least this many slots per writer thread (a daily delta's few hundred need few threads).
SLOTS_PER_THREAD = 128


def _apply_records(store: Any, spec: Any, state: State, todo: dict[str, tuple[int, dict] | None],
                   known: dict[str, dict[str, Any]]) -> tuple[int, int, dict[str, dict[str, Any]]]:
    """Read each slot of ``todo`` and replace it (temp file + rename) when its ``tns`` is
    not its target's record, in ``WRITER_THREADS`` threads, then one sync; the kept slots
    updated. (slots written, of which restored, the new index entries that differ from the
    slots' old ones)."""
    from concurrent.futures import ThreadPoolExecutor

    if not todo:
        return 0, 0, {}
    slots = state.slots()
    state.slots_changed = True
    ordered = sorted(todo)

    def work(share: list[str]) -> list[tuple[str, Any, Any, Any]]:
        done = []
        for slot_id in share:
            name = _slot_name(store, slot_id)
            slot = store.read_slot(slot_id) if name is not None else None
            if slot is None:
                done.append((slot_id, None, None, None))
                continue
            record = todo[slot_id][1] if todo[slot_id] else None
            path = os.path.join(store.directory, name)
            if slot.get("tns") != record or (record is not None and "tns" not in slot):
                new = refine({**slot, RECORD_FIELD: record, CLASS_FIELD: record["type"] if record else None})
                write_atomically(path, slot_bytes(new), durable=False)
                done.append((slot_id, slot, new, file_identity(path)))
            else:
                done.append((slot_id, slot, None, file_identity(path)))
        return done

    threads = min(WRITER_THREADS, -(-len(ordered) // SLOTS_PER_THREAD))  # a thread's start is not free
    with ThreadPoolExecutor(threads) as pool:
        results = [item for share in pool.map(work, [ordered[i::threads] for i in range(threads)]) for item in share]
    written, restored, index_changes = 0, 0, {}
    for slot_id, old, new, identity in results:
        target, kept = todo[slot_id], known.get(slot_id)
        if old is None or target is None:
            slots.pop(slot_id, None)
        else:
            slots[slot_id] = {"objid": target[0], "record": target[1], "file": identity,
                              "fink": old.get("fink_classification")}
        if new is not None:
            written += 1
            restored += int(kept is not None and target is not None and kept["record"] == target[1])
            entry = index_entry(slot_id, new, spec.index_fields)
            if entry != index_entry(slot_id, old, spec.index_fields):
                index_changes[slot_id] = entry
    if written:
        store.sync()
    return written, restored, index_changes


def _read_index(index_path: str) -> list[dict[str, Any]]:
    try:
        entries = orjson.loads(read_bounded(index_path))["slots"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TnsSetupError(f"no readable transient index ({index_path}: {exc}); run the build first") from None
    return [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("slot_id"), str)]


def _summary(state: State, catalogue: Any | None, files: list[dict[str, Any]], left_out: list[dict[str, str]],
             written: int, restored: int, checked: int) -> dict[str, Any]:
    skipped: Counter = Counter()
    cut: Counter = Counter()
    for done in files:
        skipped.update(done["skipped_rows"])
        cut.update(done["cut_cells"])
    if catalogue is not None:
        state.data["tns_objects"] = len(catalogue)
    return {"file_layout": state.data.get("layout"), "tns_objects": state.data.get("tns_objects", 0),
            "catalogue_as_of": state.data.get("as_of"), "catalogue_complete": state.data.get("complete", False),
            "files": files, "files_left_out": left_out, "skipped_rows": dict(skipped), "cut_cells": dict(cut),
            **state.data["matches"],
            "slots_checked": checked, "slots_restored": restored, "slots_written": written}
