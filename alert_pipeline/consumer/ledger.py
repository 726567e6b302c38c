"""Exactly-once bookkeeping: the shared ledger of written alerts and the batch journal.

A batch exists exactly when its complete ledger line does. The journal names the batch in
flight (the CSV sizes before it and the cutouts it places) so that ``recover`` can finish
or undo it after a crash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from alert_pipeline.durable import write_all, write_atomically

#: Days of alert ids kept (the consumer's ``ledger_window_days`` defaults to this).
DEFAULT_WINDOW_DAYS = 7


class Ledger:
    """Keys of every alert written recently, shared by all instances of an output dir.

    One JSON line per batch in ``state/ledger/YYYYMMDD.jsonl``, appended under an
    exclusive lock; each instance tails the files it has not read yet before it filters a
    batch, so a partition that moves between instances is still de-duplicated. Files older
    than ``window_days`` are neither read nor kept.
    """

    def __init__(self, state_dir: str, window_days: int = DEFAULT_WINDOW_DAYS) -> None:
        self.directory = os.path.join(state_dir, "ledger")
        os.makedirs(self.directory, exist_ok=True)
        self.window_days = window_days
        self.keys: set[str] = set()
        self.batches: set[str] = set()
        self._read_upto: dict[str, int] = {}

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with open(os.path.join(self.directory, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _day_files(self) -> Iterator[tuple[str, str]]:
        """(day, path) of the ledger files, oldest first."""
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(".jsonl") and len(name) == 14 and name[:8].isdigit():
                yield name[:8], os.path.join(self.directory, name)

    def refresh(self, today: dt.date) -> None:
        """Read what was appended since the last refresh (by anyone)."""
        oldest = f"{today - dt.timedelta(days=self.window_days):%Y%m%d}"
        for day, path in self._day_files():
            if day < oldest:
                continue
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
        path = os.path.join(self.directory, f"{today:%Y%m%d}.jsonl")
        line = json.dumps({"batch": batch_id, "instance": instance, "keys": list(keys)}).encode() + b"\n"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
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
        for day, path in list(self._day_files()):
            if day < oldest:
                os.unlink(path)


class Journal:
    """The batch in flight of one instance: ``state/<instance>.journal.json``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, batch_id: str, csv_sizes: Mapping[str, int | None], cutouts: Sequence[str]) -> None:
        entry = {"batch": batch_id, "csv_sizes": dict(csv_sizes), "cutouts": list(cutouts)}
        write_atomically(self.path, json.dumps(entry).encode())

    def read(self) -> dict[str, Any] | None:
        try:
            with open(self.path, "rb") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
