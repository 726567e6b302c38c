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
  2019 header and the current one, keyed on those columns only): a whole catalogue.

The layout is recognised from the header; a Parquet file, a JSON document (an answer of
TNS's API), a gzip file or other binary is refused with a message saying what was
expected. Files are read streaming by pyarrow's CSV reader within declared bounds
(``MAX_FILE_BYTES`` on disk, ``MAX_CSV_BYTES`` uncompressed, ``MAX_ROWS`` rows,
``MAX_ROW_BYTES`` a row). Given a directory, ``apply`` applies the TNS public objects
files in it it has not applied yet (by content hash), in date order; a file older than
the catalogue kept is superseded and skipped.

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
``provisional``; ``fink_classification`` is never changed. The refinement is re-applied
whenever the build rewrites a slot (``refine``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import os
import re
import stat
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .durable import write_atomically
from .storehouse import SlotNames, index_entry, is_reserved, read_json_file, slot_bytes

log = logging.getLogger("transient_kind_builder")
STATE_DIRECTORY = os.path.join("state", "tns")
STATE_NAME = "state.json"
LEGACY_STATE_FILE = os.path.join("state", "tns.json")
DEFAULT_RADIUS_ARCSEC = 1.5
#: Largest TNS file read as it is on disk (the full public objects CSV is ~50 MB; zipped ~10 MB).
MAX_FILE_BYTES = 512 << 20
#: Largest CSV read once decompressed (a zip may declare or hold more: refused).
MAX_CSV_BYTES = 1 << 30
#: Most rows a TNS file may have (TNS holds ~170,000 objects).
MAX_ROWS = 5_000_000
#: Longest row (pyarrow's block size: a row longer than a block is refused).
MAX_ROW_BYTES = 4 << 20
#: Longest internal name kept for the name match (longer ones cannot be slot ids).
MAX_ALIAS_CHARS = 64
SNIFF_BYTES = 64 << 10
PUBLIC_COLUMNS = ("objid", "name_prefix", "name", "ra", "declination", "redshift", "type", "discoverydate",
                  "internal_names")
SEARCH_COLUMNS = ("ID", "Name", "RA", "DEC", "Obj. Type", "Redshift", "Disc. Internal Name", "Discovery Date (UT)")
PUBLIC_LAYOUT, SEARCH_LAYOUT = "public objects CSV", "search export"
FULL_NAME = re.compile(r"tns_public_objects\.csv(\.zip)?")
DELTA_NAME = re.compile(r"tns_public_objects_(\d{8})\.csv(\.zip)?")
HOURLY_NAME = re.compile(r"tns_public_objects_(\d{2})\.csv(\.zip)?")
NOT_TNS_NAME = "not a TNS public objects file name (left alone)"
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DATE_LINE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_SEXAGESIMAL = r"^\s*(?P<sign>[-+]?)(?P<a>\d+):(?P<b>\d+):(?P<c>\d+(?:\.\d*)?)\s*$"
EXPECTED = ("TNS's public objects CSV (tns_public_objects.csv, its .zip, or a daily tns_public_objects_YYYYMMDD.csv) "
            "or a TNS search export (CSV)")
#: What Fink's label says the spectroscopic class should be (None: anything).
_FINK_EXPECTS = {"SN candidate": "sn", "Kilonova candidate": "kilonova", "Unknown": None}


#: The catalogue kept: one row per TNS object, sorted by TNS id.
CATALOGUE_COLUMNS = ("objid", "name", "type", "redshift", "discovery", "internal", "ra", "dec")


class TnsFileError(ValueError):
    """The file is in neither TNS layout (or unreadable, or past a bound): nothing of it was used."""


def refine(slot: dict[str, Any]) -> dict[str, Any]:
    """The slot's subtype and provisional flag as its spectroscopic class says (a slot
    without one is returned as it is)."""
    kind = slot.get("spectroscopic_class")
    if not kind or slot.get("kind") != "transient":
        return slot
    refined = dict(slot)
    subtype = _subtype_of(kind)
    if subtype:
        refined["subtype"] = subtype
    refined["provisional"] = False
    return refined


def _subtype_of(kind: str) -> str | None:
    return "sn" if kind.startswith(("SN", "SLSN")) else "kilonova" if kind == "Kilonova" else None


# ---------------------------------------------------------------- reading one file


@dataclass
class TnsFile:
    """One TNS file read: its rows as a catalogue table (``objid``, ``name``, ``type``,
    ``redshift``, ``discovery``, ``internal``, ``ra``, ``dec``), what it is and when."""

    path: str
    layout: str
    delta: bool
    as_of: str | None
    table: Any
    skipped: Counter = field(default_factory=Counter)


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


def read_file(path: str) -> TnsFile:
    """Every usable row of a TNS file (malformed rows counted and skipped); TnsFileError
    when the file is not one or is past a bound."""
    delta, as_of = file_kind(path)
    try:
        _check_regular(path)
        head = _sniff(path)
        layout, header_line, dated = _layout_of(path, head)
        table, skipped = _read_rows(path, layout, header_line)
    except OSError as exc:
        raise TnsFileError(f"cannot read {path}: {exc}") from None
    return TnsFile(path, layout, delta, as_of or dated, table, skipped)


def _check_regular(path: str) -> None:
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise TnsFileError(f"{path} is not a regular file (a FIFO, device or directory is never read)")
    if status.st_size > MAX_FILE_BYTES:
        raise TnsFileError(f"{path} is larger than a TNS file may be ({MAX_FILE_BYTES} bytes)")


class _Bounded(io.RawIOBase):
    """A zip member read at most ``MAX_CSV_BYTES`` far (whatever its header declares)."""

    def __init__(self, inner: Any, path: str) -> None:
        self.inner, self.path, self.read_so_far = inner, path, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > MAX_CSV_BYTES:
            raise TnsFileError(f"{self.path}: the CSV inside is larger than {MAX_CSV_BYTES} bytes once unzipped")
        buffer[:len(data)] = data
        return len(data)


class _Source:
    """The CSV bytes of a TNS file: the file itself, or the one CSV of its zip."""

    def __init__(self, path: str) -> None:
        self.path, self.archive, self.stream = path, None, None

    def __enter__(self) -> Any:
        with open(self.path, "rb") as handle:
            zipped = handle.read(4) == b"PK\x03\x04"
        if not zipped:
            return self.path if os.path.getsize(self.path) <= MAX_CSV_BYTES else None
        try:
            self.archive = zipfile.ZipFile(self.path)
            members = [info for info in self.archive.infolist() if not info.is_dir()]
            if len(members) != 1 or not members[0].filename.endswith(".csv"):
                raise TnsFileError(f"{self.path}: a zip holding one CSV expected, found "
                                   f"{[info.filename for info in members][:5]}")
            if members[0].file_size > MAX_CSV_BYTES:
                raise TnsFileError(f"{self.path}: the CSV inside declares {members[0].file_size} bytes, more than "
                                   f"a TNS file may be ({MAX_CSV_BYTES})")
            self.stream = io.BufferedReader(_Bounded(self.archive.open(members[0]), self.path), 1 << 20)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            self.__exit__()
            raise TnsFileError(f"{self.path}: not a readable zip ({exc})") from None
        return self.stream

    def __exit__(self, *_: Any) -> None:
        if self.stream is not None:
            self.stream.close()
        if self.archive is not None:
            self.archive.close()


def _sniff(path: str) -> bytes:
    with _Source(path) as source:
        if source is None:
            raise TnsFileError(f"{path} is larger than a TNS CSV may be ({MAX_CSV_BYTES} bytes)")
        if isinstance(source, str):
            with open(source, "rb") as handle:
                return handle.read(SNIFF_BYTES)
        return source.read(SNIFF_BYTES)


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


def _read_rows(path: str, layout: str, header_line: int) -> tuple[Any, Counter]:
    """The catalogue table of the file, read block by block (bounded rows and memory)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = PUBLIC_COLUMNS if layout == PUBLIC_LAYOUT else SEARCH_COLUMNS
    skipped: Counter = Counter()

    def invalid(_row: Any) -> str:
        skipped["malformed_row"] += 1
        return "skip"

    options = (pacsv.ReadOptions(skip_rows=header_line, block_size=MAX_ROW_BYTES),
               pacsv.ParseOptions(invalid_row_handler=invalid),
               pacsv.ConvertOptions(include_columns=list(columns), column_types={c: pa.string() for c in columns},
                                    strings_can_be_null=False, quoted_strings_can_be_null=False))
    batches, rows = [], 0
    with _Source(path) as source:
        try:
            reader = pacsv.open_csv(source, read_options=options[0], parse_options=options[1],
                                    convert_options=options[2])
            for batch in reader:
                rows += batch.num_rows
                if rows > MAX_ROWS:
                    raise TnsFileError(f"{path} has more than {MAX_ROWS} rows, more than a TNS file may have")
                batches.append(_normalise(pa.Table.from_batches([batch]), layout, skipped))
        except pa.ArrowInvalid as exc:
            detail = str(exc).splitlines()[0][:200]
            if "straddling" in detail or "block size" in detail:
                detail = f"a row longer than {MAX_ROW_BYTES} bytes"
            raise TnsFileError(f"{path}: not a readable CSV ({detail})") from None
    return (pa.concat_tables(batches) if batches else _empty_catalogue()), skipped


def _empty_catalogue() -> Any:
    import pyarrow as pa

    types = (pa.int64(), pa.string(), pa.string(), pa.float64(), pa.string(), pa.string(), pa.float64(),
                       pa.float64())
    return pa.Table.from_arrays([pa.array([], kind) for kind in types], names=list(CATALOGUE_COLUMNS))


def _normalise(table: Any, layout: str, skipped: Counter) -> Any:
    """The rows in the catalogue's columns; a row without an id, a name or a position on
    the sky counted as ``malformed_row`` and left out."""
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
        kept = catalogue.filter(pc.invert(pc.is_in(catalogue["objid"], value_set=table["objid"])))
        table = pa.concat_tables([kept, table.cast(kept.schema)])
    return table.take(pc.sort_indices(table, [("objid", "ascending")]))


def _unique_ids(table: Any) -> Any:
    """One row per TNS id (the last one of the file)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(table) == len(pc.unique(table["objid"])):
        return table
    positions = pa.array(np.arange(len(table)))
    last = table.append_column("_row", positions).group_by("objid").aggregate([("_row", "max")])
    return table.take(pc.sort_indices(last["_row_max"]))


def _aliases(catalogue: Any) -> tuple[Any, Any]:
    """(internal name, TNS id) of every internal name of every object."""
    import pyarrow.compute as pc

    lists = pc.split_pattern(catalogue["internal"], ",")
    parents = pc.list_parent_indices(lists)
    names = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    length = pc.utf8_length(names)
    keep = pc.and_(pc.greater(length, 0), pc.less_equal(length, MAX_ALIAS_CHARS))
    return names.filter(keep), pc.take(catalogue["objid"], parents.filter(keep))


# ---------------------------------------------------------------- matching


def match(catalogue: Any, entries: list[dict[str, Any]], radius_arcsec: float) -> dict[str, tuple[int, dict]]:
    """(TNS id, record) of every slot (index entries) that matches, by slot id: by
    internal name first, else the nearest TNS object within ``radius_arcsec``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if catalogue is None or not len(catalogue) or not entries:
        return {}
    ids = [e["slot_id"] for e in entries]
    ra, dec = _positions(entries, "ra_deg"), _positions(entries, "dec_deg")
    placed = np.isfinite(ra) & np.isfinite(dec) & (dec >= -90) & (dec <= 90)
    ra = np.mod(ra, 360.0)
    where = {ids[i]: (ra[i], dec[i]) for i in np.flatnonzero(placed).tolist()}
    objids = catalogue["objid"].to_numpy()
    alias, alias_objid = _aliases(catalogue)
    hits = pc.is_in(alias, value_set=pa.array(ids, pa.string()))
    named: dict[str, int] = {}
    for name, objid in zip(alias.filter(hits).to_pylist(), alias_objid.filter(hits).to_pylist(), strict=True):
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
    position within ``radius_deg`` of each query position that has one.

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
    best = np.lexsort((rows, separations, queries))
    keep = best[np.r_[True, queries[best][1:] != queries[best][:-1]]] if len(best) else best
    return queries[keep], rows[keep], separations[keep]


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


class State:
    """What ``tns`` keeps under ``state/tns/``: the catalogue (an Arrow file, named by its
    generation so the JSON written last commits it) and ``state.json``: the files applied,
    the radius, and per matched slot its TNS id, record, Fink label and file identity."""

    def __init__(self, storehouse: str) -> None:
        self.directory = os.path.join(storehouse, STATE_DIRECTORY)
        try:
            with open(os.path.join(self.directory, STATE_NAME), "rb") as handle:
                self.raw = handle.read()
            self.data = orjson.loads(self.raw)
        except (OSError, ValueError):
            self.raw, self.data = b"", {}
        if not isinstance(self.data, dict) or self.data.get("version") != 2:
            self.data = {}
        self.data.setdefault("version", 2)
        self.data.setdefault("applied", {})
        self.data.setdefault("slots", {})
        self.data.setdefault("generation", 0)
        legacy = read_json_file(os.path.join(storehouse, LEGACY_STATE_FILE))
        if not self.data["slots"] and isinstance(legacy, dict) and isinstance(legacy.get("slots"), dict):
            # the first version kept only the records: check those slots once
            self.data["slots"] = {slot_id: {"objid": None, "record": record, "file": None}
                                  for slot_id, record in legacy["slots"].items() if isinstance(record, dict)}

    def catalogue(self) -> Any:
        import pyarrow as pa

        name = self.data.get("catalogue")
        if not name:
            return None
        try:
            with pa.memory_map(os.path.join(self.directory, name)) as source:
                return pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowInvalid) as exc:
            log.warning("tns: the kept catalogue %s is unreadable (%s): a full file is needed", name, exc)
            self.data["catalogue"] = None
            return None

    def changed(self) -> bool:
        """Whether anything differs from the ``state.json`` read (a rerun that changed
        nothing writes nothing)."""
        return orjson.dumps(self.data) != self.raw

    def save(self, catalogue: Any | None) -> None:
        """Write the catalogue (when it changed) and then ``state.json``, which commits it."""
        import pyarrow as pa

        os.makedirs(self.directory, exist_ok=True)
        previous = self.data.get("catalogue")
        if catalogue is not None:
            self.data["generation"] += 1
            name = f"catalogue-{self.data['generation']}.arrow"
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, catalogue.schema) as writer:
                writer.write_table(catalogue)
            write_atomically(os.path.join(self.directory, name), sink.getvalue().to_pybytes())
            self.data["catalogue"] = name
        write_atomically(os.path.join(self.directory, STATE_NAME), orjson.dumps(self.data))
        if catalogue is not None and previous and previous != self.data["catalogue"]:
            try:
                os.unlink(os.path.join(self.directory, previous))
            except FileNotFoundError:
                pass


def file_identity(path: str) -> list[int] | None:
    """What changes whenever a file is replaced or rewritten (inode, size, mtime, ctime)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]


def content_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- applying


@dataclass
class Plan:
    """The files to apply, in order, and the ones left out with their reason."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (path, content hash)
    left_out: list[dict[str, str]] = field(default_factory=list)


def plan(path: str, applied: dict[str, Any]) -> Plan:
    """The files of ``path`` (a file, or a directory of TNS public objects files) not
    applied yet, in date order (a day's delta before the next day's full file)."""
    chosen = Plan()
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise TnsFileError(f"{path}: no such file or directory")
        regular = os.path.isfile(path)
        digest = content_hash(path) if regular else ""
        if not regular or digest not in applied:
            chosen.files.append((path, digest))
        return chosen
    dated = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not _is_regular(full):
            continue
        if not (FULL_NAME.fullmatch(name) or DELTA_NAME.fullmatch(name) or HOURLY_NAME.fullmatch(name)):
            chosen.left_out.append({"file": name, "reason": NOT_TNS_NAME})
            continue
        digest = content_hash(full)
        if digest in applied:
            continue
        try:
            delta, when = file_kind(full)
            when = when or _first_line_date(full)
        except (TnsFileError, OSError) as exc:
            chosen.left_out.append({"file": name, "reason": str(exc)})
            continue
        dated.append((when or "", 0 if delta else 1, name, full, digest))
    chosen.files = [(full, digest) for *_, full, digest in sorted(dated)]
    return chosen


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _first_line_date(path: str) -> str | None:
    """The date on the first line of a public objects file (None when there is none)."""
    try:
        _check_regular(path)
        _, _, dated = _layout_of(path, _sniff(path))
    except TnsFileError:
        return None
    return dated


def apply(storehouse: str, path: str, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC) -> dict[str, Any]:
    """Apply the TNS file at ``path`` (or the files of the directory ``path`` not applied
    yet) to the transient slots of ``storehouse``; the summary, also written into the
    transient roster (``tns``). TnsFileError when a single file given is refused."""
    from . import kinds

    spec = kinds.spec("transient")
    store = spec.store(storehouse)
    state = State(storehouse)
    chosen = plan(path, state.data["applied"])
    catalogue, changed, files = None, False, []
    for file_path, digest in chosen.files:
        try:
            read = read_file(file_path)
        except TnsFileError as exc:
            if not os.path.isdir(path):
                raise
            log.error("tns: %s; that file was not used", exc)
            chosen.left_out.append({"file": os.path.basename(file_path), "reason": str(exc)})
            continue
        as_of = state.data.get("as_of")
        if read.as_of and as_of and (read.as_of < as_of or (read.delta and read.as_of <= as_of)):
            files.append(_file_summary(read, "superseded: older than the catalogue kept"))
            state.data["applied"][digest] = {"file": os.path.basename(file_path), "as_of": read.as_of}
            continue
        if catalogue is None and not changed:
            catalogue = state.catalogue() if read.delta else None
        if read.delta and catalogue is None:
            log.warning("tns: %s is a delta and no whole TNS file was applied before: the catalogue holds only "
                        "the objects of the deltas", file_path)
            state.data["complete"] = False
        elif not read.delta:
            state.data["complete"] = True
        catalogue, changed = merge(catalogue, read), True
        state.data["as_of"] = read.as_of if read.as_of else (as_of if read.delta else None)
        state.data["layout"] = read.layout
        state.data["applied"][digest] = {"file": os.path.basename(file_path), "as_of": read.as_of}
        files.append(_file_summary(read, "applied"))
    if not chosen.files and not state.data.get("catalogue") and not os.path.isdir(path):
        raise TnsFileError(f"{path}: nothing to apply")
    _prune(state.data["applied"])
    return _refresh(store, spec, state, catalogue if changed else None, radius_arcsec, files, chosen.left_out)


def _file_summary(read: TnsFile, status: str) -> dict[str, Any]:
    return {"file": os.path.basename(read.path), "layout": read.layout, "delta": read.delta, "as_of": read.as_of,
            "rows": len(read.table), "skipped_rows": dict(read.skipped), "status": status}


def _prune(applied: dict[str, Any], keep: int = 5000) -> None:
    """Remember the newest ``keep`` files applied (a year of daily files and more)."""
    if len(applied) > keep:
        for digest in sorted(applied, key=lambda d: applied[d].get("as_of") or "")[:len(applied) - keep]:
            del applied[digest]


def _refresh(store: Any, spec: Any, state: State, catalogue: Any | None, radius_arcsec: float,
             files: list[dict[str, Any]], left_out: list[dict[str, str]]) -> dict[str, Any]:
    """Match again when the catalogue, the radius or the index changed; then write the
    slots whose record changed or whose file is not the one last checked."""
    index_path = os.path.join(store.directory, "index.json")
    index_identity = file_identity(index_path)
    data = state.data
    stale = (catalogue is not None or data.get("radius_arcsec") != radius_arcsec
             or data.get("index") != index_identity)
    entries = None
    slots: dict[str, dict[str, Any]] = data["slots"]
    wanted: dict[str, tuple[int, dict] | None]
    if stale:
        entries = _read_index(index_path)
        current = catalogue if catalogue is not None else state.catalogue()
        found = match(current, entries, radius_arcsec)
        wanted = {slot_id: found.get(slot_id) for slot_id in set(found) | set(slots)}
    else:
        wanted = {slot_id: (kept["objid"], kept["record"]) for slot_id, kept in slots.items()}
    written, restored, checked = {}, 0, 0
    for slot_id in sorted(wanted):
        target, kept = wanted[slot_id], slots.get(slot_id)
        record = target[1] if target else None
        path = _slot_path(store, slot_id, kept is not None)
        if path is None:
            continue
        identity = file_identity(path)
        if kept is not None and kept.get("record") == record and kept.get("file") == identity:
            continue
        checked += 1
        slot = store.read_slot(slot_id)
        if slot is None:
            slots.pop(slot_id, None)
            continue
        if slot.get("tns") != record or (record is not None and "tns" not in slot):
            restored += int(kept is not None and kept.get("record") == record)
            slot = refine({**slot, "tns": record, "spectroscopic_class": record["type"] if record else None})
            written[slot_id] = slot
            identity = None  # taken once written
        if target is None:
            slots.pop(slot_id, None)
        else:
            slots[slot_id] = {"objid": target[0], "record": record, "file": identity,
                              "fink": slot.get("fink_classification")}
    if written:
        identities = _write_slots(store, written)
        for slot_id, identity in identities.items():
            if slot_id in slots:
                slots[slot_id]["file"] = identity
        entries = entries if entries is not None else _read_index(index_path)
        by_id = {slot_id: index_entry(slot_id, slot, spec.index_fields) for slot_id, slot in written.items()}
        store.write_index([by_id.get(entry["slot_id"], entry) for entry in entries])
        index_identity = file_identity(index_path)
    data.update({"radius_arcsec": radius_arcsec, "index": index_identity})
    summary = _summary(state, catalogue, files, left_out, len(written), restored, checked)
    if catalogue is not None or state.changed():
        state.save(catalogue)
        store.write_report_file("roster", {**(read_json_file(os.path.join(store.directory, "roster.json")) or {}),
                                           "tns": summary})
    return summary


#: Slot files replaced at once: replacing a file frees the old one's blocks, which waits on
#: the disk (~0.7 ms each on the ext4 measured), so the replacements overlap in threads.
WRITER_THREADS = 8


def _write_slots(store: Any, slots: dict[str, dict[str, Any]]) -> dict[str, list[int] | None]:
    """Replace each slot file atomically (temp file + rename), in ``WRITER_THREADS``
    threads, then one sync; the file identity of each as written."""
    from concurrent.futures import ThreadPoolExecutor

    def replace(slot_ids: list[str]) -> list[list[int] | None]:
        identities = []
        for slot_id in slot_ids:
            path = store.slot_path(slot_id)
            write_atomically(path, slot_bytes(slots[slot_id]), durable=False)
            identities.append(file_identity(path))
        return identities

    ordered = list(slots)
    shares = [ordered[start::WRITER_THREADS] for start in range(WRITER_THREADS)]
    with ThreadPoolExecutor(WRITER_THREADS) as pool:
        done = list(pool.map(replace, shares))
    store.sync()
    return {slot_id: identity for share, identities in zip(shares, done, strict=True)
            for slot_id, identity in zip(share, identities, strict=True)}


def _slot_path(store: Any, slot_id: str, known: bool) -> str | None:
    """The slot's file; a ``known`` id (one already checked by an earlier run) of a kind
    whose ids are their own file names skips the check (it is most of a rerun's time)."""
    if known and type(store.names) is SlotNames and _PLAIN_ID.fullmatch(slot_id) and not is_reserved(slot_id):
        return f"{store.directory}{os.sep}{slot_id}.json"
    try:
        return store.slot_path(slot_id)
    except ValueError:
        return None


def _read_index(index_path: str) -> list[dict[str, Any]]:
    try:
        with open(index_path, "rb") as handle:
            entries = orjson.loads(handle.read())["slots"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TnsFileError(f"no readable transient index ({index_path}: {exc}); run the build first") from None
    return [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("slot_id"), str)]


def _summary(state: State, catalogue: Any | None, files: list[dict[str, Any]], left_out: list[dict[str, str]],
             written: int, restored: int, checked: int) -> dict[str, Any]:
    """Matches by kind and TNS type, and where TNS's class and Fink's label disagree (a
    class other than the label's, or an Unknown object that the class refines)."""
    records = {slot_id: kept for slot_id, kept in state.data["slots"].items()}
    disagreements = []
    for slot_id, kept in sorted(records.items()):
        kind, label = kept["record"]["type"], kept.get("fink")
        if not kind:
            continue
        refined, expected = _subtype_of(kind), _FINK_EXPECTS.get(label or "")
        if (label == "Unknown" and refined) or (expected is not None and refined != expected):
            disagreements.append({"slot_id": slot_id, "fink_classification": label, "tns_type": kind,
                                  "tns_name": kept["record"]["name"]})
    skipped: Counter = Counter()
    for done in files:
        skipped.update(done["skipped_rows"])
    if catalogue is not None:
        state.data["tns_objects"] = len(catalogue)
    return {"file_layout": state.data.get("layout"), "tns_objects": state.data.get("tns_objects", 0),
            "catalogue_as_of": state.data.get("as_of"), "catalogue_complete": state.data.get("complete", False),
            "files": files, "files_left_out": left_out, "skipped_rows": dict(skipped),
            "matched": len(records),
            "by_match": dict(sorted(Counter(k["record"]["match"] for k in records.values()).items())),
            "by_type": dict(sorted(Counter(k["record"]["type"] or "none" for k in records.values()).items())),
            "disagreements": disagreements[:100], "disagreement_count": len(disagreements),
            "slots_checked": checked, "slots_restored": restored, "slots_written": written}
