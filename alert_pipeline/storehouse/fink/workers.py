"""Slots built and written in worker processes, while the main process streams rows.

At 100k objects the build's client side is Python work per slot (statistics, light
curve, JSON, one file). The database streams the aggregated rows; the main process only
fetches them and hands batches to forked workers, which build, write and count the slots
and return their index entries and roster counts. The workers are forked before the
database connection is opened, so they never share its socket.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.fink.roster import Roster
from alert_pipeline.storehouse.slots import KindStore, WriteReport

#: Batches handed out and not yet collected (bounds the memory in flight).
IN_FLIGHT = 4


def store_for(storehouse: str, kind: str) -> KindStore:
    return kinds.spec(kind).store(storehouse)


@contextmanager
def worker_pool(processes: int) -> Iterator[ProcessPoolExecutor | None]:
    """Forked workers, started now (before any connection is opened); None for one process."""
    if processes <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(processes, mp_context=get_context("fork"), initializer=_die_with_parent)
    try:
        for done in [pool.submit(os.getpid) for _ in range(processes)]:
            done.result()
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def _die_with_parent() -> None:
    """A worker ends when the build does, even when it is killed (Linux's parent-death
    signal): an orphaned worker would hold the build's output pipes open."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the worker ends when it next reads from the closed queue


def write_batch(storehouse: str, kind: str, rows: Sequence[tuple], existing: Sequence[bool],
                provenance: dict[str, Any]) -> tuple[WriteReport, Any]:
    """Build and write the slots of some rows; their report and roster counts."""
    spec = kinds.spec(kind)
    store, roster, report = spec.store(storehouse), spec.rows.roster_type(), WriteReport()
    for row, exists in zip(rows, existing, strict=True):
        slot = spec.rows.make_slot(row, provenance, roster)
        if slot is not None:
            store.write_one(slot["slot_id"], slot, spec.index_fields, exists, report)
    return report, roster


def write_all(pool: ProcessPoolExecutor | None, storehouse: str, kind: str, batches: Iterable[list[tuple]],
              on_disk: set[str] | None, provenance: dict[str, Any], roster: Roster) -> WriteReport:
    """Every batch built and written (by ``pool`` when given), counted into ``roster``."""
    report = WriteReport()
    pending: deque[Future] = deque()

    def collect(part: tuple[WriteReport, Any]) -> None:
        report.merge(part[0])
        roster.add(part[1])

    for rows in batches:
        existing = [True] * len(rows) if on_disk is None else [row[0] in on_disk for row in rows]
        if pool is None:
            collect(write_batch(storehouse, kind, rows, existing, provenance))
            continue
        pending.append(pool.submit(write_batch, storehouse, kind, rows, existing, provenance))
        while len(pending) > IN_FLIGHT or (pending and pending[0].done()):
            collect(pending.popleft().result())
    while pending:
        collect(pending.popleft().result())
    return report
