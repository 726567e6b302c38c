"""What an incremental build needs: the rows already built, and where each row belongs.

The build keeps, per source and table, a mark of what it has read
(``<storehouse>/state/build.json``, written only after the slots it covers are on disk):
the largest id it saw (``high_water``), and ``transactions``: the oldest transaction
still running just before it read (``from_xid``) and the ids of the rows it saw that
were written at or after that one (``seen``, usually none or a few). All of the build
reads one REPEATABLE READ snapshot. The next build reads the source's rows written at or
after ``from_xid`` that are not in ``seen`` — rows the mark could not show it, whatever
their id — so a row committed late (a writer holding id 47 while another commits 48, or
writing under a savepoint) or written after a sequence reset is never skipped. It
rebuilds only the groups those rows touch — their ZTF objects and designations — from
all of *their* rows.

To find "all rows of these objects" without parsing the table's JSON again, the builder
keeps a table of its own beside the events table, ``<table>_tk_rows``: one narrow row per
event row it has parsed (id, object id, candid, label, designation, and why the row is
skipped, if it is, and the row's source: one table serves every source of the events
table), with indexes on the object id and the designation. The roster's
whole-table counts (skipped rows, excluded labels, naive tallies) are computed from it
too: after a full build by ``ROSTER_COUNTS`` over the whole table, after an incremental one
by adding to the last roster what the new rows changed (``roster_delta``: counted over the
touched groups' rows only, before and after the new rows).

A row read again (``seen`` was too long to keep, or the row was edited since) is harmless: its groups are rebuilt from all their rows, and the roster is then counted
over the whole rows table instead of adding a delta.

A full build runs instead when asked (``--full``), when there is no state or it names
another source or table or has no transaction mark, when the table looks truncated or
restored (its largest id is below the mark, or it holds fewer rows than were built, or
the database's transaction counter is behind the mark), when the builder's rows table
lacks rows of this source already built, or when the builder may not create or write its
table (a read-only role: a warning, and the build is full each time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from alert_pipeline.storehouse.fink.db import table_identifier
from alert_pipeline.storehouse.layout import StateFile, StorehouseLayout

log = logging.getLogger("transient_kind_builder")
#: The build's mark between runs: ``state/build.json``.
STATE_NAME = "build"
ROWS_SUFFIX = "_tk_rows"

#: The skip reason of a parsed row (tk_rows), NULL for a usable one.
REASON = """CASE WHEN bad_json THEN 'invalid_json'
     WHEN object_id IS NULL OR candid IS NULL OR label IS NULL THEN 'missing_keys'
     WHEN NOT good_id THEN 'bad_object_id' WHEN bad_time THEN 'bad_time' WHEN too_deep THEN 'too_deep' END"""

ROWS_DDL = """
CREATE TABLE IF NOT EXISTS {rows} (id bigint PRIMARY KEY, object_id text, candid text, label text,
                                   designation text, reason text, source text);
CREATE INDEX IF NOT EXISTS {object_index} ON {rows} (object_id);
CREATE INDEX IF NOT EXISTS {designation_index} ON {rows} (designation)
"""

#: Whole-table counts for the roster, from the builder's rows table (this source's rows):
#: rows skipped per reason, the first row of each candid (the valid rows), labels out of
#: scope, and per in-scope label the objects carrying it.
ROSTER_COUNTS = """
WITH mine AS MATERIALIZED (
    SELECT * FROM {rows} WHERE source = %(source)s
), valid AS (
    SELECT DISTINCT ON (candid) * FROM mine WHERE reason IS NULL ORDER BY candid, id
)
SELECT 'skipped' AS what, reason AS name, count(*) FROM mine WHERE reason IS NOT NULL GROUP BY reason
UNION ALL
SELECT 'skipped', 'duplicate_candid', (SELECT count(*) FROM mine WHERE reason IS NULL) - (SELECT count(*) FROM valid)
UNION ALL
SELECT 'excluded', label, count(*) FROM valid WHERE NOT (label = ANY(%(in_scope)s)) GROUP BY label
UNION ALL
SELECT 'tally', label, count(DISTINCT object_id) FROM valid WHERE label = ANY(%(in_scope)s) GROUP BY label
UNION ALL
SELECT 'cross', '', count(*) FROM (SELECT object_id FROM valid WHERE label = ANY(%(in_scope)s)
                                  GROUP BY object_id HAVING count(DISTINCT label) > 1) c
