"""Durable outputs: daily CSV files, FITS cutouts, the quarantine, and the exactly-once ledger.

Layout under ``output_dir``::

    data/lsst_alerts_YYYYMMDD[_INSTANCE][_N].csv      one per UTC processing day
    cutouts/<diaSourceId>_<kind>_<YYYYMMDD>_<HHMMSS>.fits
    quarantine/<source>_<partition>_<offset>.bin + .json
    state/ledger/YYYYMMDD.jsonl                        which alerts were written, per batch
    state/INSTANCE.journal.json                        the batch in flight (crash recovery)
    state/INSTANCE.incoming/                           cutouts not yet part of a batch

How a batch becomes durable (``OutputStore.write_batch`` then ``finish_batch``):

1. Cutouts are written to ``incoming/`` while the messages are decoded.
2. Alerts already in the ledger are dropped (a redelivery after a crash).
3. The journal names the batch, the CSV sizes before it and the cutouts it will place.
4. Cutouts are renamed into ``cutouts/``, quarantine files written, and one ``syncfs``
   makes all of it durable.
5. CSV rows are appended (a new file is written whole and renamed) and fsynced.
6. One ledger line with the batch's alert keys is appended and fsynced. A batch exists
   exactly when its complete ledger line does.
7. The caller commits the Kafka offsets, then the journal is removed.

After a crash, ``recover()`` reads the journal: if the batch's ledger line is complete the
outputs stay (redelivered messages are then skipped via the ledger); otherwise the CSV
files are cut back to their recorded sizes and the batch's cutouts deleted. Either way no
row is torn, duplicated or lost and no cutout is left without its row.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import datetime as dt
import errno
import fcntl
import io
import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .records import COLUMNS, format_cell

FITS_BLOCK = 2880
STAGING_THREADS = 2
CSV_PREFIX = "lsst_alerts_"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# ----------------------------------------------------------------------------- testing
#: Fault injection for the crash tests: ``LSST_CONSUMER_TEST_CRASH=POINT:N`` kills the
#: process with SIGKILL the N-th time it reaches POINT (see ``crash_point`` calls).
_CRASH_SPEC = os.environ.get("LSST_CONSUMER_TEST_CRASH", "")
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here, abruptly, when the crash tests ask for it; otherwise do nothing."""
    if not _CRASH_SPEC:
        return
    point, _, nth = _CRASH_SPEC.partition(":")
    if point == name:
        _crash_counts[name] = _crash_counts.get(name, 0) + 1
        if _crash_counts[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- files
def fsync_directory(path: str) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


try:
    _syncfs = ctypes.CDLL(None, use_errno=True).syncfs
except (OSError, AttributeError):  # not Linux
    _syncfs = None


def sync_filesystem(path: str) -> None:
    """Flush everything written on the filesystem holding ``path`` (one call per batch).

    One ``syncfs`` costs far less than an fsync per cutout file (measured here: ~2,300
    fsynced files/s against ~4,000/s with one syncfs per batch).
    """
    if _syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}", path)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and a rename."""
    temp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        fsync_directory(os.path.dirname(path) or ".")


def _write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a full disk raises, never half-succeeds)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def safe_name(text: str) -> str:
    """A file-name fragment: anything outside [A-Za-z0-9._-] becomes '_'."""
    return _SAFE_NAME.sub("_", text).strip(".") or "_"


# ----------------------------------------------------------------------------- FITS
def fits_problem(data: bytes) -> str | None:
    """Why ``data`` is not a FITS file, or None when it is one.

    A structural check (block size, SIMPLE = T, BITPIX, NAXIS and END cards), microseconds
    per cutout; full parsing would cost more than decoding the alert.
    """
    if len(data) < FITS_BLOCK:
        return f"{len(data)} bytes: shorter than one FITS block"
    if len(data) % FITS_BLOCK:
        return f"{len(data)} bytes: not a whole number of 2880-byte FITS blocks"
    if not data.startswith(b"SIMPLE  =") or data[29:30] != b"T":
        return "does not start with the card SIMPLE = T"
    keywords = set()
    for start in range(0, min(len(data), 100 * FITS_BLOCK), 80):
        keyword = data[start : start + 8].rstrip()
        if keyword == b"END":
            missing = {b"BITPIX", b"NAXIS"} - keywords
            return f"header lacks {b', '.join(sorted(missing)).decode()}" if missing else None
        keywords.add(keyword)
    return "no END card in the primary header"


