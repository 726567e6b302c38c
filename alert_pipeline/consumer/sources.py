"""Where messages come from: the source protocol the runner drives, and the file source.

A source hands out batches of ``Message`` and is told, batch by batch, when one is
durable (``ack``). Kafka commits offsets there (``alert_pipeline.consumer.kafka_source``); files
have nothing to acknowledge. A source ends its ``batches`` iterator when it has nothing
more to give and says why in ``stop_reason``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from alert_pipeline.consumer.summary import PartitionProgress

FRAMES_MAGIC = b"LSSTFRM1"


class Message(NamedTuple):
    """One message value and where it came from (topic, partition, offset, Kafka
    timestamp; or file and index). ``problem`` is set when the input itself was broken
    (e.g. a truncated file): the message is then quarantined with that reason."""

    value: bytes | None
    origin: dict[str, Any]
    problem: tuple[str, str] | None = None


class InputError(RuntimeError):
    """An input named by the user cannot be read (missing file, permissions)."""


class Source(Protocol):
    mode: str  # "group", "replay" or "files", for the finish line and the run history
    stop_reason: str

    def batches(self, budget: Callable[[], int]) -> Iterator[list[Message]]:
        """Batches of at most ``budget()`` messages; an empty list when nothing arrived
        for a while (so the runner can check its own stop conditions)."""
        ...

    def ack(self, batch: list[Message]) -> None:
        """``batch`` is durably written."""
        ...

    def positions(self) -> dict[str, PartitionProgress]:
        """Per partition: start and end offsets and lag, for the finish line."""
        ...

    def close(self) -> None: ...


class FileSource:
    """``--from-file``: message files instead of Kafka (see ``read_message_files``)."""

    mode = "files"

    def __init__(self, paths: Iterable[str], max_message_bytes: int) -> None:
        self.paths = list(paths)
        self.max_message_bytes = max_message_bytes
        self.stop_reason = ""
        for path in self.paths:
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise InputError(f"cannot read input file {path}: "
                                 f"{'no such file' if not os.path.exists(path) else 'not a readable file'}")

    def batches(self, budget: Callable[[], int]) -> Iterator[list[Message]]:
        batch: list[Message] = []
        for message in read_message_files(self.paths, self.max_message_bytes):
            batch.append(message)
            if len(batch) >= budget():
                yield batch
                batch = []
        if batch:
            yield batch
        self.stop_reason = "end-of-files"

    def ack(self, batch: list[Message]) -> None:
        """Nothing to acknowledge: a file is read again only if named again."""

    def positions(self) -> dict[str, PartitionProgress]:
        return {}

    def close(self) -> None:
        """Nothing held open between batches."""


class MemorySource:
    """Messages already in memory (an embedding program's, the tests'), each with its
    origin, handed to the runner in batches like any other source."""

    mode = "files"

    def __init__(self, messages: Iterable[Message]) -> None:
        self.messages = list(messages)
        self.stop_reason = ""

    def batches(self, budget: Callable[[], int]) -> Iterator[list[Message]]:
        start = 0
        while start < len(self.messages):
            size = max(budget(), 1)
            yield self.messages[start:start + size]
            start += size
        self.stop_reason = "end-of-input"

    def ack(self, batch: list[Message]) -> None:
        """Nothing to acknowledge."""

    def positions(self) -> dict[str, PartitionProgress]:
        return {}

    def close(self) -> None:
        """Nothing held."""


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


def read_message_files(paths: Iterable[str], max_message_bytes: int) -> Iterator[Message]:
    """Message values from files: a ``.frames`` file holds many (``write_frames_file``);
    any other file (an Avro container file, one framed message) is one message.

    Nothing larger than ``max_message_bytes`` is read into memory: such a message (or a
    truncated tail of a ``.frames`` file) becomes a Message with a ``problem``."""
    for path in paths:
        with open(path, "rb") as handle:
            head = handle.read(len(FRAMES_MAGIC))
            if head != FRAMES_MAGIC:
                size = os.fstat(handle.fileno()).st_size
                origin = {"file": path, "index": 0}
                if size > max_message_bytes:
                    yield Message(head, origin, ("message-too-large", _too_large(size, max_message_bytes)))
                else:
                    yield Message(head + handle.read(), origin)
                continue
            yield from _frames(handle, path, max_message_bytes)


def _frames(handle: Any, path: str, max_message_bytes: int) -> Iterator[Message]:
    index = 0
    while True:
        prefix = handle.read(4)
        if not prefix:
            return
        origin = {"file": path, "index": index}
        if len(prefix) < 4:
            yield Message(prefix, origin, ("truncated-input", "the .frames file ends inside a length prefix"))
            return
        (length,) = struct.unpack(">I", prefix)
        if length > max_message_bytes:
            yield Message(b"", origin, ("message-too-large", _too_large(length, max_message_bytes)))
            handle.seek(length, os.SEEK_CUR)
        else:
            value = handle.read(length)
            if len(value) < length:
                yield Message(value, origin, ("truncated-input",
                                              f"the .frames file ends {length - len(value)} bytes into a message"))
                return
            yield Message(value, origin)
        index += 1


def _too_large(size: int, limit: int) -> str:
    return f"{size} bytes, more than max_message_bytes = {limit}"
