"""The one loop: recover → (batch → prepare → write durably → acknowledge → finish) → summary.

``run(consumer, source)`` drives any source (Kafka, files) through the same steps. It
owns what is common to every run: crash recovery before the first batch, the
``max_messages`` and ``max_runtime`` limits, SIGTERM/SIGINT (the batches in hand are
finished and acknowledged first), and the totals. The source owns reading and
acknowledging; the consumer owns decoding and writing.

CPU and disk overlap: batch N's last cutout writes are awaited and the batch made
durable (cutouts renamed, one syncfs, CSV and ledger appended and fsynced) on a writer
thread while batch N+1 is decoded and its cutouts staged. The main thread alone
acknowledges, and only a batch whose write has completed, in order, so the durability
rule is unchanged: nothing is committed before it is on disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alert_pipeline.consumer.processing import AlertConsumer
from alert_pipeline.consumer.sources import Source
from alert_pipeline.consumer.summary import RunSummary
from alert_pipeline.durable import checkpoint
from alert_pipeline.exitcodes import EXIT_FAILURE

log = logging.getLogger("lsst_alert_consumer")


class _StopFlag:
    """Set by SIGTERM/SIGINT; the runner checks it between batches."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name


@contextmanager
def _stop_on_signals() -> Iterator[_StopFlag]:
    flag = _StopFlag()
    previous = {sig: signal.signal(sig, flag) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(consumer: AlertConsumer, source: Source, now: Callable[[], dt.datetime] | None = None,
        summary: RunSummary | None = None) -> RunSummary:
    """Process everything ``source`` gives until it ends or a limit or signal stops the run.

    ``summary`` (filled in place) still holds what was done when the run raises."""
    now = now or (lambda: dt.datetime.now(dt.UTC))
    config = consumer.config
    started = time.monotonic()
    summary = summary if summary is not None else RunSummary()
    summary.mode = source.mode
    summary.recovered = consumer.recover(now().date())
    if summary.recovered:
        log.warning("recovered from an interrupted run: %s", summary.recovered)

    in_flight: _InFlight | None = None

    def settle() -> None:
        """Wait for the batch being written, then acknowledge and count it."""
        nonlocal in_flight
        if in_flight is None:
            return
        batch, future, in_flight = in_flight.batch, in_flight.future, None
        result = future.result()  # durable, or raises: no ack
        checkpoint("before-commit")
        source.ack(batch)
        checkpoint("after-commit")
        consumer.finish_batch()
        summary.add(result)
        _progress(summary)

    def taken() -> int:
        return summary.consumed + (len(in_flight.batch) if in_flight else 0)

    def budget() -> int:
        if config.max_messages is None:
            return config.batch_size
        return max(min(config.batch_size, config.max_messages - taken()), 1)

    with _stop_on_signals() as stop, ThreadPoolExecutor(1, thread_name_prefix="batch-writer") as writer, \
            _runtime_watchdog(config.max_runtime):
        try:
            batches = source.batches(budget)
            for batch in batches:
                if batch:
                    processed_at = now()
                    try:
                        started_batch = consumer.start_batch(batch, processed_at)
                    except BaseException:
                        _settle_then_discard(settle, consumer)
                        raise
                    settle()
                    in_flight = _InFlight(batch, writer.submit(started_batch.write))
                elif in_flight is not None:
                    settle()  # nothing new arrived: commit what is written without waiting
                summary.stop_reason = stop.signal_name or _limit_reached(config, taken(), started) or ""
                if summary.stop_reason:
                    batches.close()
                    break
            else:
                summary.stop_reason = source.stop_reason
            settle()
            summary.partitions = source.positions()
        finally:
            if in_flight is not None:  # an exception: let the write finish, never acknowledge it
                with contextlib.suppress(BaseException):
                    in_flight.future.result()
            summary.elapsed = time.monotonic() - started
            source.close()
    return summary


@dataclass
class _InFlight:
    batch: list[Any]
    future: Future


def _settle_then_discard(settle: Callable[[], None], consumer: AlertConsumer) -> None:
    """A batch failed while being prepared: finish the one being written first (its
    staged cutouts must not be discarded under it), then drop what was staged."""
    try:
        settle()
    finally:
        consumer.discard_staged()


#: How far past ``max_runtime`` a run may go inside one batch before the watchdog ends it.
MAX_RUNTIME_GRACE = 60.0


@contextmanager
def _runtime_watchdog(max_runtime: float | None) -> Iterator[None]:
    """``max_runtime`` is checked between batches; this holds it inside one too. A run
    still going ``min(MAX_RUNTIME_GRACE, max_runtime)`` seconds past it (a message that
    decodes for ever, a ``process_alert`` that hangs) is ended at once, as a crash is:
    nothing of the batch in hand was committed, the next run recovers and reads it again."""
    if max_runtime is None:
        yield
        return
    grace = min(MAX_RUNTIME_GRACE, max_runtime)

    def overrun() -> None:
        log.error("LSST Alert Consumer stopped: still inside one batch %g s past --max-runtime %g s; exiting "
                  "now with exit code %d (the batch in hand was not committed and is read again next run)",
                  grace, max_runtime, EXIT_FAILURE)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_FAILURE)

    timer = threading.Timer(max_runtime + grace, overrun)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _limit_reached(config: Any, taken: int, started: float) -> str | None:
    if config.max_messages is not None and taken >= config.max_messages:
        return "max-messages"
    if config.max_runtime is not None and time.monotonic() - started >= config.max_runtime:
        return "max-runtime"
    return None


def _progress(summary: RunSummary) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r  consumed {summary.consumed}  written {summary.written}  "
                         f"quarantined {summary.quarantined} ")
        sys.stderr.flush()
