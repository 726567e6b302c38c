"""One build at a time: per storehouse (a file lock) and per events table (a PostgreSQL
advisory lock), so that two builds started together never interleave their writes.

Two builds of one storehouse would remove each other's slots and state; two builds of one
events table (into two storehouses) would write the builder's rows table at once, which
ended in "deadlock detected". The second build logs that it waits, then waits: the first
one's mark is then its starting point. Both locks go with their holder: the file lock
with its process, the advisory lock with its session, so a killed build never leaves one
behind. The storehouse is locked first, then the table, always in that order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from alert_pipeline.storehouse.fink.db import connect, table_identifier
from alert_pipeline.storehouse.slots import one_writer

log = logging.getLogger("transient_kind_builder")
#: The advisory lock's key: this text and the events table's oid, hashed to 64 bits.
LOCK_NAMESPACE = "transient_kind_builder events table"


@contextmanager
def one_build_at_a_time(dsn: str, storehouse: str, table: str) -> Iterator[None]:
    """Hold the storehouse's and the table's build locks, waiting for another build."""
    with one_writer(storehouse, "build", create=True), _table_lock(dsn, table):
        yield


@contextmanager
def _table_lock(dsn: str, table: str) -> Iterator[None]:
    """A session-level advisory lock on its own connection, held until the build's state
    is written (after the build's own connection has committed)."""
    with connect(dsn) as connection:
        connection.autocommit = True
        key = _key(connection, table)
        if not connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            log.warning("build: another build of the events table %s is running; waiting for it to finish", table)
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield


def _key(connection: psycopg.Connection, table: str) -> int:
    """The lock's key: the table's oid (so ``events`` and ``public.events`` are one table),
    or its name as given when it does not exist (the build then stops, saying so)."""
    return connection.execute(
        "SELECT hashtextextended(%s || ' ' || COALESCE(to_regclass(%s)::oid::text, %s), 0)",
        (LOCK_NAMESPACE, table_identifier(table).as_string(connection), table)).fetchone()[0]
