"""Fink ZTF alerts in PostgreSQL → one "transient" slot per ZTF object.

The events table (``sql/events.sql``) holds one row per Fink alert, tagged with a source
name; ``extra_json`` is TEXT, so every read of its keys casts it to jsonb. The build:

1. parses each row of the source once into a narrow temporary table. Text that is not
   valid JSON is detected first (``pg_input_is_valid`` on PostgreSQL 16+, a PL/pgSQL
   guard before that), so one bad row never aborts the cast for the whole table;
2. counts what it skips (invalid JSON, missing keys, object ids that are not ZTF's,
   duplicate candids) and what is out of scope (Solar System and other labels);
3. aggregates each object's in-scope alerts in SQL and streams one row per object;
4. writes the slots through the storehouse, removes slots of vanished objects, and
   rebuilds the index from disk; writes the roster report.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .storehouse import KindStore, utc_now

log = logging.getLogger("transient_kind_builder")

KIND = "transient"
DEFAULT_TABLE = "events"
DEFAULT_SOURCE = "fink_transients"
#: Fink label → (subtype, specificity). Every other label is out of scope.
IN_SCOPE: dict[str, tuple[str, int]] = {
    "Kilonova candidate": ("kilonova", 3),
    "SN candidate": ("sn", 2),
    "Unknown": ("unknown", 1),
}
SUBTYPES = ("sn", "kilonova", "unknown")
ZTF_OBJECT_ID = r"^ZTF[0-9]{2}[a-z]{7}$"
#: ZTF filter ids in wavelength order.
BANDS = {1: "g", 2: "r", 3: "i"}
MJD_OFFSET = 2400000.5
INDEX_FIELDS = ("slot_id", "subtype", "ra_deg", "dec_deg", "first_mjd", "last_mjd", "n_alerts", "provisional")


class BuildError(RuntimeError):
    """The build cannot run (database unreachable, table missing); says what to do."""


# ------------------------------------------------------------------------ connection
def safe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    params.pop("password", None)
    return psycopg.conninfo.make_conninfo(**params)


def connect(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"cannot connect to PostgreSQL ({safe_dsn(dsn)}): {first}. "
                         "Check --dsn / DATABASE_URL and that the server is running.") from None


def require_table(connection: psycopg.Connection, table: str) -> None:
    found = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
    if found is None:
        raise BuildError(f"table {table!r} does not exist in this database: create it with sql/events.sql "
                         "(psql -f sql/events.sql) or fill it with 'transient_kind_builder.py load-fink'.")


def _json_guard(connection: psycopg.Connection) -> str:
    """An SQL function name telling whether a text is valid JSON, without raising."""
    if connection.info.server_version >= 160000:
        return "pg_input_is_valid({}, 'jsonb')"
    connection.execute("""
        CREATE OR REPLACE FUNCTION pg_temp.tk_is_json(value text) RETURNS boolean
        LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN PERFORM value::jsonb; RETURN true; EXCEPTION WHEN others THEN RETURN false; END $$""")
    return "pg_temp.tk_is_json({})"


# ------------------------------------------------------------------------ the build
def _number(field: str, to: str = "float8") -> str:
    """SQL for a JSON value as a number, or NULL when it is not a (representable) number."""
    return (f"CASE WHEN jsonb_typeof(x.{field}) = 'number' AND abs(x.{field}::numeric) < 1e9 "
            f"THEN x.{field}::numeric::{to} END")


#: One JSON parse per row (jsonb_to_record); numeric keys are taken as jsonb so that a
#: string where a number belongs gives NULL instead of an error.
PARSE = f"""
CREATE TEMP TABLE tk_rows ON COMMIT DROP AS
SELECT e.id, e.longitude AS ra, e.latitude AS dec, e.event_time,
       {{bad_json}} AS bad_json,
       x.object_id, x.candid, x.classification AS label,
       COALESCE({_number("jd")}, extract(epoch FROM e.event_time) / 86400.0 + 2440587.5) AS jd,
       COALESCE(e.magnitude, {_number("magpsf")}) AS mag,
       round({_number("filter_id")})::int AS filter_id,
       round({_number("n_detections")})::int AS ndet,
       COALESCE(x.fink->>'i:isdiffpos', 't') NOT IN ('f', '0', 'false') AS positive
