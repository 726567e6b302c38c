"""The build: the events table → the ``transient`` and ``minor_body`` kinds.

The events table (``alert_pipeline/storehouse/fink/events.sql``) holds one row per Fink alert, tagged with a source
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

All of it reads one REPEATABLE READ snapshot (what ``incremental`` marks as read is
exactly what was read), and one build at a time runs per storehouse and per events
table (``locks``).
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

from alert_pipeline.durable import checkpoint
from alert_pipeline.storehouse import kinds as kind_registry
from alert_pipeline.storehouse.fink import incremental, locks, minor_body, queries, transient, workers
from alert_pipeline.storehouse.fink.db import (
    DEFAULT_SOURCE,
    DEFAULT_TABLE,
    ShrinkRefused,
    connect,
    json_guard,
    require_table,
)
from alert_pipeline.storehouse.fink.roster import Roster
from alert_pipeline.storehouse.fink.transient import IN_SCOPE
from alert_pipeline.storehouse.layout import IndexUnreadable, StorehouseLayout, read_index, read_roster
from alert_pipeline.storehouse.slots import KindSpec, utc_now

log = logging.getLogger("transient_kind_builder")

KIND = transient.KIND
#: The kinds this build makes from the events table (the registry's kinds with a RowSource).
KINDS = kind_registry.built_from_rows()
SKIP_REASONS = ("invalid_json", "missing_keys", "bad_object_id", "bad_time", "too_deep", "duplicate_candid")


@dataclass
class KindReport:
    roster: Roster
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
          allow_shrink: bool = False, kinds: Sequence[str] = KINDS, full: bool = False) -> BuildReport:
    """Build the slots of ``kinds`` from the events table (see the module docstring):
    incrementally (only the groups the rows added since the last build touch; see
    ``incremental``) unless ``full`` or the state says a full build is needed. One build
    at a time per storehouse and per events table (``locks``): a second one waits."""
    with workers.worker_pool(min(2, os.cpu_count() or 1)) as pool, \
            locks.one_build_at_a_time(dsn, storehouse, table):
        plan, rows_read, reports = _build_slots(pool, dsn, storehouse, table, source, allow_shrink, kinds, full)
        refused = {kind: report for kind, report in reports.items() if report.shrink_refused}
        if refused:
            raise ShrinkRefused(
                "; ".join(f"{kind}: source {source!r} in table {table!r} gave {report.roster.objects} slots "
                          f"({rows_read} rows) but the storehouse holds {report.shrink_refused} more that would be "
                          "removed" for kind, report in refused.items())
                + "; kept them. Check --source and --table, or pass --allow-shrink if they really are gone.")
        if plan.rows_table is not None and set(KINDS) <= set(kinds):
            checkpoint("before-build-state")
            incremental.write_state(storehouse, plan, table, source)  # the slots it covers are synced
    return BuildReport(rows_read, reports)


def _build_slots(pool: Any, dsn: str, storehouse: str, table: str, source: str, allow_shrink: bool,
                 kinds: Sequence[str], full: bool) -> tuple[incremental.Plan, int, dict[str, KindReport]]:
    """The build's reading and writing, in one REPEATABLE READ transaction (every query
    sees the same rows), committed once the slots are synced."""
    provenance = {"source": source, "table": table, "built_at": utc_now()}
    reports: dict[str, KindReport] = {}
    with connect(dsn) as connection:
        connection.autocommit = True
        transactions = incremental.transaction_mark(connection)  # before the build's snapshot
        table_sql = require_table(connection, table)
        connection.autocommit = False
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        _plan_for_throughput(connection)
        plan = incremental.plan(connection, table_sql, storehouse, table, source, full, transactions)
        if plan.mode == "full":
            log.info("build: full, %s (rows 1 to %d)", plan.reason, plan.high)
        elif not plan.new_ids:
            log.info("build: incremental, nothing new since row %d", plan.after)
            return plan, 0, {kind: _unchanged(storehouse, kind) for kind in KINDS if kind in kinds}
        else:
            log.info("build: incremental, %d new row%s since row %d (ids %d to %d%s)", len(plan.new_ids),
                     "" if len(plan.new_ids) == 1 else "s", plan.after, plan.new_ids[0], plan.new_ids[-1],
                     ", some committed late or read again" if plan.late else "")
        touched = None
        with _timed("parse"):
            if plan.mode == "incremental":
                _parse(connection, table_sql, source, sql.SQL("e.id = ANY({})").format(sql.Literal(plan.new_ids)))
                new_reasons = incremental.new_row_reasons(connection)
                incremental.record_rows(connection, plan.rows_table, source, minor_body.MPC_LABEL, replace=False)
                touched = incremental.touched_scope(connection, plan.rows_table, source, minor_body.MPC_LABEL)
                # The ids as an array: an index lookup per row, where a semi-join on tk_scope
                # may be planned as a scan of the whole events table.
                scope_ids = connection.execute("SELECT COALESCE(array_agg(id), '{}') FROM tk_scope").fetchone()[0]
                _parse(connection, table_sql, source, sql.SQL("e.id = ANY({})").format(sql.Literal(scope_ids)))
            else:
                _parse(connection, table_sql, source, sql.SQL("e.id <= {}").format(sql.Literal(plan.high)))
                if plan.rows_table is not None:
                    incremental.record_rows(connection, plan.rows_table, source, minor_body.MPC_LABEL, replace=True)
        with _timed("classify"):
            _classify(connection)
            rows_read, skipped = _count_skipped(connection)
        counts = delta = None
        if touched is not None and not plan.late and all(
                read_roster(StorehouseLayout.at(storehouse), kind).get("rows_through") == plan.after
                for kind in kinds):  # the last roster is this build's base, and every new row is above it
            delta = incremental.roster_delta(connection, plan.after, touched[0], new_reasons, list(IN_SCOPE),
                                             minor_body.MPC_LABEL)
        elif plan.rows_table is not None:
            counts = incremental.roster_counts(connection, plan.rows_table, source, list(IN_SCOPE),
                                               minor_body.MPC_LABEL)
        for kind in KINDS:
            if kind not in kinds:
                continue
            spec = kind_registry.spec(kind)
            roster = spec.rows.roster_type(skipped_rows=dict(skipped))
            if kind == transient.KIND and counts is None and delta is None:
                _count_scope(connection, roster)
            kind_counts = counts if delta is None else _add(_previous_counts(storehouse, kind), delta)
            reports[kind] = _write_kind(pool, storehouse, spec, connection,
                                        sql.SQL(spec.rows.query).format(table=table_sql), roster, provenance,
                                        allow_shrink, _keep(kind, touched), kind_counts, plan.high)
    return plan, rows_read, reports


def _keep(kind: str, touched: tuple[set, set] | None) -> Any:
    """Which groups an incremental build writes: those the new rows touch (a group whose
    rows were read only partly, through another group's rows, is left alone)."""
    if touched is None:
        return None
    objects, designations = touched
    if kind == transient.KIND:
        return lambda row: row[0] in objects
    return lambda row: row[0] in designations if row[1] else row[0] in objects


def _unchanged(storehouse: str, kind: str) -> KindReport:
    spec = kind_registry.spec(kind)
    roster = read_roster(StorehouseLayout.at(storehouse), kind)
    report = spec.rows.roster_type()
    report.objects = roster.get("objects", 0)
    return KindReport(report, 0, len(spec.store(storehouse).slot_ids_on_disk()), 0, 0)


def _write_kind(pool: Any, storehouse: str, spec: KindSpec, connection: psycopg.Connection, query: sql.Composable,
                roster: Any, provenance: dict[str, Any], allow_shrink: bool, keep: Any = None,
                counts: dict[str, dict[str, int]] | None = None, rows_through: int | None = None) -> KindReport:
    """Stream one kind's groups into slots (written by the worker processes), then its
    index and roster. An incremental build (``keep`` chooses the groups) removes no slot
    and updates the index entries of the slots it wrote."""
    store = spec.store(storehouse)
    # A full build needs every slot on disk (to remove the stale ones); an incremental one
    # only tries to open the slots it writes (listing 100,000 files cost more).
    on_disk = store.slot_ids_on_disk() if keep is None else None
    # Binary: arrays of numbers arrive as numbers, not text to parse.
    with _timed(f"{spec.name} slots"), connection.cursor(name=f"tk_{spec.name}", binary=True) as cursor:
        cursor.execute(query, dict(spec.rows.params))
        batches = _prefetched(cursor) if keep is None else ([row for row in rows if keep(row)]
                                                            for rows in _prefetched(cursor))
        report = workers.write_all(pool, storehouse, spec.name, batches, on_disk, provenance, roster)
    if keep is None:
        store.finish(report, on_disk, spec.index_fields, allow_shrink)
        entries = report.entries
    else:
        checkpoint("before-build-sync")
        store.sync()
        entries = _updated_entries(store, spec, report.entries)
    checkpoint("before-build-index")
    index = store.write_index(entries)  # the index of exactly the slots now on disk
    if counts is not None:
        _roster_from_counts(spec.name, roster, counts, index["slots"])
    store.write_roster({**roster.as_dict(), "built_at": provenance["built_at"],
                                       "source": provenance["source"], "table": provenance["table"],
                                       "rows_through": rows_through})
    return KindReport(roster, report.written, report.unchanged, report.removed, report.shrink_refused)


def _updated_entries(store: Any, spec: KindSpec, written: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The index entries after an incremental build: the stored index with the written
    slots' entries replaced or added (the index rebuilt from disk when it is unreadable)."""
    try:
        stored, _ = read_index(store.layout, spec.name)
    except IndexUnreadable:
        return store.read_entries(sorted(store.slot_ids_on_disk()), spec.index_fields)
    by_id = {entry["slot_id"]: entry for entry in stored}
    by_id.update({entry["slot_id"]: entry for entry in written})
    return list(by_id.values())


def _roster_from_counts(kind: str, roster: Any, counts: dict[str, dict[str, int]], entries: list[dict]) -> None:
    """The roster from the whole-table counts and the index (the same after a full or an
    incremental build)."""
    roster.objects = len(entries)
    roster.by_subtype = dict.fromkeys(roster.by_subtype, 0)
    for entry in entries:
        roster.by_subtype[entry["subtype"]] = roster.by_subtype.get(entry["subtype"], 0) + 1
    skipped = {reason: counts["skipped"].get(reason, 0) for reason in SKIP_REASONS}
    if kind == transient.KIND:
        roster.skipped_rows = skipped
        roster.excluded_rows = dict(sorted(counts["excluded"].items()))
        roster.naive_class_tallies = dict.fromkeys(roster.naive_class_tallies, 0)
        for label, objects in counts["tally"].items():
            roster.naive_class_tallies[IN_SCOPE[label][0]] = objects
        roster.cross_labelled = counts["cross"].get("", 0)
    else:
        designation = counts.get("designation_skips")
        if designation is None:
            designation = minor_body.designation_skips(counts["designation"])
        roster.skipped_rows = {**skipped, **{reason: count for reason, count in designation.items() if count}}


def _previous_counts(storehouse: str, kind: str) -> dict[str, dict[str, int]]:
    """The last roster's whole-table figures, in ``incremental.ROSTER_COUNTS``' form."""
    roster = read_roster(StorehouseLayout.at(storehouse), kind)
    label_of = {subtype: label for label, (subtype, _) in IN_SCOPE.items()}
    skipped = dict(roster.get("skipped_rows") or {})
    designation = {reason: skipped.pop(reason) for reason in ("no_designation", "unsafe_designation")
                   if reason in skipped}
    return {"skipped": skipped, "excluded": dict(roster.get("excluded_rows") or {}),
            "tally": {label_of[subtype]: count for subtype, count in (roster.get("naive_class_tallies") or {}).items()},
            "cross": {"": roster.get("cross_labelled", 0)}, "designation_skips": designation}


def _add(previous: dict[str, dict[str, int]], delta: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The last roster's figures plus what the new rows changed."""
    total = {what: dict(values) for what, values in previous.items()}
    for what in ("skipped", "excluded", "tally", "cross"):
        for name, count in delta[what].items():
            total.setdefault(what, {})[name] = total.get(what, {}).get(name, 0) + count
    for reason, count in minor_body.designation_skips(delta["designation"]).items():
        total["designation_skips"][reason] = total["designation_skips"].get(reason, 0) + count
    total["excluded"] = {label: count for label, count in total["excluded"].items() if count}
    return total



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
    # fast-start plan is far slower at scale: README, "Measured design choices"). Parsing a million JSON
    # documents is the costliest step; the planner underrates it and stays serial
    # unless parallel workers look cheap.
    connection.execute("SET LOCAL work_mem = '256MB'")
    connection.execute("SET LOCAL temp_buffers = '1GB'")
    connection.execute("SET LOCAL cursor_tuple_fraction = 1.0")
    connection.execute("SET LOCAL parallel_setup_cost = 10")
    connection.execute("SET LOCAL parallel_tuple_cost = 0.001")


def _parse(connection: psycopg.Connection, table_sql: sql.Composable, source: str, scope: sql.Composable) -> None:
    """Fill tk_rows with the source's rows that ``scope`` (SQL on ``e``) selects. First
    optimistically, casting every row (one JSON parse per row); if some row is not text
    jsonb can read, or not a JSON object, that fails, and the rows are parsed again
    behind a guard so the bad ones are counted instead of fatal."""
    try:
        with connection.transaction():
            connection.execute(sql.SQL(queries.PARSE).format(
                table=table_sql, bad_json=sql.SQL("false"), document=sql.SQL("e.extra_json::jsonb"), scope=scope),
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
                                                     document=document, scope=scope),
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
