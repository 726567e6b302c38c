"""Spectroscopic classes from the Transient Name Server refine the transient slots.

Reads a TNS file the user downloaded (the project never fetches): the daily **public
objects CSV** (``tns_public_objects.csv``, or the ``.zip`` TNS serves: a first line with
the file's date, then ``objid, name_prefix, name, ra, declination, redshift, typeid,
type, …, discoverydate, …, internal_names, …``) or the **search export** of the TNS web
site (``"ID","Name","RA","DEC","Obj. Type","Redshift",…,"Disc. Internal Name",…,
"Discovery Date (UT)"``, sexagesimal RA/Dec). The layout is recognised from the header.

A slot matches a TNS object by name first (an internal name equal to its ZTF object id,
whatever the distance), else by position (the nearest TNS object within the radius,
1.5″ by default; astropy's ``match_coordinates_sky``). A matched slot gets ``tns``
(``name``, ``type``, ``redshift``, ``discovery_date``, ``match``, ``separation_arcsec``)
and ``spectroscopic_class``; a supernova type (``SN…``, ``SLSN…``) sets ``subtype`` to
``sn``, ``Kilonova`` to ``kilonova``, anything else only records the class; a slot with a
class is no longer ``provisional``; ``fink_classification`` is never changed. The
refinement is re-applied whenever the build rewrites a slot (``refine``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .durable import write_atomically
from .storehouse import read_json_file

log = logging.getLogger("transient_kind_builder")
STATE_FILE = os.path.join("state", "tns.json")
DEFAULT_RADIUS_ARCSEC = 1.5
#: Largest TNS file read (the full public objects CSV is ~50 MB; zipped ~10 MB).
MAX_FILE_BYTES = 512 << 20
PUBLIC_COLUMNS = ("objid", "name_prefix", "name", "ra", "declination")
SEARCH_COLUMNS = ("ID", "Name", "RA", "DEC", "Obj. Type")


class TnsFileError(ValueError):
    """The file is in neither TNS layout (or unreadable): nothing was changed."""


@dataclass
class Catalogue:
    names: list[str]
    types: list[str | None]
    redshifts: list[float | None]
    discovery: list[str | None]
    ra: np.ndarray
    dec: np.ndarray
    by_internal_name: dict[str, int]
    layout: str
    skipped: Counter


def refine(slot: dict[str, Any]) -> dict[str, Any]:
    """The slot's subtype and provisional flag as its spectroscopic class says (a slot
    without one is returned as it is)."""
    kind = slot.get("spectroscopic_class")
    if not kind or slot.get("kind") != "transient":
        return slot
    refined = dict(slot)
    if kind.startswith(("SN", "SLSN")):
        refined["subtype"] = "sn"
    elif kind == "Kilonova":
        refined["subtype"] = "kilonova"
    refined["provisional"] = False
    return refined


def read_catalogue(path: str) -> Catalogue:
    """Every usable row of a TNS file (a malformed row is counted and skipped)."""
    text = _text(path)
    lines = text.splitlines()
    for start in range(min(2, len(lines))):
        header = next(csv.reader([lines[start]]), [])
        if all(column in header for column in PUBLIC_COLUMNS):
            return _public(csv.DictReader(io.StringIO("\n".join(lines[start:]))))
        if all(column in header for column in SEARCH_COLUMNS):
            return _search(csv.DictReader(io.StringIO("\n".join(lines[start:]))))
    raise TnsFileError(f"{path} is neither TNS's public objects CSV nor a TNS search export "
                       f"(first line: {lines[0][:80] if lines else ''!r})")


def _text(path: str) -> str:
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise TnsFileError(f"{path} is larger than a TNS file may be ({MAX_FILE_BYTES} bytes)")
        with open(path, "rb") as handle:
            data = handle.read()
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [info for info in archive.infolist() if info.filename.endswith(".csv")]
                if len(members) != 1 or members[0].file_size > MAX_FILE_BYTES:
                    raise TnsFileError(f"{path}: a zip holding one CSV of at most {MAX_FILE_BYTES} bytes expected")
                data = archive.read(members[0])
        return data.decode("utf-8-sig")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise TnsFileError(f"cannot read {path}: {exc}") from None


class _Rows:
    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.names: list[str] = []
        self.types: list[str | None] = []
        self.redshifts: list[float | None] = []
        self.discovery: list[str | None] = []
        self.ra: list[float] = []
        self.dec: list[float] = []
        self.internal: dict[str, int] = {}
        self.skipped: Counter = Counter()

    def add(self, name: str, ra: float, dec: float, kind: str, redshift: str, discovery: str,
            internal: str) -> None:
        if not name.strip() or not (0 <= ra <= 360 and -90 <= dec <= 90):
            raise ValueError("no name, or a position off the sky")
        z = float(redshift) if redshift and redshift.strip() else None
        if z is not None and not math.isfinite(z):
            z = None
        index = len(self.names)
        self.names.append(name.strip())
        self.types.append(kind.strip() or None)
        self.redshifts.append(z)
        self.discovery.append(discovery.strip() or None)
        self.ra.append(ra)
        self.dec.append(dec)
        for alias in internal.split(","):
            if alias.strip():
                self.internal.setdefault(alias.strip(), index)

    def done(self) -> Catalogue:
        return Catalogue(self.names, self.types, self.redshifts, self.discovery, np.array(self.ra, dtype=float),
                         np.array(self.dec, dtype=float), self.internal, self.layout, self.skipped)


def _public(reader: csv.DictReader) -> Catalogue:
    rows = _Rows("public objects CSV")
    for row in reader:
        try:
            name = f"{(row.get('name_prefix') or '').strip()} {(row.get('name') or '').strip()}".strip()
            rows.add(name, float(row["ra"]), float(row["declination"]), row.get("type") or "",
                     row.get("redshift") or "", row.get("discoverydate") or "", row.get("internal_names") or "")
        except (KeyError, TypeError, ValueError):
            rows.skipped["malformed_row"] += 1
    return rows.done()


def _search(reader: csv.DictReader) -> Catalogue:
    from astropy.coordinates import Angle

    rows = _Rows("search export")
    for row in reader:
        try:
            ra = Angle(row["RA"], unit="hourangle").deg if ":" in row["RA"] else float(row["RA"])
            dec = Angle(row["DEC"], unit="deg").deg if ":" in row["DEC"] else float(row["DEC"])
            rows.add(row.get("Name") or "", float(ra), float(dec), row.get("Obj. Type") or "",
                     row.get("Redshift") or "", row.get("Discovery Date (UT)") or "",
                     row.get("Disc. Internal Name") or "")
        except (KeyError, TypeError, ValueError):
            rows.skipped["malformed_row"] += 1
    return rows.done()


def match(catalogue: Catalogue, entries: list[dict[str, Any]], radius_arcsec: float) -> dict[str, dict[str, Any]]:
    """The TNS record of every slot (index entries) that matches, by slot id: by internal
    name first, else the nearest TNS object within ``radius_arcsec`` (one astropy match of
    all slots against the catalogue)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, angular_separation, match_coordinates_sky

    where = {e["slot_id"]: (float(e["ra_deg"]), float(e["dec_deg"])) for e in entries
             if isinstance(e.get("ra_deg"), int | float) and isinstance(e.get("dec_deg"), int | float)}
    nearest: dict[str, tuple[int, float]] = {}
    if where and len(catalogue.names) >= 2:
        ids = list(where)
        slots = SkyCoord([where[i][0] for i in ids] * u.deg, [where[i][1] for i in ids] * u.deg)
        index, angle, _ = match_coordinates_sky(slots, SkyCoord(catalogue.ra * u.deg, catalogue.dec * u.deg))
        nearest = dict(zip(ids, zip(index.tolist(), angle.to_value(u.arcsec).tolist(), strict=True), strict=True))
    elif where and len(catalogue.names) == 1:
        nearest = {i: (0, _arcsec(where[i], catalogue, 0, angular_separation)) for i in where}
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        slot_id = entry["slot_id"]
        if slot_id in catalogue.by_internal_name:
            index, how = catalogue.by_internal_name[slot_id], "internal_name"
            separation = _arcsec(where[slot_id], catalogue, index, angular_separation) if slot_id in where else None
        elif slot_id in nearest and nearest[slot_id][1] <= radius_arcsec:
            (index, separation), how = nearest[slot_id], "position"
        else:
            continue
        found[slot_id] = {"name": catalogue.names[index], "type": catalogue.types[index],
                          "redshift": catalogue.redshifts[index], "discovery_date": catalogue.discovery[index],
                          "match": how, "separation_arcsec": separation}
    return found