def cutout_name(dia_source_id: int, kind: str, processed_at: dt.datetime) -> str:
    """``<diaSourceId>_<kind>_<YYYYMMDD>_<HHMMSS>.fits``; only an integer from the packet."""
    return f"{int(dia_source_id)}_{kind}_{processed_at:%Y%m%d_%H%M%S}.fits"


# ----------------------------------------------------------------------------- batch
@dataclass
class QuarantineItem:
    """A message, or part of one, that could not be used: its bytes and why."""

    reason: str
    detail: str
    data: bytes
    suffix: str = ""  # distinguishes several items of one message (e.g. a bad cutout)


@dataclass
class MessageOutput:
    """What one message turned into: rows with their keys, staged cutouts, quarantine."""

    source: Mapping[str, Any]  # topic, partition, offset, timestamp (or file and index)
    rows: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    cutouts: list[list[tuple[str, str]]] = field(default_factory=list)  # per row: (name, staged path)
    quarantine: list[QuarantineItem] = field(default_factory=list)


@dataclass
class BatchResult:
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    cutouts: int = 0
    csv_files: set[str] = field(default_factory=set)


# ----------------------------------------------------------------------------- ledger
class Ledger:
    """Keys of every alert written recently, shared by all instances of an output dir.

    One JSON line per batch in ``state/ledger/YYYYMMDD.jsonl``, appended under an
    exclusive lock; each instance tails the files it has not read yet before it filters a
    batch, so a partition that moves between instances is still de-duplicated. Files older
    than ``window_days`` are neither read nor kept.
    """

    def __init__(self, state_dir: str, window_days: int) -> None:
        self.directory = os.path.join(state_dir, "ledger")
        os.makedirs(self.directory, exist_ok=True)
        self.window_days = window_days
        self.keys: set[str] = set()
        self.batches: set[str] = set()
        self._read_upto: dict[str, int] = {}

    def _day_file(self, day: dt.date) -> str:
        return os.path.join(self.directory, f"{day:%Y%m%d}.jsonl")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with open(os.path.join(self.directory, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def refresh(self, today: dt.date) -> None:
        """Read what was appended since the last refresh (by anyone)."""
        oldest = today - dt.timedelta(days=self.window_days)
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".jsonl"):
                continue
            try:
                day = dt.datetime.strptime(name[:8], "%Y%m%d").date()
            except ValueError:
                continue
            if day < oldest:
                continue
            path = os.path.join(self.directory, name)
            with open(path, "rb") as handle:
                handle.seek(self._read_upto.get(path, 0))
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._read_upto[path] = self._read_upto.get(path, 0) + len(complete)
            for line in complete.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a torn line from a crash: that batch never happened
                self.batches.add(entry["batch"])
                self.keys.update(entry["keys"])

    def append(self, batch_id: str, instance: str, keys: Sequence[str], today: dt.date) -> None:
        """Record a batch durably (call with the lock held, after ``refresh``)."""
        path = self._day_file(today)
        line = json.dumps({"batch": batch_id, "instance": instance, "keys": list(keys)}).encode() + b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and _last_byte(path, size) != b"\n":
                line = b"\n" + line  # close a torn line left by a crash
            write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.batches.add(batch_id)
        self.keys.update(keys)

    def prune(self, today: dt.date) -> None:
        """Delete ledger files older than the window."""
        oldest = f"{today - dt.timedelta(days=self.window_days):%Y%m%d}"
        for name in os.listdir(self.directory):
            if name.endswith(".jsonl") and name[:8] < oldest:
                os.unlink(os.path.join(self.directory, name))


def _last_byte(path: str, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)


# ----------------------------------------------------------------------------- store
class OutputStore:
    """The output directory of one consumer instance (see the module docstring)."""

    def __init__(self, output_dir: str, instance: str = "", ledger_window_days: int = 7) -> None:
        self.root = os.path.abspath(output_dir)
        self.instance = instance
        self.data_dir = os.path.join(self.root, "data")
        self.cutouts_dir = os.path.join(self.root, "cutouts")
        self.quarantine_dir = os.path.join(self.root, "quarantine")
        self.state_dir = os.path.join(self.root, "state")
        tag = safe_name(instance) if instance else "default"
        self.incoming_dir = os.path.join(self.state_dir, f"{tag}.incoming")
        self.journal_path = os.path.join(self.state_dir, f"{tag}.journal.json")
        for directory in (self.data_dir, self.cutouts_dir, self.quarantine_dir, self.incoming_dir):
            os.makedirs(directory, exist_ok=True)
        self.ledger = Ledger(self.state_dir, ledger_window_days)
        self._writer: ThreadPoolExecutor | None = None
        self._writer_pid: int | None = None
        self._staging: list[Future] = []
        self._csv_for_layout: dict[tuple[str, tuple[str, ...]], str] = {}

    # -- staging (may run in worker processes)
    def discard_staged(self) -> None:
        """Forget cutouts staged for a batch that will not be written."""
        with contextlib.suppress(OSError):
            self.wait_staged()
        shutil.rmtree(self.incoming_dir, ignore_errors=True)
        os.makedirs(self.incoming_dir, exist_ok=True)

    def stage_cutout(self, name: str, data: bytes) -> str:
        """Write a cutout under ``incoming/`` (not yet durable, not yet visible).

        The write happens on a small thread pool: file I/O releases the GIL, so the disk
        works while the next alert is decoded. ``wait_staged`` collects the writes (and
        raises the first OSError, e.g. a full disk) before the batch is made durable.
        """
        path = os.path.join(self.incoming_dir, f"{uuid.uuid4().hex}-{name}")
        if self._writer_pid != os.getpid():  # first use, or a forked worker process
            self._writer = ThreadPoolExecutor(max_workers=STAGING_THREADS, thread_name_prefix="stage")
            self._writer_pid, self._staging = os.getpid(), []
        self._staging.append(self._writer.submit(_write_file, path, data))
        return path

    def wait_staged(self) -> None:
        """Wait for every staged cutout write; raise the first failure."""
        pending, self._staging = self._staging, []
        errors = [future.exception() for future in pending]
        failure = next((error for error in errors if error is not None), None)
        if failure is not None:
            raise failure

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    # -- recovery
    def recover(self, today: dt.date) -> str | None:
        """Finish or undo a batch a crash interrupted. Returns what was done, or None."""
        self.discard_staged()
        with self.ledger.locked():
            self.ledger.prune(today)
        self.ledger.refresh(today)
        if not os.path.exists(self.journal_path):
            return None
        with open(self.journal_path, "rb") as handle:
            journal = json.load(handle)
        if journal["batch"] in self.ledger.batches:
            outcome = f"batch {journal['batch']} was complete; its offsets will be re-read and skipped"
        else:
            for name in journal["cutouts"]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.cutouts_dir, name))
            for path, size in journal["csv_sizes"].items():
                _restore_size(path, size)
            outcome = f"batch {journal['batch']} was incomplete and has been rolled back"
        sync_filesystem(self.root)
        os.unlink(self.journal_path)
        return outcome

    # -- the batch
    def write_batch(self, outputs: Sequence[MessageOutput], processed_at: dt.datetime) -> tuple[str, BatchResult]:
        """Steps 2–6 of the module docstring. Returns the batch id and what was written."""
        batch_id = uuid.uuid4().hex
        today = processed_at.date()
        result = BatchResult()
        with self.ledger.locked():
            self.ledger.refresh(today)
            rows, keys, placements, discard = self._select_new(outputs, result)
            by_file = self._rows_by_file(rows, today)
            csv_sizes = {path: (os.path.getsize(path) if os.path.exists(path) else None) for path in by_file}
            self._write_journal(batch_id, csv_sizes, [name for name, _ in placements])
            crash_point("after-journal")
            try:
                for name, staged in placements:
                    os.replace(staged, os.path.join(self.cutouts_dir, name))
                for staged in discard:
                    os.unlink(staged)
                result.quarantined = self._quarantine(outputs)
                sync_filesystem(self.root)
                crash_point("after-cutouts")
                for path, file_rows in by_file.items():
                    _append_rows(path, file_rows[0], file_rows[1])
                crash_point("after-csv")
                self.ledger.append(batch_id, self.instance, keys, today)
            except BaseException:
                self._undo(placements, csv_sizes)
                raise
        result.written, result.cutouts, result.csv_files = len(rows), len(placements), set(by_file)
        return batch_id, result

    def finish_batch(self) -> None:
        """Step 7: the offsets are committed; the batch no longer needs its journal."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal_path)

    def _select_new(
        self, outputs: Sequence[MessageOutput], result: BatchResult
    ) -> tuple[list[dict[str, Any]], list[str], list[tuple[str, str]], list[str]]:
        rows, keys, placements, discard = [], [], [], []
        in_batch: set[str] = set()  # the ledger's own set is only read, never copied
        for output in outputs:
            for row, key, cutouts in zip(output.rows, output.keys, output.cutouts, strict=True):
                if key in self.ledger.keys or key in in_batch:
                    result.duplicates += 1
                    discard.extend(staged for _, staged in cutouts)
                    continue
                in_batch.add(key)
                rows.append(row)
                keys.append(key)
                placements.extend(cutouts)
        return rows, keys, placements, discard

    def _rows_by_file(self, rows: Iterable[dict[str, Any]], today: dt.date) -> dict[str, tuple[tuple[str, ...], list]]:
        by_file: dict[str, tuple[tuple[str, ...], list]] = {}
        for row in rows:
            columns = COLUMNS + tuple(key for key in row if key not in COLUMNS)
            path = self.csv_path(today, columns)
            by_file.setdefault(path, (columns, []))[1].append(row)
        return by_file

    def csv_path(self, day: dt.date, columns: tuple[str, ...]) -> str:
        """The day's CSV for this column layout: the plain name for the first layout of
        the day, then ``_2``, ``_3`` … for each different layout (e.g. after a
        ``process_alert`` change), so a file's header always matches its rows."""
        cache_key = (f"{day:%Y%m%d}", columns)
        if cache_key not in self._csv_for_layout:
            stem = f"{CSV_PREFIX}{day:%Y%m%d}" + (f"_{safe_name(self.instance)}" if self.instance else "")
            header = _header_line(columns)
            number = 1
            while True:
                path = os.path.join(self.data_dir, f"{stem}{'' if number == 1 else f'_{number}'}.csv")
                if not os.path.exists(path) or _first_line(path) == header:
                    break
                number += 1
            self._csv_for_layout[cache_key] = path
        return self._csv_for_layout[cache_key]

    def _write_journal(self, batch_id: str, csv_sizes: Mapping[str, int | None], cutouts: list[str]) -> None:
        journal = {"batch": batch_id, "csv_sizes": csv_sizes, "cutouts": cutouts}
        write_atomically(self.journal_path, json.dumps(journal).encode())

    def _quarantine(self, outputs: Sequence[MessageOutput]) -> int:
        count = 0
        for output in outputs:
            for item in output.quarantine:
                write_quarantine(self.quarantine_dir, output.source, item)
                count += 1
        return count

    def _undo(self, placements: list[tuple[str, str]], csv_sizes: Mapping[str, int | None]) -> None:
        """Best effort at once; ``recover()`` on the next start finishes the job."""
        with contextlib.suppress(OSError):
            for name, _ in placements:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.cutouts_dir, name))
            for path, size in csv_sizes.items():
                _restore_size(path, size)
            os.unlink(self.journal_path)


