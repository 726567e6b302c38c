"""One message → rows, staged cutouts and quarantine items; a batch → durable outputs.

``AlertConsumer`` holds what the README's ``LSSTAlertConsumer`` is built on: the decoder,
the output store and the per-message work. ``process_alert`` is the extension point; it
runs in worker processes when ``workers > 1`` (they are forked, so a subclass defined in
your script works unchanged). Where the messages come from is a source's business (see
``alert_pipeline.consumer.sources``); ``alert_pipeline.consumer.runner`` drives the two.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from alert_pipeline.consumer.config import ConsumerConfig
from alert_pipeline.consumer.cutouts import cutout_name, fits_problem, id_for_file_name, wait_for_writes
from alert_pipeline.consumer.decode import AlertDecoder
from alert_pipeline.consumer.lightcurve import history_points, lightcurve_fits
from alert_pipeline.consumer.limits import Limits
from alert_pipeline.consumer.records import CUTOUT_FIELDS, LIGHTCURVE, alert_key, base_row, dia_object_id
from alert_pipeline.consumer.sources import Message
from alert_pipeline.consumer.store import AlertOutput, MessageOutput, OutputStore, StagedCutout
from alert_pipeline.consumer.summary import RunSummary
from alert_pipeline.durable import checkpoint
from alert_pipeline.errors import DecodeError, ServiceError, UnusableIdError
from alert_pipeline.masking import mask_text
from alert_pipeline.quarantine import QuarantineItem

WORKER_CHUNK = 20  # messages per task for a worker process


class AlertConsumer:
    """Decode → record → write for one output directory (Kafka or offline input)."""

    def __init__(self, config: ConsumerConfig) -> None:
        self.config = config
        self.decoder = AlertDecoder(config.framing, config.schema_version, config.registry_config(),
                                    Limits(config.max_decompressed_bytes, config.max_records_per_message),
                                    config.decoder)
        self.store = OutputStore(config.output_dir, config.instance_id, config.ledger_window_days, mask_text)
        #: Paths of the current alert's cutouts ({kind: relative path or None}), set
        #: before ``process_alert`` is called.
        self.cutout_paths: dict[str, str | None] = {}
        #: Processing time of the current batch, ISO 8601 UTC.
        self.timestamp = ""
        self._pool: ProcessPoolExecutor | None = None

    # ------------------------------------------------------------------ extension point
    def process_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """Build the CSV row of one alert. Override to add columns: keys you add are
        appended after the standard ``records.COLUMNS``, in the order you add them."""
        return base_row(alert, self.cutout_paths, self.timestamp)

    # ------------------------------------------------------------------ per message
    def prepare_message(self, message: Message, processed_at: dt.datetime) -> MessageOutput:
        """Everything one message turns into; never raises for bad input."""
        output = MessageOutput(source=message.origin, value=message.value or b"",
                               schema=self.decoder.schema_label(message.value))
        self.timestamp = _iso_timestamp(processed_at)
        if message.problem:
            output.quarantine.append(QuarantineItem(*message.problem))
            return output
        try:
            alerts = self.decoder.decode(message.value)
        except DecodeError as exc:
            output.quarantine.append(QuarantineItem(exc.reason, str(exc)))
            return output
        for index, alert in enumerate(alerts):
            staged: list[StagedCutout] = []
            try:
                self.cutout_paths, staged, problems = self._stage_cutouts(alert, processed_at)
                row = self.process_alert(alert)
                key = alert_key(alert)
            except (OSError, MemoryError, ServiceError):
                raise  # the environment's fault, not the message's: stop the run, never quarantine
            except Exception as exc:  # noqa: BLE001 - a bad packet or a failing process_alert
                reason = exc.reason if isinstance(exc, DecodeError) else "process-alert-failed"
                where = f"record {index}: " if len(alerts) > 1 else ""
                output.quarantine.append(QuarantineItem(reason, f"{where}{type(exc).__name__}: {exc}"))
                # Deleted by the store once the staging writes are done (they may still run).
                output.discard.extend(cutout.path for cutout in staged)
                continue
            output.alerts.append(AlertOutput(row, key, staged))
            output.quarantine.extend(problems)
        if all(item.data is not None for item in output.quarantine):
            output.value = b""  # not needed: no need to carry it back from a worker process
        return output

    def _stage_cutouts(
        self, alert: Mapping[str, Any], processed_at: dt.datetime
    ) -> tuple[dict[str, str | None], list[StagedCutout], list[QuarantineItem]]:
        """Check each cutout is FITS and stage it, with the alert's light-curve table; a bad
        cutout leaves an empty path and is quarantined on its own."""
        paths: dict[str, str | None] = {}
        staged: list[StagedCutout] = []
        problems: list[QuarantineItem] = []
        if "antares_locus" in alert:
            return paths, staged, problems
        raw_id = (alert.get("diaSource") or {}).get("diaSourceId")
        source_id = id_for_file_name(raw_id)
        chosen: list[tuple[str, bytes]] = []
        for kind, field_name in CUTOUT_FIELDS.items():
            data = alert.get(field_name)
            paths[kind] = None
            if not data or raw_id is None:
                continue
            if len(data) > self.config.max_cutout_bytes:
                problems.append(QuarantineItem("exceeds-max-cutout-bytes", f"{kind} cutout of {len(data)} bytes "
                                               f"(limit: max_cutout_bytes = {self.config.max_cutout_bytes})"))
                continue
            if source_id is None:
                raise UnusableIdError(f"diaSourceId {str(raw_id)[:40]!r} is not a 64-bit integer: "
                                      "it cannot name a cutout file")
            problem = fits_problem(data)
            if problem:
                problems.append(QuarantineItem("invalid-cutout", f"{kind} cutout: {problem}", data,
                                               f"{source_id}_{kind}"))
                continue
            name = cutout_name(source_id, kind, processed_at)
            chosen.append((name, data))
            paths[kind] = f"cutouts/{name}"
        if source_id is not None and self.config.light_curves:
            table = lightcurve_fits(history_points(alert), dia_object_id(alert), source_id)
            if len(table) <= self.config.max_cutout_bytes:
                name = cutout_name(source_id, LIGHTCURVE, processed_at)
                chosen.append((name, table))
                paths[LIGHTCURVE] = f"cutouts/{name}"
        if chosen:  # one staging task per alert: a thread hand-off per file cost more than it saved
            staged = [StagedCutout(name, path)
                      for (name, _), path in zip(chosen, self.store.stager.stage_many(chosen), strict=True)]
            checkpoint("mid-batch")
        return paths, staged, problems

    # ------------------------------------------------------------------ per batch
    def prepare_batch(self, messages: Sequence[Message], processed_at: dt.datetime) -> list[MessageOutput]:
        """``prepare_message`` over a batch, split across worker processes if configured."""
        if self.config.workers <= 1 or len(messages) < 2:
            return [self.prepare_message(message, processed_at) for message in messages]
        pool = self._worker_pool()
        # Small chunks, handed out as workers free up: with one chunk per worker, a batch
        # waited for its slowest half (the broker and the writer share the same cores).
        chunk = min(WORKER_CHUNK, -(-len(messages) // self.config.workers))
        parts = [messages[start : start + chunk] for start in range(0, len(messages), chunk)]
        results = pool.map(_prepare_chunk, parts, [processed_at] * len(parts))
        return [output for part in results for output in part]

    def start_batch(self, messages: Sequence[Message], processed_at: dt.datetime) -> StartedBatch:
        """``prepare_batch`` without waiting for its cutout writes: ``StartedBatch.write``
        waits for them, then makes the batch durable (the runner calls it on its writer
        thread, so the writes finish while the next batch is decoded)."""
        outputs = self.prepare_batch(messages, processed_at)
        return StartedBatch(self.store, outputs, processed_at, self.store.stager.take_pending())

    # ------------------------------------------------------------------ the batch's life (for the runner)
    def recover(self, today: dt.date) -> str | None:
        """Finish or undo a batch a crash interrupted (``OutputStore.recover``)."""
        return self.store.recover(today)

    def finish_batch(self) -> None:
        """The batch is acknowledged: its journal is no longer needed."""
        self.store.finish_batch()

    def discard_staged(self) -> None:
        """Forget every cutout staged for a batch that will not be written."""
        self.store.stager.discard_all()

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
        self.store.close()


@dataclass
class StartedBatch:
    """A prepared batch whose cutouts may still be being staged."""

    store: OutputStore
    outputs: list[MessageOutput]
    processed_at: dt.datetime
    staging: list[Future]

    def write(self) -> RunSummary:
        """Wait for the staging writes (raising the first failure), then write durably."""
        wait_for_writes(self.staging)
        return self.store.write_batch(self.outputs, self.processed_at)


@functools.lru_cache(maxsize=8)
def _iso_timestamp(processed_at: dt.datetime) -> str:
    """The row's ``timestamp``, ISO 8601 UTC to the second: made once per batch."""
    return processed_at.isoformat(timespec="seconds").replace("+00:00", "Z")


_worker_consumer: AlertConsumer | None = None


def _adopt(consumer: AlertConsumer) -> None:
    global _worker_consumer
    _worker_consumer = consumer


def _prepare_chunk(messages: Sequence[Message], processed_at: dt.datetime) -> list[MessageOutput]:
    assert _worker_consumer is not None
    outputs = [_worker_consumer.prepare_message(message, processed_at) for message in messages]
    _worker_consumer.store.stager.wait()  # the main process makes them durable next
    return outputs

