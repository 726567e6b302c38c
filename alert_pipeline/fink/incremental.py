"""What an incremental build needs: the rows already built, and where each row belongs.

The events table's ``id`` only grows, so the build keeps a high-water mark per source and
table (``<storehouse>/state/build.json``, written only after the slots it covers are on
disk). A build reads the rows above the mark, and rebuilds only the groups they touch —
their ZTF objects and designations — from all of *their* rows.

To find "all rows of these objects" without parsing the table's JSON again, the builder
keeps a table of its own beside the events table, ``<table>_tk_rows``: one narrow row per
event row it has parsed (id, object id, candid, label, designation, and why the row is
skipped, if it is), with indexes on the object id and the designation. The roster's
whole-table counts (skipped rows, excluded labels, naive tallies) are computed from it
too: after a full build by ``ROSTER_COUNTS`` over the whole table, after an incremental one
by adding to the last roster what the new rows changed (``roster_delta``: counted over the
touched groups' rows only, before and after the new rows).

A full build runs instead when asked (``--full``), when there is no state or it names
another source or table, when the table looks truncated or restored (its largest id is
below the mark, or it holds fewer rows than were built), or when the builder may not
create or write its table (a read-only role: a warning, and the build is full each time).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ..durable import write_atomically
from .db import table_identifier

log = logging.getLogger("transient_kind_builder")
STATE_FILE = os.path.join("state", "build.json")
ROWS_SUFFIX = "_tk_rows"

#: The skip reason of a parsed row (tk_rows), NULL for a usable one.
REASON = """CASE WHEN bad_json THEN 'invalid_json'
     WHEN object_id IS NULL OR candid IS NULL OR label IS NULL THEN 'missing_keys'
     WHEN NOT good_id THEN 'bad_object_id' WHEN bad_time THEN 'bad_time' WHEN too_deep THEN 'too_deep' END"""

ROWS_DDL = """
CREATE TABLE IF NOT EXISTS {rows} (id bigint PRIMARY KEY, object_id text, candid text, label text,
                                   designation text, reason text);
CREATE INDEX IF NOT EXISTS {object_index} ON {rows} (object_id);
CREATE INDEX IF NOT EXISTS {designation_index} ON {rows} (designation)
"""

#: Whole-table counts for the roster, from the builder's rows table: rows skipped per
#: reason, the first row of each candid (the valid rows), labels out of scope, and per
#: in-scope label the objects carrying it.
ROSTER_COUNTS = """
WITH valid AS (
    SELECT DISTINCT ON (candid) * FROM {rows} WHERE reason IS NULL ORDER BY candid, id
)
SELECT 'skipped' AS what, reason AS name, count(*) FROM {rows} WHERE reason IS NOT NULL GROUP BY reason
UNION ALL
SELECT 'skipped', 'duplicate_candid', (SELECT count(*) FROM {rows} WHERE reason IS NULL) - (SELECT count(*) FROM valid)
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
    """What this build does: ``full``, or ``incremental`` from ``after`` (the mark) to
    ``high`` (the table's largest id now); ``rows`` is the source's row count now."""

    mode: str
    after: int
    high: int
    rows: int
    reason: str
    rows_table: sql.Composable | None


def rows_table(table: str) -> sql.Identifier:
    parts = table.split(".")
    parts[-1] = (parts[-1] + ROWS_SUFFIX)[:63]
    return table_identifier(".".join(parts))


def read_state(storehouse: str) -> dict[str, Any]:
    try:
        with open(os.path.join(storehouse, STATE_FILE), "rb") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(storehouse: str, plan: Plan, table: str, source: str) -> None:
    """The new mark, after the slots it covers are synced."""
    path = os.path.join(storehouse, STATE_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, json.dumps({"table": table, "source": source, "high_water": plan.high,
                                       "rows": plan.rows}, sort_keys=True).encode())


