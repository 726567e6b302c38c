"""The output directory of one consumer instance, and how a batch becomes durable.

The directory's layout is ``alert_pipeline.consumer.layout``'s; this store adds, under ``state/``,
``ledger/YYYYMMDD.jsonl`` (which alerts were written, per batch), ``INSTANCE.journal.json``
(the batch in flight, for crash recovery) and ``INSTANCE.incoming/`` (cutouts not yet part
of a batch).

How a batch becomes durable (``write_batch`` then ``finish_batch``):

1. Cutouts are written to ``incoming/`` while the messages are decoded.
2. Alerts already in the ledger are dropped (a redelivery after a crash).
3. The journal names the batch, the CSV sizes before it and the cutouts it will place.
4. Cutouts are renamed into ``cutouts/`` (never over an existing file: a second alert of
   the same DIASource in the same second gets ``_2``), quarantine files written, and one
   ``syncfs`` makes all of it durable.
5. CSV rows are appended (a new file is written whole and renamed) and fsynced.
6. One ledger line with the batch's alert keys is appended and fsynced. A batch exists
   exactly when its complete ledger line does.
7. The caller commits (Kafka offsets), then the journal is removed.

After a crash, ``recover()`` reads the journal: if the batch's ledger line is complete the
outputs stay (redelivered messages are then skipped via the ledger); otherwise the CSV
files are cut back to their recorded sizes and the batch's cutouts deleted. Either way no
row is torn, duplicated or lost and no cutout is left without its row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alert_pipeline.consumer import csvfiles
from alert_pipeline.consumer.cutouts import CutoutStager
from alert_pipeline.consumer.layout import OutputLayout
from alert_pipeline.consumer.ledger import DEFAULT_WINDOW_DAYS, Journal, Ledger
from alert_pipeline.consumer.records import COLUMNS, LIGHTCURVE
from alert_pipeline.consumer.summary import RunSummary
from alert_pipeline.durable import checkpoint, safe_name, sync_filesystem
from alert_pipeline.quarantine import QuarantineItem, write_quarantine


class InstanceBusyError(RuntimeError):
    """Another consumer of the same instance name is using this output directory."""


@dataclass
class StagedCutout:
    name: str  # the file name in cutouts/
    path: str  # where it is staged


@dataclass
class AlertOutput:
    """One alert's row, its identity for de-duplication, and its staged cutouts."""

    row: dict[str, Any]
    key: str
    cutouts: list[StagedCutout] = field(default_factory=list)


@dataclass
class MessageOutput:
    """What one message turned into."""

    source: Mapping[str, Any]  # topic, partition, offset, timestamp (or file and index)
    value: bytes = b""
    alerts: list[AlertOutput] = field(default_factory=list)
    quarantine: list[QuarantineItem] = field(default_factory=list)
    discard: list[str] = field(default_factory=list)  # staged paths of alerts not kept
    schema: str = ""  # which writer schema the message named (see AlertDecoder.schema_label)


