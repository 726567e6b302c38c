"""What the slot store asks of the storage it lives on: a small interface between the slot
logic (``slots.KindStore``: ids, unchanged slots, enrichments kept, the index, stale slots)
and the files themselves.

``PosixFiles`` is the storehouse on a local or network file system (atomic replace by
rename, one ``syncfs`` for a batch, links and FIFOs refused). Another storage (fsspec, an
object store) is one more class with these seven methods: ``create_new`` must fail when
the object exists, ``replace`` must never show a half-written object, and ``sync`` must
make everything written before it durable.
"""

from __future__ import annotations

import os
from typing import Protocol

from alert_pipeline.durable import create_new, sync_filesystem, write_atomically
from alert_pipeline.storehouse.layout import MAX_JSON_BYTES, read_bounded


class SlotFiles(Protocol):
    """The storage operations the slot store uses."""

    def read(self, path: str, limit: int = MAX_JSON_BYTES) -> bytes:
        """The object's bytes (``FileNotFoundError`` when absent, ``ValueError`` past ``limit``)."""

    def create_new(self, path: str, data: bytes) -> None:
        """Create the object (``FileExistsError`` when it exists); durable only after ``sync``."""

    def replace(self, path: str, data: bytes) -> None:
        """Replace (or create) the object atomically: a reader sees the old or the new bytes."""

    def remove(self, path: str) -> None:
        """Remove the object."""

    def list(self, directory: str) -> list[str]:
        """The names in a directory (a prefix)."""

    def make_directory(self, directory: str) -> None:
        """Make the directory (a prefix) exist."""

    def sync(self, directory: str) -> None:
        """Make every write under ``directory`` so far durable."""


class PosixFiles:
    """The storehouse on a POSIX file system."""

    def read(self, path: str, limit: int = MAX_JSON_BYTES) -> bytes:
        return read_bounded(path, limit)

    def create_new(self, path: str, data: bytes) -> None:
        create_new(path, data)

    def replace(self, path: str, data: bytes) -> None:
        write_atomically(path, data, durable=False)

    def remove(self, path: str) -> None:
        os.unlink(path)

    def list(self, directory: str) -> list[str]:
        return os.listdir(directory)

    def make_directory(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)

    def sync(self, directory: str) -> None:
        sync_filesystem(directory)


POSIX = PosixFiles()