UNION ALL
SELECT 'designation', COALESCE(NULLIF(designation, 'null'), ''), count(*) FROM valid WHERE label = %(mpc)s
GROUP BY 2
"""


@dataclass
class Plan:
    """What this build does: ``full``, or ``incremental`` over ``new_ids`` (the source's
    rows the last build did not see). ``after`` is the last
    build's largest id (0 for a full build), ``high`` the largest id now, ``rows`` the
    source's row count now; ``late`` says some new row lies at or below ``after`` (then
    the roster is counted over the whole rows table, not by a delta); ``transactions`` is
    this build's own mark, kept in the state once its slots are on disk."""

    mode: str
    after: int
    high: int
    rows: int
    reason: str
    rows_table: sql.Composable | None
    transactions: dict[str, Any] = field(default_factory=dict)
    new_ids: list[int] = field(default_factory=list)

    @property
    def late(self) -> bool:
        return bool(self.new_ids) and self.new_ids[0] <= self.after


def rows_table(table: str) -> sql.Identifier:
    parts = table.split(".")
    parts[-1] = (parts[-1] + ROWS_SUFFIX)[:63]
    return table_identifier(".".join(parts))


def _is_mark(state: Any) -> bool:
    """A mark this builder wrote (a hand-edited ``"high_water": "x"`` must not stop a build)."""
    return isinstance(state, dict) and all(type(value) is int and value >= 0
                                           for value in (state.get("high_water", 0), state.get("rows", 0)))


def _state_file(storehouse: str) -> StateFile:
    return StateFile(StorehouseLayout.at(storehouse), STATE_NAME, _is_mark, "this build is a full one")


def read_state(storehouse: str) -> dict[str, Any]:
    """The last build's mark, or {} (a full build) when it is missing, unreadable or not
    the shape this builder writes."""
    return _state_file(storehouse).read() or {}


def write_state(storehouse: str, plan: Plan, table: str, source: str) -> None:
    """The new mark, after the slots it covers are synced."""
    _state_file(storehouse).write({"table": table, "source": source, "high_water": plan.high, "rows": plan.rows,
                                   "transactions": plan.transactions})


#: The database's transactions as they stand, read in one statement before the build's
#: snapshot is taken: the oldest transaction still running (or, with none running, the
#: first not yet started) and the first not yet started, as 64-bit ids. A row this
#: build cannot see was written by a transaction then running (or by one of its
#: sub-transactions, whose ids come after their parent's and which no catalog lists
#: once released) or by one started since: its ``xmin`` is at or after the first of these.
TRANSACTIONS = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, pg_snapshot_xmax(pg_current_snapshot())::text"

#: Rows written by a transaction at or after ``{since}`` (a 32-bit id). ``age()`` compares
#: the rows' 32-bit ``xmin`` in modular arithmetic from one reference per transaction;
#: rows older than 2^31 transactions (a negative age) are old ones. A row picked wrongly
#: is only read again.
SINCE = "age(e.xmin) BETWEEN 0 AND age({since}::xid)"
#: Beyond this many transactions between two builds, ``age()`` can no longer order them.
XID_HORIZON = 2**31 - 2**24
FIRST_NORMAL_XID = 3
#: The most ids of rows seen at or after the mark a state keeps; beyond it (a transaction
#: held open for days), the next build reads all those rows again.
SEEN_LIMIT = 100_000


def transaction_mark(connection: psycopg.Connection) -> dict[str, int]:
    """The transactions as they stand (see ``TRANSACTIONS``); run before the build's snapshot."""
    oldest, unstarted = connection.execute(TRANSACTIONS).fetchone()
    return {"from_xid": int(oldest), "next_xid": int(unstarted)}


