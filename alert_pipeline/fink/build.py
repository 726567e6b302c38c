"""The build: the events table → the ``transient`` and ``minor_body`` kinds.

The events table (``sql/events.sql``) holds one row per Fink alert, tagged with a source
name; ``extra_json`` is TEXT, so every read of its keys casts it to jsonb. The build:

1. parses each row of the source once into a narrow temporary table. When some row is
   not text jsonb can read, the parse runs again behind a PL/pgSQL guard, so one bad row
   never aborts the cast for the whole table;
2. counts what it skips, per reason (see ``queries``), and what is out of scope;
3. per kind, aggregates the groups (ZTF objects; minor bodies) in SQL and streams one
   row per group from the same parsed rows;
4. writes the slots through the storehouse, removes slots of vanished groups (unless
   that would remove more than half of them: see ``ShrinkRefused``), rebuilds the index
   and writes the roster report, kind by kind.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from .. import kinds as kind_registry
from ..storehouse import KindSpec, utc_now
from . import queries, transient, workers
from .db import DEFAULT_SOURCE, DEFAULT_TABLE, BuildError, connect, json_guard, require_table
from .transient import IN_SCOPE, Roster

log = logging.getLogger("transient_kind_builder")

KIND = transient.KIND
#: The kinds this build makes from the events table (the registry's kinds with a RowSource).
KINDS = kind_registry.built_from_rows()
SKIP_REASONS = ("invalid_json", "missing_keys", "bad_object_id", "bad_time", "too_deep", "duplicate_candid")


class ShrinkRefused(BuildError):
    """The source gave far fewer groups than the storehouse holds (a typo in --source or
    --table, an emptied table): the slots were kept."""


@dataclass
class KindReport:
    roster: Any  # transient.Roster or minor_body.BodyRoster
    written: int
    unchanged: int
    removed: int
    shrink_refused: int


@dataclass
class BuildReport:
    rows_read: int
    kinds: dict[str, KindReport]

    @property
    def roster(self) -> Roster:
        """The transient kind's roster."""
        return self.kinds[transient.KIND].roster

    @property
    def written(self) -> int:
        return sum(kind.written for kind in self.kinds.values())

    @property
    def unchanged(self) -> int:
        return sum(kind.unchanged for kind in self.kinds.values())

    @property
    def removed(self) -> int:
        return sum(kind.removed for kind in self.kinds.values())


def build(dsn: str, storehouse: str, table: str = DEFAULT_TABLE, source: str = DEFAULT_SOURCE,
          allow_shrink: bool = False, kinds: Sequence[str] = KINDS) -> BuildReport:
    """Build the slots of ``kinds`` from the events table (see the module docstring)."""
    provenance = {"source": source, "table": table, "built_at": utc_now()}
    reports: dict[str, KindReport] = {}
    with workers.worker_pool(min(2, os.cpu_count() or 1)) as pool, connect(dsn) as connection:
        table_sql = require_table(connection, table)
        _plan_for_throughput(connection)
        with _timed("parse"):
            _parse(connection, table_sql, source)
        with _timed("classify"):
            _classify(connection)
            rows_read, skipped = _count_skipped(connection)
        for kind in KINDS:
            if kind not in kinds:
                continue
            spec = kind_registry.spec(kind)
            roster = spec.rows.roster_type(skipped_rows=dict(skipped))
            if kind == transient.KIND:
                _count_scope(connection, roster)
            reports[kind] = _write_kind(pool, storehouse, spec, connection,
                                        sql.SQL(spec.rows.query).format(table=table_sql), roster, provenance,
                                        allow_shrink)
    refused = {kind: report for kind, report in reports.items() if report.shrink_refused}
    if refused:
        raise ShrinkRefused(
            "; ".join(f"{kind}: source {source!r} in table {table!r} gave {report.roster.objects} slots ({rows_read} "
                      f"rows) but the storehouse holds {report.shrink_refused} more that would be removed"
                      for kind, report in refused.items())
            + "; kept them. Check --source and --table, or pass --allow-shrink if they really are gone.")
    return BuildReport(rows_read, reports)


def _write_kind(pool: Any, storehouse: str, spec: KindSpec, connection: psycopg.Connection, query: sql.Composable,
                roster: Any, provenance: dict[str, Any], allow_shrink: bool) -> KindReport:
    """Stream one kind's groups into slots (written by the worker processes), then its
    index and roster."""
    store = spec.store(storehouse)
    on_disk = store.slot_ids_on_disk()
    # Binary: arrays of numbers arrive as numbers, not text to parse (measured ~2x faster).
    with _timed(f"{spec.name} slots"), connection.cursor(name=f"tk_{spec.name}", binary=True) as cursor:
        cursor.execute(query, dict(spec.rows.params))
        report = workers.write_all(pool, storehouse, spec.name, _prefetched(cursor), on_disk, provenance, roster)
    store.finish(report, on_disk, spec.index_fields, allow_shrink)
    store.write_index(report.entries)  # the index of exactly the slots now on disk
    store.write_report_file("roster", {**roster.as_dict(), "built_at": provenance["built_at"],
                                       "source": provenance["source"], "table": provenance["table"]})
    return KindReport(roster, report.written, report.unchanged, report.removed, report.shrink_refused)