FROM {{table}} e
CROSS JOIN LATERAL jsonb_to_record({{document}}) AS x(object_id text, candid text, classification text,
    jd jsonb, magpsf jsonb, filter_id jsonb, n_detections jsonb, fink jsonb)
WHERE e.source = %(source)s
"""

CLASSIFY = """
CREATE TEMP TABLE tk_valid ON COMMIT DROP AS
SELECT DISTINCT ON (candid) *                             -- a candid stored twice counts once
FROM tk_rows
WHERE NOT bad_json AND object_id IS NOT NULL AND candid IS NOT NULL AND label IS NOT NULL
  AND object_id ~ %(pattern)s
ORDER BY candid, id;
CREATE TEMP TABLE tk_in ON COMMIT DROP AS
SELECT v.*, CASE v.label {rank_cases} END AS rank
FROM tk_valid v WHERE v.label = ANY(%(labels)s);
ANALYZE tk_in
"""

SKIPPED = """
SELECT count(*) FILTER (WHERE bad_json),
       count(*) FILTER (WHERE NOT bad_json AND (object_id IS NULL OR candid IS NULL OR label IS NULL)),
       count(*) FILTER (WHERE NOT bad_json AND object_id IS NOT NULL AND candid IS NOT NULL
                        AND label IS NOT NULL AND object_id !~ %(pattern)s),
       count(*) FILTER (WHERE NOT bad_json AND object_id IS NOT NULL AND candid IS NOT NULL
                        AND label IS NOT NULL AND object_id ~ %(pattern)s),
       count(*),
       (SELECT count(*) FROM tk_valid)
FROM tk_rows
"""

SCOPE = """
WITH per_object AS (SELECT object_id, array_agg(DISTINCT label) AS labels FROM tk_in GROUP BY object_id)
SELECT label, count(*), (SELECT count(*) FROM per_object WHERE cardinality(labels) > 1)
FROM per_object, unnest(labels) AS label
GROUP BY label
"""

PER_OBJECT = """
WITH stats AS (
    SELECT object_id, count(*) AS n_alerts, max(ndet) AS max_n_detections,
           min(jd) AS first_jd, max(jd) AS last_jd,
           min(mag) FILTER (WHERE positive) AS mag_brightest,
           max(mag) FILTER (WHERE positive) AS mag_faintest,
           (array_agg(mag ORDER BY jd DESC, candid DESC) FILTER (WHERE positive))[1] AS mag_latest,
           (array_agg(ra ORDER BY jd DESC, candid DESC))[1] AS ra_latest,
           (array_agg(dec ORDER BY jd DESC, candid DESC))[1] AS dec_latest,
           array_agg(DISTINCT filter_id) FILTER (WHERE filter_id IS NOT NULL) AS filters,
           max(rank) AS best_rank
    FROM tk_in GROUP BY object_id
), scatter AS (
    -- RA offsets from the latest detection wrapped into [-180, 180): correct across 0/360.
    SELECT i.object_id,
           stddev_pop((i.ra - s.ra_latest + 540) - 360 * floor((i.ra - s.ra_latest + 540) / 360) - 180)
             * cos(radians(avg(i.dec))) * 3600 AS ra_scatter_arcsec,
           stddev_pop(i.dec) * 3600 AS dec_scatter_arcsec
    FROM tk_in i JOIN stats s USING (object_id) GROUP BY i.object_id
), labels AS (
    SELECT object_id, jsonb_object_agg(label, n) AS labels
    FROM (SELECT object_id, label, count(*) AS n FROM tk_in GROUP BY object_id, label) per_label
    GROUP BY object_id
), chosen AS (
    SELECT DISTINCT ON (i.object_id) i.object_id, i.label, i.id
    FROM tk_in i JOIN stats s ON s.object_id = i.object_id AND i.rank = s.best_rank
    ORDER BY i.object_id, i.jd DESC, i.candid DESC
)
SELECT s.object_id, c.label, l.labels, s.n_alerts, s.max_n_detections, s.first_jd, s.last_jd,
       s.mag_brightest, s.mag_faintest, s.mag_latest, s.ra_latest, s.dec_latest, s.filters,
       x.ra_scatter_arcsec, x.dec_scatter_arcsec, (e.extra_json::jsonb)->'fink' AS fink