def _xid32(xid: int) -> str:
    """A 64-bit transaction id as the 32-bit one ``xmin`` holds (wrapped ids skip 0-2)."""
    return str(max(xid % 2**32, FIRST_NORMAL_XID))


def _since_last_build(previous: Any, now: dict[str, int]) -> tuple[dict[str, Any] | None, str]:
    """What tells the rows the last build did not see (its first transaction id, the ids
    of the rows it saw from that one on, None when it kept too many to list), or None and
    why a full build is needed instead."""
    try:
        from_xid = int(previous["from_xid"])
        seen = None if previous["seen"] is None else {int(row) for row in previous["seen"]}
    except (TypeError, KeyError, ValueError):
        return None, "the build state has no transaction mark (written by an older builder)"
    if from_xid > now["next_xid"]:
        return None, "the database's transaction counter is behind the last build's (a restored or another database)"
    if now["next_xid"] - from_xid >= XID_HORIZON:
        return None, "over two billion transactions since the last build"
    return {"from_xid": _xid32(from_xid), "seen": seen}, ""


def plan(connection: psycopg.Connection, table_sql: sql.Composable, storehouse: str, table: str, source: str,
         full: bool, now: dict[str, int]) -> Plan:
    """Full or incremental, and why (see the module docstring); ``now`` is this build's
    ``transaction_mark``. One pass over the source's rows gives the largest id, the
    count, the rows the last build did not see, and those this build's mark must list."""
    state = read_state(storehouse)
    rows_sql = _own_rows_table(connection, table)
    since, reason = (None, "--full" if full else "no build state" if not state else
                     "another table or source" if (state.get("table"), state.get("source")) != (table, source) else
                     "the builder cannot keep its rows table" if rows_sql is None else "")
    if not reason:
        since, reason = _since_last_build(state.get("transactions"), now)
    unseen = sql.SQL(SINCE).format(since=sql.Placeholder("previous")) if since else sql.SQL("false")
    high, rows, candidates, seen = connection.execute(sql.SQL(
        "SELECT COALESCE(max(id), 0), count(*), COALESCE(array_agg(id) FILTER (WHERE {unseen}), '{{}}'), "
        "COALESCE(array_agg(id) FILTER (WHERE {seen}), '{{}}') FROM {table} e WHERE source = %(source)s").format(
            unseen=unseen, seen=sql.SQL(SINCE).format(since=sql.Placeholder("now")), table=table_sql),
        {"source": source, "now": _xid32(now["from_xid"]), **({"previous": since["from_xid"]} if since else {})},
    ).fetchone()
    transactions = {"from_xid": now["from_xid"], "seen": sorted(seen) if len(seen) <= SEEN_LIMIT else None}
    if not reason:
        mark = int(state.get("high_water", 0))
        kept = connection.execute(sql.SQL("SELECT count(*) FROM {} WHERE source = %s AND id <= %s")
                                  .format(rows_sql), (source, mark)).fetchone()[0]
        reason = ("the table was truncated or restored" if high < mark or rows < state.get("rows", 0) else
                  "the builder's rows table lacks rows of this source already built" if kept < state.get("rows", 0)
                  else "")
    if reason:
        return Plan("full", 0, high, rows, reason, rows_sql, transactions)
    new_ids = sorted(set(candidates) - (since["seen"] or set()))
    return Plan("incremental", int(state["high_water"]), high, rows, "", rows_sql, transactions, new_ids)