def plan(connection: psycopg.Connection, table_sql: sql.Composable, storehouse: str, table: str, source: str,
         full: bool) -> Plan:
    """Full or incremental, and why (see the module docstring)."""
    high, rows = connection.execute(sql.SQL("SELECT COALESCE(max(id), 0), count(*) FROM {} WHERE source = %s")
                                    .format(table_sql), (source,)).fetchone()
    state = read_state(storehouse)
    rows_sql = _own_rows_table(connection, table)
    kept = (connection.execute(sql.SQL("SELECT count(*) FROM {} WHERE id <= %s").format(rows_sql),
                               (int(state.get("high_water", 0)),)).fetchone()[0] if rows_sql is not None else 0)
    reason = ("--full" if full else "no build state" if not state else
              "another table or source" if (state.get("table"), state.get("source")) != (table, source) else
              "the builder cannot keep its rows table" if rows_sql is None else
              "the table was truncated or restored" if high < state.get("high_water", 0) or
              rows < state.get("rows", 0) else
              "the builder's rows table lacks rows already built" if kept < state.get("rows", 0) else "")
    if reason:
        return Plan("full", 0, high, rows, reason, rows_sql)
    return Plan("incremental", int(state["high_water"]), high, rows, "", rows_sql)


def _own_rows_table(connection: psycopg.Connection, table: str) -> sql.Composable | None:
    """The builder's rows table, created when missing; None when it may not (read-only)."""
    rows = rows_table(table)
    name = rows.as_string(connection)
    base = (table.split(".")[-1] + ROWS_SUFFIX)[:50]  # index names live in the table's schema
    try:
        with connection.transaction():
            connection.execute(sql.SQL(ROWS_DDL).format(
                rows=rows, object_index=sql.Identifier(f"{base}_object"),
                designation_index=sql.Identifier(f"{base}_designation")))
            connection.execute(sql.SQL("SELECT 1 FROM {} LIMIT 0 FOR UPDATE").format(rows))
    except psycopg.Error as exc:
        log.warning("cannot create or write the builder's rows table %s (%s): every build is a full build",
                    name, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return None
    return rows


def record_rows(connection: psycopg.Connection, rows_sql: sql.Composable, mpc_label: str, replace: bool) -> None:
    """Keep the parsed rows (tk_rows) in the builder's rows table; ``replace`` empties it
    first (a full build)."""
    if replace:
        connection.execute(sql.SQL("TRUNCATE {}").format(rows_sql))
    connection.execute(sql.SQL(
        "INSERT INTO {rows} (id, object_id, candid, label, designation, reason) "
        "SELECT id, object_id, candid, label, CASE WHEN label = %(mpc)s THEN ssnamenr END, " + REASON +
        " FROM tk_rows ON CONFLICT (id) DO NOTHING").format(rows=rows_sql), {"mpc": mpc_label})


def touched_scope(connection: psycopg.Connection, rows_sql: sql.Composable, mpc_label: str) -> tuple[set, set]:
    """From the new rows (tk_rows): the objects and designations they touch, and the
    ids of every row of those groups in ``tk_scope``."""
    objects, designations = connection.execute(
        "SELECT COALESCE(array_agg(DISTINCT object_id) FILTER (WHERE object_id IS NOT NULL), '{}'), "
        "COALESCE(array_agg(DISTINCT COALESCE(NULLIF(ssnamenr, 'null'), '')) FILTER (WHERE label = %s), '{}') "
        "FROM tk_rows", (mpc_label,)).fetchone()
    connection.execute("DROP TABLE tk_rows")
    connection.execute(sql.SQL(
        "CREATE TEMP TABLE tk_scope ON COMMIT DROP AS "
        "SELECT id FROM {rows} WHERE object_id = ANY(%(objects)s) "
        "UNION SELECT id FROM {rows} WHERE label = %(mpc)s AND COALESCE(NULLIF(designation, 'null'), '') = "
        "ANY(%(designations)s)").format(rows=rows_sql),
        {"objects": list(objects), "designations": list(designations), "mpc": mpc_label})
    connection.execute("ANALYZE tk_scope")
    return set(objects), set(designations)


def roster_counts(connection: psycopg.Connection, rows_sql: sql.Composable, in_scope: list[str],
                  mpc_label: str) -> dict[str, dict[str, int]]:
    """The roster's whole-table counts (see ``ROSTER_COUNTS``), by kind of count."""
    counts: dict[str, dict[str, int]] = {"skipped": {}, "excluded": {}, "tally": {}, "cross": {}, "designation": {}}
    for what, name, count in connection.execute(sql.SQL(ROSTER_COUNTS).format(rows=rows_sql),
                                                {"in_scope": in_scope, "mpc": mpc_label}):
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

