"""One message → rows, staged cutouts and quarantine items; batches → durable outputs.

``AlertConsumer`` holds what the README's ``LSSTAlertConsumer`` is built on: the decoder,
the output store and the per-message work. ``process_alert`` is the extension point; it
runs in worker processes when ``workers > 1`` (they are forked, so a subclass defined in
your script works unchanged).
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from .config import ConsumerConfig
from .decode import AlertDecoder, DecodeError
from .outputs import (
    BatchResult,
    MessageOutput,
    OutputStore,
    QuarantineItem,
    crash_point,
    cutout_name,
    fits_problem,
)
from .records import CUTOUT_FIELDS, alert_key, base_row

FRAMES_MAGIC = b"LSSTFRM1"


class AlertConsumer:
    """Decode → record → write for one output directory (Kafka or offline input)."""

    def __init__(self, config: ConsumerConfig) -> None:
        self.config = config
        self.decoder = AlertDecoder(config.framing, config.schema_version, config.registry_url)
        self.store = OutputStore(config.output_dir, config.instance_id, config.ledger_window_days)
        #: Paths of the current alert's cutouts ({kind: relative path or None}), set
        #: before ``process_alert`` is called.
        self.cutout_paths: dict[str, str | None] = {}
        #: Processing time of the current batch, ISO 8601 UTC.
        self.timestamp = ""
        self._pool: ProcessPoolExecutor | None = None

    # ------------------------------------------------------------------ extension point
    def process_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """Build the CSV row of one alert. Override to add columns: keys you add are
        appended after the standard 16, in the order you add them."""
        return base_row(alert, self.cutout_paths, self.timestamp)

    # ------------------------------------------------------------------ per message
    def prepare_message(self, value: bytes | None, source: Mapping[str, Any], processed_at: dt.datetime) -> MessageOutput:
        """Everything one message turns into; never raises for bad input."""
        output = MessageOutput(source=dict(source))
        self.timestamp = processed_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        try:
            alerts = self.decoder.decode(value)
        except DecodeError as exc:
            output.quarantine.append(QuarantineItem(exc.reason, str(exc), value or b""))
            return output
        for index, alert in enumerate(alerts):
            staged: list[tuple[str, str]] = []
            try:
                self.cutout_paths, staged, problems = self._stage_cutouts(alert, processed_at)
                row = self.process_alert(alert)
                key = alert_key(alert)
            except OSError:
                raise  # the output cannot be written: stop the run, never quarantine
            except Exception as exc:  # noqa: BLE001 - a bad packet or a failing process_alert
                reason = exc.reason if isinstance(exc, DecodeError) else "process-alert-failed"
                suffix = f"alert{index}" if len(alerts) > 1 else ""
                output.quarantine.append(QuarantineItem(reason, f"{type(exc).__name__}: {exc}", value or b"", suffix))
                for _, path in staged:
                    os.unlink(path)
                continue
            output.rows.append(row)
            output.keys.append(key)
            output.cutouts.append(staged)
            output.quarantine.extend(problems)
        return output

    def _stage_cutouts(
        self, alert: Mapping[str, Any], processed_at: dt.datetime
    ) -> tuple[dict[str, str | None], list[tuple[str, str]], list[QuarantineItem]]:
        """Check each cutout is FITS and stage it; a bad one leaves an empty path and is
        quarantined on its own."""
        paths: dict[str, str | None] = {}
        staged: list[tuple[str, str]] = []
        problems: list[QuarantineItem] = []
        if "antares_locus" in alert:
            return paths, staged, problems
        source_id = (alert.get("diaSource") or {}).get("diaSourceId")
        for kind, field_name in CUTOUT_FIELDS.items():
            data = alert.get(field_name)
            paths[kind] = None
            if not data or source_id is None:
                continue
            problem = fits_problem(data)
            if problem:
                problems.append(QuarantineItem("invalid-cutout", f"{kind} cutout: {problem}", data, f"{source_id}_{kind}"))
                continue
            name = cutout_name(source_id, kind, processed_at)
            staged.append((name, self.store.stage_cutout(name, data)))
            paths[kind] = f"cutouts/{name}"
            crash_point("mid-batch")
        return paths, staged, problems

    # ------------------------------------------------------------------ per batch
    def prepare_batch(
        self, messages: Sequence[tuple[bytes | None, Mapping[str, Any]]], processed_at: dt.datetime
    ) -> list[MessageOutput]:
        """``prepare_message`` over a batch, split across worker processes if configured."""
        if self.config.workers <= 1 or len(messages) < 2:
            return [self.prepare_message(value, source, processed_at) for value, source in messages]
        pool = self._worker_pool()
        chunk = -(-len(messages) // self.config.workers)
        parts = [messages[start : start + chunk] for start in range(0, len(messages), chunk)]
        results = pool.map(_prepare_chunk, parts, [processed_at] * len(parts))
        return [output for part in results for output in part]

    def write_batch(
        self, messages: Sequence[tuple[bytes | None, Mapping[str, Any]]], processed_at: dt.datetime
    ) -> BatchResult:
        """Prepare and durably write one batch (the caller commits, then ``finish_batch``)."""
        try:
            outputs = self.prepare_batch(messages, processed_at)
            self.store.wait_staged()
        except BaseException:
            self.store.discard_staged()
            raise
        _, result = self.store.write_batch(outputs, processed_at)
        return result

    def _worker_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.config.workers, mp_context=get_context("fork"), initializer=_adopt, initargs=(self,)
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ offline input
    def run_files(self, paths: Iterable[str], now: Any = None) -> BatchResult:
        """Process message files without Kafka (see ``read_message_files``)."""
        now = now or (lambda: dt.datetime.now(dt.UTC))
        self.store.recover(now().date())
        total = BatchResult()
        for batch in _batched(read_message_files(paths), self.config.batch_size):
            result = self.write_batch(batch, now())
            self.store.finish_batch()
            total.written += result.written
            total.duplicates += result.duplicates
            total.quarantined += result.quarantined
            total.cutouts += result.cutouts
            total.csv_files |= result.csv_files
        return total


_worker_consumer: AlertConsumer | None = None


def _adopt(consumer: AlertConsumer) -> None:
    global _worker_consumer
    _worker_consumer = consumer


def _prepare_chunk(messages: Sequence[tuple[bytes | None, Mapping[str, Any]]], processed_at: dt.datetime) -> list[MessageOutput]:
    assert _worker_consumer is not None
    outputs = [_worker_consumer.prepare_message(value, source, processed_at) for value, source in messages]
    _worker_consumer.store.wait_staged()  # the main process makes them durable next
    return outputs


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------- message files
def write_frames_file(path: str, values: Iterable[bytes]) -> int:
    """Store Kafka message values in a ``.frames`` file: a magic line, then each value
    as a 4-byte big-endian length and its bytes. Returns how many were written."""
    count = 0
    with open(path, "wb") as handle:
        handle.write(FRAMES_MAGIC)
        for value in values:
            handle.write(struct.pack(">I", len(value)))
            handle.write(value)
            count += 1
    return count


def read_message_files(paths: Iterable[str]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Message values from files: a ``.frames`` file holds many (``write_frames_file``);
    any other file (an Avro container file, one framed message) is one message."""
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        if not data.startswith(FRAMES_MAGIC):
            yield data, {"file": path, "index": 0}
            continue
        position, index = len(FRAMES_MAGIC), 0
        while position < len(data):
            (length,) = struct.unpack_from(">I", data, position)
            position += 4
            yield data[position : position + length], {"file": path, "index": index}
            position += length
            index += 1
