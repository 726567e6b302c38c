"""The one loop: recover → (batch → write durably → acknowledge → finish) → summary.

``run(consumer, source)`` drives any source (Kafka, files) through the same steps. It
owns what is common to every run: crash recovery before the first batch, the
``max_messages`` and ``max_runtime`` limits, SIGTERM/SIGINT (the batch in hand is
finished and acknowledged first), and the totals. The source owns reading and
acknowledging; the consumer owns decoding and writing.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .consumer import AlertConsumer
from .durable import checkpoint
from .sources import Source
from .summary import RunSummary

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
    summary.recovered = consumer.store.recover(now().date())
    if summary.recovered:
        log.warning("recovered from an interrupted run: %s", summary.recovered)

    def budget() -> int:
        if config.max_messages is None:
            return config.batch_size
        return max(min(config.batch_size, config.max_messages - summary.consumed), 1)

    with _stop_on_signals() as stop:
        try:
            batches = source.batches(budget)
            for batch in batches:
                if batch:
                    result = consumer.write_batch(batch, now())  # durable, or raises: no ack
                    checkpoint("before-commit")
                    source.ack(batch)
                    checkpoint("after-commit")
                    consumer.store.finish_batch()
                    summary.add(result)
                    _progress(summary)
                summary.stop_reason = stop.signal_name or _limit_reached(config, summary, started) or ""
                if summary.stop_reason:
                    batches.close()
                    break
            else:
                summary.stop_reason = source.stop_reason
            summary.partitions = source.positions()
        finally:
            summary.elapsed = time.monotonic() - started
            source.close()
    return summary


def _limit_reached(config: Any, summary: RunSummary, started: float) -> str | None:
    if config.max_messages is not None and summary.consumed >= config.max_messages:
        return "max-messages"
    if config.max_runtime is not None and time.monotonic() - started >= config.max_runtime:
        return "max-runtime"
    return None


def _progress(summary: RunSummary) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r  consumed {summary.consumed}  written {summary.written}  "
                         f"quarantined {summary.quarantined} ")
        sys.stderr.flush()