def _arcsec(position: tuple[float, float], catalogue: Catalogue, index: int, angular_separation: Any) -> float:
    return float(np.degrees(angular_separation(math.radians(position[0]), math.radians(position[1]),
                                               math.radians(catalogue.ra[index]),
                                               math.radians(catalogue.dec[index]))) * 3600)


def apply(storehouse: str, path: str, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC) -> dict[str, Any]:
    """Refine the transient slots of ``storehouse`` with the TNS file at ``path``; the
    summary written into the transient roster (``tns``)."""
    from . import kinds

    catalogue = read_catalogue(path)
    spec = kinds.spec("transient")
    store = spec.store(storehouse)
    index_path = os.path.join(store.directory, "index.json")
    try:
        with open(index_path, "rb") as handle:
            entries = orjson.loads(handle.read())["slots"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TnsFileError(f"no readable transient index ({index_path}: {exc}); run the build first") from None
    records = match(catalogue, entries, radius_arcsec)
    state_path = os.path.join(storehouse, STATE_FILE)
    state = read_json_file(state_path) or {}
    trusted = state.get("radius_arcsec") == radius_arcsec
    before = state.get("slots", {}) if trusted else {}
    fink = dict(state.get("fink", {})) if trusted else {}
    written = 0
    for entry in entries:
        slot_id = entry["slot_id"]
        record = records.get(slot_id)
        if slot_id in before and before[slot_id] == record and (record is None or slot_id in fink):
            continue  # unchanged since the last run: not read
        slot = store.read_slot(slot_id)
        if slot is None:
            continue
        if record is not None:
            fink[slot_id] = slot.get("fink_classification")
        if slot.get("tns") == record and ("tns" in slot or record is None):
            continue  # unchanged, or never matched
        slot["tns"] = record
        slot["spectroscopic_class"] = record["type"] if record else None
        written += int(store.write_slot(slot_id, refine(slot)))
    store.sync()
    if written:
        store.rebuild_index(spec.index_fields)
    fink = {slot_id: label for slot_id, label in fink.items() if slot_id in records}
    os.makedirs(os.path.dirname(state_path), exist_ok=True)
    write_atomically(state_path, orjson.dumps({"radius_arcsec": radius_arcsec, "slots": records, "fink": fink},
                                              option=orjson.OPT_SORT_KEYS))
    summary = _summary(catalogue, records, fink, written)
    roster_path = os.path.join(store.directory, "roster.json")
    store.write_report_file("roster", {**(read_json_file(roster_path) or {}), "tns": summary})
    return summary


#: What Fink's label says the spectroscopic class should be (None: anything).
_FINK_EXPECTS = {"SN candidate": "sn", "Kilonova candidate": "kilonova", "Unknown": None}


def _summary(catalogue: Catalogue, records: dict[str, dict], fink: dict[str, str | None],
             written: int) -> dict[str, Any]:
    """Matches by kind and TNS type, and where TNS's class and Fink's label disagree (a
    class other than the label's, or an Unknown object that the class refines)."""
    disagreements = []
    for slot_id, record in sorted(records.items()):
        kind, label = record["type"], fink.get(slot_id)
        if not kind:
            continue
        refined = "sn" if kind.startswith(("SN", "SLSN")) else "kilonova" if kind == "Kilonova" else None
        expected = _FINK_EXPECTS.get(label or "")
        if (label == "Unknown" and refined) or (expected is not None and refined != expected):
            disagreements.append({"slot_id": slot_id, "fink_classification": label, "tns_type": kind,
                                  "tns_name": record["name"]})
    return {"file_layout": catalogue.layout, "tns_objects": len(catalogue.names),
            "skipped_rows": dict(catalogue.skipped), "matched": len(records),
            "by_match": dict(sorted(Counter(record["match"] for record in records.values()).items())),
            "by_type": dict(sorted(Counter(record["type"] or "none" for record in records.values()).items())),
            "disagreements": disagreements[:100], "disagreement_count": len(disagreements),
            "slots_written": written}