def _prefetched(cursor: psycopg.ServerCursor, batch: int = 2000) -> Iterator[list[tuple]]:
    """The cursor's rows in batches, fetched one batch ahead in a thread: the server
    aggregates and sends the next batch while the batches before it are handed out."""
    batches: queue.Queue[list[tuple] | BaseException] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                rows = cursor.fetchmany(batch)
                while not stop.is_set():
                    try:
                        batches.put(rows, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if not rows:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            batches.put(exc)

    fetcher = threading.Thread(target=fetch, name="slot-rows", daemon=True)
    fetcher.start()
    try:
        while True:
            rows = batches.get()
            if isinstance(rows, BaseException):
                raise rows
            if not rows:
                return
            yield rows
    finally:
        stop.set()
        fetcher.join()


@contextmanager
def _timed(step: str) -> Iterator[None]:
    """Log how long a step of the build took (the figures the benchmark's profile uses)."""
    started = time.perf_counter()
    yield
    log.info("build step %s: %.2f s", step, time.perf_counter() - started)


def _classify(connection: psycopg.Connection) -> None:
    rank_cases = sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.Literal(label), sql.Literal(rank))
                                   for label, (_, rank) in IN_SCOPE.items())
    for statement in queries.CLASSIFY.split(";"):
        if statement.strip():
            connection.execute(sql.SQL(statement).format(rank_cases=rank_cases),
                               {"pattern": queries.ZTF_OBJECT_ID, "labels": list(IN_SCOPE)})


def _plan_for_throughput(connection: psycopg.Connection) -> None:
    # Sorts and hashes over a million narrow rows fit in memory at 256 MB; the stream of
    # objects is read whole, so plan the cursor for total time, not the first rows (the
    # fast-start plan measured ~100x slower at 1M alerts). Parsing a million JSON
    # documents is the costliest step; the planner underrates it and stays serial
    # unless parallel workers look cheap.
    connection.execute("SET LOCAL work_mem = '256MB'")
    connection.execute("SET LOCAL temp_buffers = '1GB'")
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
                {"source": source, "pattern": queries.ZTF_OBJECT_ID})
        return
    except (psycopg.errors.InvalidTextRepresentation, psycopg.errors.InvalidParameterValue,
            psycopg.errors.UntranslatableCharacter, psycopg.errors.StatementTooComplex) as exc:
        log.info("some extra_json values are not JSON objects jsonb can read (%s): parsing again with a guard",
                 type(exc).__name__)
    valid = json_guard(connection, sql.SQL("e.extra_json"))
    document = sql.SQL("CASE WHEN {valid} AND jsonb_typeof(e.extra_json::jsonb) = 'object' "
                       "THEN e.extra_json::jsonb END").format(valid=valid)
    connection.execute(sql.SQL(queries.PARSE).format(table=table_sql, bad_json=sql.SQL("NOT {}").format(valid),
                                                     document=document),
                       {"source": source, "pattern": queries.ZTF_OBJECT_ID})


def _count_skipped(connection: psycopg.Connection) -> tuple[int, dict[str, int]]:
    """Rows read, and rows skipped per reason (the same for every kind)."""
    *per_reason, usable, total, distinct = connection.execute(queries.SKIPPED).fetchone()
    return total, dict(zip(SKIP_REASONS, [*per_reason, usable - distinct], strict=True))


def _count_scope(connection: psycopg.Connection, roster: Roster) -> None:
    roster.excluded_rows = dict(connection.execute(
        "SELECT label, count(*) FROM tk_valid WHERE NOT (label = ANY(%s)) GROUP BY label ORDER BY label",
        (list(IN_SCOPE),)).fetchall())
    for label, objects, cross_labelled in connection.execute(queries.SCOPE):
        roster.naive_class_tallies[IN_SCOPE[label][0]] = objects
        roster.cross_labelled = cross_labelled


def rebuild_index(storehouse: str, kind: str = transient.KIND) -> dict[str, Any]:
    """Rebuild one kind's ``index.json`` from its slot files (any registered kind)."""
    spec = kind_registry.spec(kind)
    return spec.store(storehouse).rebuild_index(spec.index_fields)