FROM stats s
JOIN scatter x USING (object_id)
JOIN labels l USING (object_id)
JOIN chosen c USING (object_id)
JOIN {table} e ON e.id = c.id
ORDER BY s.object_id
"""


@dataclass
class Roster:
    objects: int = 0
    by_subtype: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUBTYPES, 0))
    naive_class_tallies: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUBTYPES, 0))
    cross_labelled: int = 0
    excluded_rows: dict[str, int] = field(default_factory=dict)
    skipped_rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"objects": self.objects, "by_subtype": self.by_subtype,
                "naive_class_tallies": self.naive_class_tallies, "cross_labelled": self.cross_labelled,
                "excluded_rows": self.excluded_rows, "skipped_rows": self.skipped_rows}


@dataclass
class BuildReport:
    roster: Roster
    rows_read: int
    written: int
    unchanged: int
    removed: int


def build(dsn: str, storehouse: str, table: str = DEFAULT_TABLE, source: str = DEFAULT_SOURCE) -> BuildReport:
    """Build every transient slot from the events table (see the module docstring)."""
    store = KindStore(storehouse, KIND)
    built_at = utc_now()
    roster = Roster()
    with connect(dsn) as connection:
        require_table(connection, table)
        # Sorts and hashes over a million narrow rows fit in memory at 256 MB; the stream
        # of objects is read whole, so plan the cursor for total time, not the first rows
        # (the fast-start plan measured ~100x slower at 1M alerts).
        connection.execute("SET LOCAL work_mem = '256MB'")
        connection.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        # Parsing a million JSON documents is the costliest step; the planner underrates
        # it and stays serial unless parallel workers look cheap.
        connection.execute("SET LOCAL parallel_setup_cost = 10")
        connection.execute("SET LOCAL parallel_tuple_cost = 0.001")
        table_sql = sql.Identifier(*table.split("."))
        _parse(connection, table_sql, source)
        rank_cases = sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.Literal(label), sql.Literal(rank))
                                       for label, (_, rank) in IN_SCOPE.items())
        for statement in CLASSIFY.split(";"):
            if statement.strip():
                connection.execute(sql.SQL(statement).format(rank_cases=rank_cases),
                                   {"pattern": ZTF_OBJECT_ID, "labels": list(IN_SCOPE)})
        rows_read = _count_skipped(connection, roster)
        _count_scope(connection, roster)
        with connection.cursor(name="tk_objects") as cursor:
            cursor.itersize = 2000
            cursor.execute(sql.SQL(PER_OBJECT).format(table=table_sql))
            slots = (_slot(row, table, source, built_at, roster) for row in cursor)
            report = store.write_slots(((slot["slot_id"], slot) for slot in slots), INDEX_FIELDS)
    # The index of exactly the slots now on disk (rebuild-index re-reads them instead).
    store.write_index(report.entries)
    store.write_report_file("roster", {**roster.as_dict(), "built_at": built_at, "source": source, "table": table})
    return BuildReport(roster, rows_read, report.written, report.unchanged, report.removed)


def _parse(connection: psycopg.Connection, table_sql: sql.Composable, source: str) -> None:
    """Fill tk_rows. First optimistically, casting every row (one JSON parse per row); if
    some row is not valid JSON, or not a JSON object, that fails, and the rows are parsed
    again behind a validity guard so the bad ones are counted instead of fatal."""
    try:
        with connection.transaction():
            connection.execute(sql.SQL(PARSE).format(table=table_sql, bad_json=sql.SQL("false"),
                                                     document=sql.SQL("e.extra_json::jsonb")), {"source": source})
        return
    except (psycopg.errors.InvalidTextRepresentation, psycopg.errors.InvalidParameterValue):
        log.info("some extra_json values are not JSON objects: parsing again with a guard")
    valid = sql.SQL(_json_guard(connection).format("e.extra_json"))
    document = sql.SQL("CASE WHEN {valid} AND jsonb_typeof(e.extra_json::jsonb) = 'object' "
                       "THEN e.extra_json::jsonb END").format(valid=valid)
    connection.execute(sql.SQL(PARSE).format(table=table_sql, bad_json=sql.SQL("NOT {}").format(valid),
                                             document=document), {"source": source})


def _count_skipped(connection: psycopg.Connection, roster: Roster) -> int:
    bad_json, missing, bad_id, valid_rows, total, distinct = connection.execute(
        SKIPPED, {"pattern": ZTF_OBJECT_ID}).fetchone()
    roster.skipped_rows = {"invalid_json": bad_json, "missing_keys": missing, "bad_object_id": bad_id,
                           "duplicate_candid": valid_rows - distinct}
    return total


def _count_scope(connection: psycopg.Connection, roster: Roster) -> None:
    roster.excluded_rows = dict(connection.execute(
        "SELECT label, count(*) FROM tk_valid WHERE NOT (label = ANY(%s)) GROUP BY label ORDER BY label",
        (list(IN_SCOPE),)).fetchall())
    for label, objects, cross_labelled in connection.execute(SCOPE):
        roster.naive_class_tallies[IN_SCOPE[label][0]] = objects
        roster.cross_labelled = cross_labelled


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def jd_to_iso(jd: float) -> str:
    moment = dt.datetime(2000, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=jd - 2451545.0)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _slot(row: tuple, table: str, source: str, built_at: str, roster: Roster) -> dict[str, Any]:
    (object_id, label, labels, n_alerts, max_ndet, first_jd, last_jd, brightest, faintest, latest_mag,
     ra, dec, filters, ra_scatter, dec_scatter, fink) = row
    subtype = IN_SCOPE[label][0]
    roster.objects += 1
    roster.by_subtype[subtype] += 1
    return {
        "slot_id": object_id,
        "kind": KIND,
        "subtype": subtype,
        "fink_classification": label,
        "labels": dict(sorted(labels.items())),
        "provisional": subtype == "unknown",
        "lat": None,
        "lon": None,
        "ra_deg": _finite(ra),
        "dec_deg": _finite(dec),
        "ra_scatter_arcsec": _finite(ra_scatter),
        "dec_scatter_arcsec": _finite(dec_scatter),
        "n_alerts": n_alerts,
        "max_n_detections": max_ndet,
        "first_detection": jd_to_iso(first_jd),
        "last_detection": jd_to_iso(last_jd),
        "first_mjd": first_jd - MJD_OFFSET,
        "last_mjd": last_jd - MJD_OFFSET,
        "duration_days": last_jd - first_jd,
        "mag_brightest": _finite(brightest),
        "mag_faintest": _finite(faintest),
        "mag_latest": _finite(latest_mag),
        "bands": [BANDS[f] for f in sorted(filters or []) if f in BANDS],
        "source_fields": fink,
        "provenance": {"source": source, "table": table, "rows_used": n_alerts, "built_at": built_at},
    }


def rebuild_index(storehouse: str) -> dict[str, Any]:
    return KindStore(storehouse, KIND).rebuild_index(INDEX_FIELDS)


# ------------------------------------------------------------------------ load-fink
@dataclass
class LoadReport:
    read: int = 0
    inserted: int = 0
    already_present: int = 0
    skipped: Counter = field(default_factory=Counter)


def fink_rows_from_file(path: str) -> Iterator[dict[str, Any]]:
    """Rows of Fink API output: the JSON list ``/api/v1/latests`` returns, or its CSV."""
    if path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                yield {key: _number_or_text(value) for key, value in row.items()}
        return
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, list):
        raise BuildError(f"{path}: expected a JSON list of Fink alerts, found {type(data).__name__}")
    yield from data


def _number_or_text(value: str) -> Any:
    """A CSV cell as the JSON API would have typed it (ids stay exact integers)."""
    if value in ("", None):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def event_from_fink(row: Mapping[str, Any], source: str) -> tuple | None:
    """One Fink API row → an events row, exactly as the live fetcher stores it."""
    object_id, candid = row.get("i:objectId"), row.get("i:candid")
    classification, jd = row.get("v:classification"), row.get("i:jd")
    if object_id is None or candid is None or classification is None or not isinstance(jd, (int, float)):
        return None
    extra = {
        "object_id": object_id, "candid": str(candid), "classification": classification,
        "filter_id": row.get("i:fid"), "n_detections": row.get("i:ndethist"), "jd": jd,
        "magpsf": row.get("i:magpsf"), "sigmapsf": row.get("i:sigmapsf"), "fink": dict(row),
    }
    event_time = dt.datetime(2000, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=jd - 2451545.0)
    return (source, event_time, row.get("i:dec"), row.get("i:ra"), row.get("i:magpsf"), json.dumps(extra))


def load_fink(dsn: str, paths: Iterable[str], table: str = DEFAULT_TABLE, source: str = DEFAULT_SOURCE,
              create: bool = True) -> LoadReport:
    """Insert Fink alerts not yet in the table (identified by candid)."""
    report = LoadReport()
    table_sql = sql.Identifier(*table.split("."))
    with connect(dsn) as connection:
        if create:
            connection.execute(_ddl(connection, table))
        require_table(connection, table)
        valid = sql.SQL(_json_guard(connection).format("extra_json"))
        present = {candid for (candid,) in connection.execute(sql.SQL(
            "SELECT extra_json::jsonb->>'candid' FROM {table} WHERE source = %s AND {valid}"
        ).format(table=table_sql, valid=valid), (source,))}
        new_rows = []
        for path in paths:
            for row in fink_rows_from_file(path):
                report.read += 1
                event = event_from_fink(row, source) if isinstance(row, Mapping) else None
                if event is None:
                    report.skipped["missing i:objectId/i:candid/v:classification/i:jd"] += 1
                    continue
                candid = str(row["i:candid"])
                if candid in present:
                    report.already_present += 1
                    continue
                present.add(candid)
                new_rows.append(event)
        with connection.cursor() as cursor:
            cursor.executemany(sql.SQL(
                "INSERT INTO {table} (source, event_time, latitude, longitude, magnitude, extra_json) "
                "VALUES (%s, %s, %s, %s, %s, %s)").format(table=table_sql), new_rows)
        report.inserted = len(new_rows)
    return report


DDL_FILE = Path(__file__).resolve().parent.parent / "sql" / "events.sql"


def _ddl(connection: psycopg.Connection, table: str) -> str:
    """sql/events.sql for a table of another name (the file is the one definition)."""
    text = "\n".join(line for line in DDL_FILE.read_text().splitlines() if not line.lstrip().startswith("--"))
    name = table.split(".")[-1]
    text = re.sub(r"\bevents_source_idx\b", sql.Identifier(f"{name}_source_idx").as_string(connection), text)
    return re.sub(r"\bevents\b", sql.Identifier(*table.split(".")).as_string(connection), text)