class OutputStore:
    """The output directory of one consumer instance (see the module docstring)."""

    def __init__(self, output_dir: str, instance: str = "", ledger_window_days: int = DEFAULT_WINDOW_DAYS,
                 mask: Callable[[str], str] | None = None) -> None:
        self.layout = OutputLayout.at(output_dir)
        self.root = self.layout.root
        self.instance = instance
        self.data_dir, self.cutouts_dir = self.layout.data, self.layout.cutouts
        self.quarantine_dir, self.state_dir = self.layout.quarantine, self.layout.state
        for directory in (self.data_dir, self.cutouts_dir, self.quarantine_dir, self.state_dir):
            os.makedirs(directory, exist_ok=True)
        tag = safe_name(instance) if instance else "default"
        self._instance_lock = _lock_instance(os.path.join(self.state_dir, f"{tag}.lock"), instance, self.root)
        self.stager = CutoutStager(os.path.join(self.state_dir, f"{tag}.incoming"))
        self.journal = Journal(os.path.join(self.state_dir, f"{tag}.journal.json"))
        self.ledger = Ledger(self.state_dir, ledger_window_days)
        self.day_files = csvfiles.DayFiles(self.data_dir, instance)
        self.mask = mask

    def close(self) -> None:
        self._instance_lock.close()

    # -- recovery
    def recover(self, today: dt.date) -> str | None:
        """Finish or undo a batch a crash interrupted. Returns what was done, or None."""
        self.stager.discard_all()
        with self.ledger.locked():
            self.ledger.prune(today)
        self.ledger.refresh(today)
        journal = self.journal.read()
        if journal is None:
            return None
        if journal["batch"] in self.ledger.batches:
            outcome = f"batch {journal['batch']} was complete; its offsets will be re-read and skipped"
        else:
            self._undo(journal["cutouts"], journal["csv_sizes"])
            outcome = f"batch {journal['batch']} was incomplete and has been rolled back"
        sync_filesystem(self.root)
        self.journal.remove()
        return outcome

    # -- the batch
    def write_batch(self, outputs: Sequence[MessageOutput], processed_at: dt.datetime) -> RunSummary:
        """Steps 2–6 of the module docstring. Returns what was written."""
        batch_id = uuid.uuid4().hex
        today = processed_at.date()
        result = RunSummary(consumed=len(outputs))
        result.schemas.update(output.schema for output in outputs if output.schema)
        with self.ledger.locked():
            self.ledger.refresh(today)
            kept = self._select_new(outputs, result)
            placements = self._place_names(kept)
            by_file = self._rows_by_file(kept, today)
            csv_sizes = {path: (os.path.getsize(path) if os.path.exists(path) else None) for path in by_file}
            self.journal.write(batch_id, csv_sizes, [name for name, _ in placements])
            checkpoint("after-journal")
            try:
                for name, staged in placements:
                    os.replace(staged, os.path.join(self.cutouts_dir, name))
                for output in outputs:
                    for staged in output.discard:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(staged)
                self._quarantine(outputs, result, processed_at)
                sync_filesystem(self.root)
                checkpoint("after-cutouts")
                for path, (columns, rows) in by_file.items():
                    csvfiles.append_rows(path, columns, rows)
                checkpoint("after-csv")
                self.ledger.append(batch_id, self.instance, [alert.key for alert in kept], today)
            except BaseException:
                with contextlib.suppress(OSError):  # else recover() finishes it from the journal
                    self._undo([name for name, _ in placements], csv_sizes)
                    self.journal.remove()
                raise
        result.written, result.csv_files = len(kept), set(by_file)
        result.cutouts = sum(1 for name, _ in placements if f"_{LIGHTCURVE}_" not in name)  # images, not tables
        return result

    def finish_batch(self) -> None:
        """Step 7: the batch is committed; it no longer needs its journal."""
        self.journal.remove()

    def _select_new(self, outputs: Sequence[MessageOutput], result: RunSummary) -> list[AlertOutput]:
        kept: list[AlertOutput] = []
        in_batch: set[str] = set()  # the ledger's own set is only read, never copied
        for output in outputs:
            for alert in output.alerts:
                if alert.key in self.ledger.keys or alert.key in in_batch:
                    result.duplicates += 1
                    output.discard.extend(cutout.path for cutout in alert.cutouts)
                    continue
                in_batch.add(alert.key)
                kept.append(alert)
        return kept

    def _place_names(self, kept: Sequence[AlertOutput]) -> list[tuple[str, str]]:
        """(final name, staged path) of every cutout; a name already taken on disk or in
        this batch gets the next free number, and the row's cells follow it. Runs under
        the ledger lock, so instances sharing the directory cannot race for a name."""
        placements, taken = [], set()
        for alert in kept:
            for cutout in alert.cutouts:
                name, copy = cutout.name, 1
                while name in taken or os.path.lexists(os.path.join(self.cutouts_dir, name)):
                    copy += 1
                    name = f"{cutout.name[:-len('.fits')]}_{copy}.fits"
                if name != cutout.name:
                    old, new = f"cutouts/{cutout.name}", f"cutouts/{name}"
                    alert.row.update({column: new for column, value in alert.row.items() if value == old})
                taken.add(name)
                placements.append((name, cutout.path))
        return placements

    def _rows_by_file(self, kept: Sequence[AlertOutput], today: dt.date) -> dict[str, tuple[tuple[str, ...], list]]:
        by_file: dict[str, tuple[tuple[str, ...], list]] = {}
        for alert in kept:
            columns = COLUMNS + tuple(key for key in alert.row if key not in COLUMNS)
            path = self.day_files.path(today, columns)
            by_file.setdefault(path, (columns, []))[1].append(alert.row)
        return by_file

    def _quarantine(self, outputs: Sequence[MessageOutput], result: RunSummary, processed_at: dt.datetime) -> None:
        for output in outputs:
            if output.quarantine:
                result.quarantined += write_quarantine(self.quarantine_dir, output.source, output.value,
                                                       output.quarantine, processed_at, self.mask)
                result.quarantine_reasons.update(item.reason for item in output.quarantine)

    def _undo(self, cutouts: Sequence[str], csv_sizes: Mapping[str, int | None]) -> None:
        """Remove a batch's cutouts and cut its CSVs back to their sizes before it."""
        for name in cutouts:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.cutouts_dir, name))
        for path, size in csv_sizes.items():
            csvfiles.restore_size(path, size)


def _lock_instance(path: str, instance: str, root: str) -> Any:
    """Hold ``state/<instance>.lock`` for the store's life: a second consumer of the same
    instance would otherwise wipe this one's staged cutouts and journal."""
    handle = open(path, "a")  # noqa: SIM115 - held open until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        name = f"instance {instance!r}" if instance else "the default instance"
        raise InstanceBusyError(
            f"another consumer ({name}) is running on {root}; wait for it to finish, or give each "
            "concurrent consumer its own --instance-id") from None
    return handle
