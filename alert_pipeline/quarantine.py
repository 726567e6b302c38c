"""The quarantine: what could not be used, with where it came from and why.

Each quarantined message is stored once (``<stem>.bin``, its raw bytes) with a JSON
sidecar (``<stem>.json``) holding its coordinates, the first ``reason`` and ``detail``, and
every further failure of the same message in ``failures`` (at most ``MAX_FAILURES_LISTED``,
then a count), so a message of many bad records costs its own size once, not once per
record. An invalid cutout is stored on its own (its bytes only, ``<stem>_<id>_<kind>``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alert_pipeline.durable import safe_name, write_atomically

MAX_FAILURES_LISTED = 100


@dataclass
class QuarantineItem:
    """A message, or part of one, that could not be used: why, and which bytes to keep.

    ``data`` None means "the message's own bytes" (stored once per message)."""

    reason: str
    detail: str
    data: bytes | None = None
    suffix: str = ""  # names a part stored on its own (e.g. a bad cutout)


MAX_NAME_IN_STEM = 150  # room left under the file system's 255 bytes for the rest of the name


def source_stem(source: Mapping[str, Any]) -> str:
    """A file stem unique to the message: ``<topic>_<partition>_<offset>`` from Kafka,
    ``<file name>-<hash of its full path>_<index>`` from files (two inputs with the same
    base name never share a stem). A topic that is not already a plain, short file name
    (Kafka allows 249 characters, and ``.x`` and ``x`` would both become ``x``) carries a
    hash of its full name instead, so every stem is a valid name of its own."""
    if "topic" in source:
        return f"{_topic_part(str(source['topic']))}_{source['partition']}_{source['offset']}"
    path = str(source.get("file", "input"))
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{safe_name(os.path.basename(path))[:MAX_NAME_IN_STEM]}-{digest}_{source.get('index', 0)}"


def _topic_part(topic: str) -> str:
    plain = safe_name(topic)
    if plain == topic and len(plain) <= MAX_NAME_IN_STEM:
        return plain
    digest = hashlib.sha1(topic.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{plain[:MAX_NAME_IN_STEM]}-{digest}"


def write_quarantine(directory: str, source: Mapping[str, Any], message: bytes,
                     items: Sequence[QuarantineItem], processed_at: dt.datetime, mask: Any = None) -> int:
    """Store one message's quarantine items; returns how many items were recorded.

    ``processed_at`` is the batch's processing time (the day its rows are written to), so a
    batch that crosses midnight puts its rows and its quarantine on the same day. ``mask``
    (a callable on text) removes secrets from details before they are written.
    """
    clean = mask or (lambda text: text)
    stem = source_stem(source)
    whole = [item for item in items if item.data is None]
    for item in items:
        if item.data is not None:
            _write_pair(directory, f"{stem}_{safe_name(item.suffix)}" if item.suffix else stem, item.data,
                        _sidecar(source, item.data, clean, [item], processed_at))
    if whole:
        _write_pair(directory, stem, message, _sidecar(source, message, clean, whole, processed_at))
    return len(items)


def _sidecar(source: Mapping[str, Any], data: bytes, clean: Any, items: Sequence[QuarantineItem],
             processed_at: dt.datetime) -> dict[str, Any]:
    sidecar = {key: (clean(value) if isinstance(value, str) else value) for key, value in source.items()}
    sidecar.update(reason=items[0].reason, detail=clean(items[0].detail), size=len(data),
                   processed_at=processed_at.astimezone(dt.UTC).isoformat(timespec="seconds"))
    if len(items) > 1:
        sidecar["failures"] = [{"reason": item.reason, "detail": clean(item.detail)}
                               for item in items[:MAX_FAILURES_LISTED]]
        sidecar["failure_count"] = len(items)
    return sidecar


def _write_pair(directory: str, stem: str, data: bytes, sidecar: Mapping[str, Any]) -> None:
    write_atomically(os.path.join(directory, f"{stem}.bin"), data, durable=False)
    write_atomically(os.path.join(directory, f"{stem}.json"), json.dumps(sidecar, indent=1).encode(),
                     durable=False)