def write_quarantine(directory: str, source: Mapping[str, Any], item: QuarantineItem) -> str:
    """The raw bytes plus a JSON sidecar saying where they came from and why."""
    if "topic" in source:
        stem = f"{safe_name(source['topic'])}_{source['partition']}_{source['offset']}"
    else:
        stem = f"{safe_name(os.path.basename(str(source.get('file', 'input'))))}_{source.get('index', 0)}"
    stem += f"_{safe_name(item.suffix)}" if item.suffix else ""
    sidecar = dict(source)
    sidecar.update(
        reason=item.reason,
        detail=item.detail,
        size=len(item.data),
        processed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_atomically(os.path.join(directory, f"{stem}.bin"), item.data, durable=False)
    write_atomically(os.path.join(directory, f"{stem}.json"), json.dumps(sidecar, indent=1).encode(), durable=False)
    return stem


# ----------------------------------------------------------------------------- CSV
def _header_line(columns: Sequence[str]) -> str:
    return ",".join(columns)


def _first_line(path: str) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.readline().rstrip("\r\n")


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows([format_cell(row.get(column)) for column in columns] for row in rows)
    return buffer.getvalue().encode("utf-8")


def _append_rows(path: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows appended in one write and fsynced; a new file is written whole and renamed."""
    if not os.path.exists(path):
        write_atomically(path, csv_bytes(columns, rows, header=True))
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, csv_bytes(columns, rows, header=False))
        os.fsync(fd)
    finally:
        os.close(fd)


def _restore_size(path: str, size: int | None) -> None:
    """Cut a CSV back to its size before a batch (delete it if the batch created it)."""
    try:
        if size is None:
            os.unlink(path)
        elif os.path.getsize(path) > size:
            with open(path, "r+b") as handle:
                handle.truncate(size)
                os.fsync(handle.fileno())
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