def _own_rows_table(connection: psycopg.Connection, table: str) -> sql.Composable | None:
    """The builder's rows table, created when missing (and given its ``source`` column
    when an older builder made it without one: its rows then belong to no source, so
    the next build of each source is a full one); None when it may not (read-only)."""
    rows = rows_table(table)
    name = rows.as_string(connection)
    base = (table.split(".")[-1] + ROWS_SUFFIX)[:50]  # index names live in the table's schema
    try:
        with connection.transaction():
            connection.execute(sql.SQL(ROWS_DDL).format(
                rows=rows, object_index=sql.Identifier(f"{base}_object"),
                designation_index=sql.Identifier(f"{base}_designation")))
            if not connection.execute("SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                                      "AND attname = 'source' AND NOT attisdropped)", (name,)).fetchone()[0]:
                connection.execute(sql.SQL("ALTER TABLE {} ADD COLUMN source text").format(rows))
            connection.execute(sql.SQL("SELECT 1 FROM {} LIMIT 0 FOR UPDATE").format(rows))
    except psycopg.Error as exc:
        log.warning("cannot create or write the builder's rows table %s (%s): every build is a full build",
                    name, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return None
    return rows


def record_rows(connection: psycopg.Connection, rows_sql: sql.Composable, source: str, mpc_label: str,
                replace: bool) -> None:
    """Keep the parsed rows (tk_rows) in the builder's rows table, as this source's; a row
    read again replaces its old record. ``replace`` (a full build) first drops this
    source's rows (and those of no source): the whole table at once when it holds no
    other source's, and then its secondary indexes are made again after the insert
    (cheaper than keeping them up to date row by row)."""
    rebuilt: list[str] = []
    if replace:
        others = connection.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE source IS DISTINCT FROM %s)")
                                    .format(rows_sql), (source,)).fetchone()[0]
        if others:
            connection.execute(sql.SQL("DELETE FROM {} WHERE source = %s OR source IS NULL").format(rows_sql),
                               (source,))
        else:
            connection.execute(sql.SQL("TRUNCATE {}").format(rows_sql))
            rebuilt = _drop_secondary_indexes(connection, rows_sql)
    _insert_rows(connection, rows_sql, source, mpc_label)
    for definition in rebuilt:
        connection.execute(definition)


def _drop_secondary_indexes(connection: psycopg.Connection, rows_sql: sql.Composable) -> list[str]:
    """Drop the rows table's indexes but its primary key (which the insert needs); their
    definitions, as PostgreSQL gives them (names and schema included), to make them again."""
    found = connection.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass AND NOT indisprimary", (rows_sql.as_string(connection),)).fetchall()
    for name, _ in found:
        connection.execute(f"DROP INDEX {name}")  # a name PostgreSQL quoted, not an input
    return [definition for _, definition in found]


def _insert_rows(connection: psycopg.Connection, rows_sql: sql.Composable, source: str, mpc_label: str) -> None:
    connection.execute(sql.SQL(
        "INSERT INTO {rows} (id, source, object_id, candid, label, designation, reason) "
        "SELECT id, %(source)s, object_id, candid, label, CASE WHEN label = %(mpc)s THEN ssnamenr END, " + REASON +
        " FROM tk_rows ON CONFLICT (id) DO UPDATE SET (source, object_id, candid, label, designation, reason) = "
        "(EXCLUDED.source, EXCLUDED.object_id, EXCLUDED.candid, EXCLUDED.label, EXCLUDED.designation, "
        "EXCLUDED.reason)").format(rows=rows_sql), {"mpc": mpc_label, "source": source})


def touched_scope(connection: psycopg.Connection, rows_sql: sql.Composable, source: str,
                  mpc_label: str) -> tuple[set, set]:
    """From the new rows (tk_rows): the objects and designations they touch, and the
    ids of every row of this source of those groups in ``tk_scope``."""
    objects, designations = connection.execute(
        "SELECT COALESCE(array_agg(DISTINCT object_id) FILTER (WHERE object_id IS NOT NULL), '{}'), "
        "COALESCE(array_agg(DISTINCT COALESCE(NULLIF(ssnamenr, 'null'), '')) FILTER (WHERE label = %s), '{}') "
        "FROM tk_rows", (mpc_label,)).fetchone()
    connection.execute("DROP TABLE tk_rows")
    connection.execute(sql.SQL(
        "CREATE TEMP TABLE tk_scope ON COMMIT DROP AS "
        "SELECT id FROM {rows} WHERE object_id = ANY(%(objects)s) AND source = %(source)s "
        "UNION SELECT id FROM {rows} WHERE label = %(mpc)s AND COALESCE(NULLIF(designation, 'null'), '') = "
        "ANY(%(designations)s) AND source = %(source)s").format(rows=rows_sql),
        {"objects": list(objects), "designations": list(designations), "mpc": mpc_label, "source": source})
    connection.execute("ANALYZE tk_scope")
    return set(objects), set(designations)


