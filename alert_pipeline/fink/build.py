"""The build: the events table → one "transient" slot per ZTF object.

The events table (``sql/events.sql``) holds one row per Fink alert, tagged with a source
name; ``extra_json`` is TEXT, so every read of its keys casts it to jsonb. The build:

1. parses each row of the source once into a narrow temporary table. When some row is
   not text jsonb can read, the parse runs again behind a PL/pgSQL guard, so one bad row
   never aborts the cast for the whole table;
2. counts what it skips, per reason (see ``queries``), and what is out of scope (Solar
   System and other labels);
3. aggregates each object's in-scope alerts in SQL and streams one row per object;
4. writes the slots through the storehouse, removes slots of vanished objects (unless
   that would remove more than half of them: see ``ShrinkRefused``), rebuilds the index
   and writes the roster report.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ..storehouse import KindStore, utc_now
from . import queries
from .db import DEFAULT_SOURCE, DEFAULT_TABLE, MJD_OFFSET, BuildError, connect, jd_to_iso, json_guard, require_table

log = logging.getLogger("transient_kind_builder")

KIND = "transient"
#: Fink label → (subtype, specificity). Every other label is out of scope.
IN_SCOPE: dict[str, tuple[str, int]] = {
    "Kilonova candidate": ("kilonova", 3),
    "SN candidate": ("sn", 2),
    "Unknown": ("unknown", 1),
}
SUBTYPES = ("sn", "kilonova", "unknown")
#: ZTF filter ids in wavelength order.
BANDS = {1: "g", 2: "r", 3: "i"}
INDEX_FIELDS = ("slot_id", "subtype", "ra_deg", "dec_deg", "first_mjd", "last_mjd", "n_alerts", "provisional")
SKIP_REASONS = ("invalid_json", "missing_keys", "bad_object_id", "bad_time", "too_deep", "duplicate_candid")


class ShrinkRefused(BuildError):
    """The source gave far fewer objects than the storehouse holds (a typo in --source or
    --table, an emptied table): the slots were kept."""


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


def build(dsn: str, storehouse: str, table: str = DEFAULT_TABLE, source: str = DEFAULT_SOURCE,
          allow_shrink: bool = False) -> BuildReport:
    """Build every transient slot from the events table (see the module docstring)."""
    store = KindStore(storehouse, KIND)
    built_at = utc_now()
    roster = Roster()
    with connect(dsn) as connection:
        table_sql = require_table(connection, table)
        _plan_for_throughput(connection)
        _parse(connection, table_sql, source)
        rank_cases = sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.Literal(label), sql.Literal(rank))
                                       for label, (_, rank) in IN_SCOPE.items())
        for statement in queries.CLASSIFY.split(";"):
            if statement.strip():
                connection.execute(sql.SQL(statement).format(rank_cases=rank_cases),
                                   {"pattern": queries.ZTF_OBJECT_ID, "labels": list(IN_SCOPE)})
        rows_read = _count_skipped(connection, roster)
        _count_scope(connection, roster)
        with connection.cursor(name="tk_objects") as cursor:
            cursor.itersize = 2000
            cursor.execute(sql.SQL(queries.PER_OBJECT).format(table=table_sql))
            slots = (_slot(row, table, source, built_at, roster) for row in cursor)
            report = store.write_slots(((slot["slot_id"], slot) for slot in slots), INDEX_FIELDS,
                                       allow_shrink=allow_shrink)
    store.write_index(report.entries)  # the index of exactly the slots now on disk
    store.write_report_file("roster", {**roster.as_dict(), "built_at": built_at, "source": source, "table": table})
    if report.shrink_refused:
        raise ShrinkRefused(
            f"source {source!r} in table {table!r} gave {roster.objects} objects ({rows_read} rows) but the "
            f"storehouse holds {report.shrink_refused} more slots that would be removed; kept them. Check "
            "--source and --table, or pass --allow-shrink if the objects really are gone.")
    return BuildReport(roster, rows_read, report.written, report.unchanged, report.removed)


def _plan_for_throughput(connection: psycopg.Connection) -> None:
    # Sorts and hashes over a million narrow rows fit in memory at 256 MB; the stream of
    # objects is read whole, so plan the cursor for total time, not the first rows (the
    # fast-start plan measured ~100x slower at 1M alerts). Parsing a million JSON
    # documents is the costliest step; the planner underrates it and stays serial
    # unless parallel workers look cheap.
    connection.execute("SET LOCAL work_mem = '256MB'")
    connection.execute("SET LOCAL cursor_tuple_fraction = 1.0")
    connection.execute("SET LOCAL parallel_setup_cost = 10")
    connection.execute("SET LOCAL parallel_tuple_cost = 0.001")


def _parse(connection: psycopg.Connection, table_sql: sql.Composable, source: str) -> None:
    """Fill tk_rows. First optimistically, casting every row (one JSON parse per row); if
    some row is not text jsonb can read, or not a JSON object, that fails, and the rows
    are parsed again behind a guard so the bad ones are counted instead of fatal."""
    try:
        with connection.transaction():
            connection.execute(sql.SQL(queries.PARSE).format(
                table=table_sql, bad_json=sql.SQL("false"), document=sql.SQL("e.extra_json::jsonb")),
                {"source": source})
        return
    except (psycopg.errors.InvalidTextRepresentation, psycopg.errors.InvalidParameterValue,
            psycopg.errors.UntranslatableCharacter, psycopg.errors.StatementTooComplex) as exc:
        log.info("some extra_json values are not JSON objects jsonb can read (%s): parsing again with a guard",
                 type(exc).__name__)
    valid = json_guard(connection, sql.SQL("e.extra_json"))
    document = sql.SQL("CASE WHEN {valid} AND jsonb_typeof(e.extra_json::jsonb) = 'object' "
                       "THEN e.extra_json::jsonb END").format(valid=valid)
    connection.execute(sql.SQL(queries.PARSE).format(table=table_sql, bad_json=sql.SQL("NOT {}").format(valid),
                                                     document=document), {"source": source})


def _count_skipped(connection: psycopg.Connection, roster: Roster) -> int:
    *per_reason, usable, total, distinct = connection.execute(
        queries.SKIPPED, {"pattern": queries.ZTF_OBJECT_ID}).fetchone()
    roster.skipped_rows = dict(zip(SKIP_REASONS, [*per_reason, usable - distinct], strict=True))
    return total


def _count_scope(connection: psycopg.Connection, roster: Roster) -> None:
    roster.excluded_rows = dict(connection.execute(
        "SELECT label, count(*) FROM tk_valid WHERE NOT (label = ANY(%s)) GROUP BY label ORDER BY label",
        (list(IN_SCOPE),)).fetchall())
    for label, objects, cross_labelled in connection.execute(queries.SCOPE):
        roster.naive_class_tallies[IN_SCOPE[label][0]] = objects
        roster.cross_labelled = cross_labelled


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


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