def roster_counts(connection: psycopg.Connection, rows_sql: sql.Composable, source: str, in_scope: list[str],
                  mpc_label: str) -> dict[str, dict[str, int]]:
    """The roster's whole-table counts for this source (see ``ROSTER_COUNTS``), by kind of count."""
    counts: dict[str, dict[str, int]] = {"skipped": {}, "excluded": {}, "tally": {}, "cross": {}, "designation": {}}
    for what, name, count in connection.execute(sql.SQL(ROSTER_COUNTS).format(rows=rows_sql),
                                                {"in_scope": in_scope, "mpc": mpc_label, "source": source}):
        counts[what][name] = int(count)
    return counts


#: What the new rows (id > mark) change in the roster's whole-table counts, from the
#: touched groups' rows (tk_rows, tk_valid of this build): labels of the touched objects
#: before and after, new valid rows out of scope, new valid MPC rows per designation.
ROSTER_DELTA = """
WITH before_valid AS (
    SELECT DISTINCT ON (candid) object_id, label FROM tk_rows
    WHERE id <= %(mark)s AND """ + "(" + REASON + ") IS NULL" + """ AND object_id = ANY(%(objects)s)
    ORDER BY candid, id
), after_valid AS (
    SELECT object_id, label FROM tk_valid WHERE object_id = ANY(%(objects)s)
), labels AS (
    SELECT 'before' AS side, object_id, array_agg(DISTINCT label) FILTER (WHERE label = ANY(%(in_scope)s)) AS ls
    FROM before_valid GROUP BY object_id
    UNION ALL
    SELECT 'after', object_id, array_agg(DISTINCT label) FILTER (WHERE label = ANY(%(in_scope)s))
    FROM after_valid GROUP BY object_id
)
SELECT 'tally', label, sum(CASE side WHEN 'after' THEN 1 ELSE -1 END) FROM labels, unnest(ls) AS label GROUP BY label
UNION ALL
SELECT 'cross', '', sum(CASE side WHEN 'after' THEN 1 ELSE -1 END) FROM labels WHERE cardinality(ls) > 1
UNION ALL
SELECT 'excluded', label, count(*) FROM tk_valid WHERE id > %(mark)s AND NOT (label = ANY(%(in_scope)s)) GROUP BY label
UNION ALL
SELECT 'designation', COALESCE(NULLIF(ssnamenr, 'null'), ''), count(*) FROM tk_valid
WHERE id > %(mark)s AND label = %(mpc)s GROUP BY 2
UNION ALL
SELECT 'new_valid', '', count(*) FROM tk_valid WHERE id > %(mark)s
"""


def new_row_reasons(connection: psycopg.Connection) -> dict[str | None, int]:
    """The new rows (tk_rows of the first parse) per skip reason (None: usable)."""
    return dict(connection.execute(sql.SQL("SELECT " + REASON + ", count(*) FROM tk_rows GROUP BY 1")).fetchall())


def roster_delta(connection: psycopg.Connection, mark: int, objects: set[str], reasons: dict[str | None, int],
                 in_scope: list[str], mpc_label: str) -> dict[str, dict[str, int]]:
    """The change the new rows make to ``ROSTER_COUNTS``' figures (same keys)."""
    delta: dict[str, dict[str, int]] = {"skipped": {}, "excluded": {}, "tally": {}, "cross": {}, "designation": {},
                                        "new_valid": {}}
    for what, name, count in connection.execute(ROSTER_DELTA, {"mark": mark, "objects": list(objects),
                                                               "in_scope": in_scope, "mpc": mpc_label}):
        delta[what][name] = int(count or 0)
    delta["skipped"] = {reason: count for reason, count in reasons.items() if reason is not None}
    delta["skipped"]["duplicate_candid"] = reasons.get(None, 0) - delta["new_valid"].get("", 0)
    return delta

