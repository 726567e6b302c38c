"""One Avro record out of message bytes, by either of two decoders with identical results.

* ``fastavro``: the reference, what every Python alert consumer uses;
* ``cavro`` (a Cython Avro codec): faster on LSST alerts (``benchmarks/consumer_floors.py``),
  same dicts.

``auto`` picks cavro when it can be imported, else fastavro. Both give the same alert
dicts and the same quarantine reasons for bad bytes (``tests/test_decoders.py`` checks
every bundled schema version and a few thousand mutations). cavro's ``binary_decode``
does not say how many bytes it used, so the record is read inside a wrapper record
whose second field is a random per-process sentinel appended to the bytes: the sentinel
reads back intact exactly when the record used up the bytes, no more, no fewer.
"""

from __future__ import annotations

import functools
import io
import json
import os
import threading
from typing import Any

import fastavro

from alert_pipeline.consumer.schema_guard import check_schema
from alert_pipeline.errors import CorruptPayloadError

DECODERS = ("auto", "cavro", "fastavro")
_SENTINEL = os.urandom(16)
_TAIL = b"\x20" + _SENTINEL  # Avro bytes: zig-zag length 16, then the 16 bytes


@functools.cache
def cavro_available() -> bool:
    try:
        import cavro  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_decoder(name: str) -> str:
    """``auto`` → cavro when importable, else fastavro; ValueError for cavro when missing."""
    if name not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {name!r}")
    if name == "auto":
        return "cavro" if cavro_available() else "fastavro"
    if name == "cavro" and not cavro_available():
        raise ValueError("decoder 'cavro' is not installed (pip install cavro), use 'auto' or 'fastavro'")
    return name


class WriterSchema:
    """A writer schema, checked (``schema_guard``) when it is made and parsed for each
    decoder the first time that decoder needs it."""

    def __init__(self, definition: Any) -> None:
        check_schema(definition)
        self.definition = definition
        self._lock = threading.Lock()
        self._fastavro: Any = None
        self._cavro: Any = None

    @property
    def fastavro(self) -> Any:
        with self._lock:
            if self._fastavro is None:
                self._fastavro = fastavro.parse_schema(self.definition)
            return self._fastavro

    @property
    def cavro(self) -> Any:
        with self._lock:
            if self._cavro is None:
                import cavro

                wrapper = {"type": "record", "name": "lsst_alert_pipeline_record_and_sentinel",
                           "fields": [{"name": "record", "type": _ints_as_longs(self.definition)},
                                      {"name": "end", "type": "bytes"}]}
                self._cavro = cavro.Schema(json.loads(json.dumps(wrapper)),
                                           options=cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True))
            return self._cavro


def _ints_as_longs(schema: Any) -> Any:
    """``schema`` with every plain ``int`` read as ``long``. Both are the same zig-zag
    varint on the wire; fastavro returns an ``int`` varint beyond 32 bits as it is, cavro
    truncates it to 32 bits. Read as a long, cavro returns fastavro's value, so the two
    decoders agree on such (malformed) data."""
    if schema == "int":
        return "long"
    if isinstance(schema, list):
        return [_ints_as_longs(branch) for branch in schema]
    if isinstance(schema, dict):
        if "logicalType" in schema:
            return schema  # e.g. a date: an int that means something else
        converted = {key: _ints_as_longs(value) if key in ("type", "items", "values") else value
                     for key, value in schema.items()}
        if isinstance(converted.get("fields"), list):
            converted["fields"] = [{**field, "type": _ints_as_longs(field.get("type"))} if isinstance(field, dict)
                                   else field for field in converted["fields"]]
        return converted
    return schema


def read_record(value: bytes, offset: int, writer: WriterSchema, decoder: str, label: str) -> dict[str, Any]:
    """The record at ``value[offset:]``; the bytes must be used up exactly
    (``CorruptPayloadError`` otherwise, naming ``label``, the schema)."""
    if decoder == "cavro":
        try:
            decoded = writer.cavro.binary_decode(b"".join((memoryview(value)[offset:], _TAIL)))  # one copy
        except Exception as exc:  # noqa: BLE001 - cavro raises many types on bad bytes
            raise CorruptPayloadError(f"Avro payload does not match {label}: {type(exc).__name__}: {exc}") from None
        if decoded["end"] != _SENTINEL:
            raise CorruptPayloadError("bytes left over after the Avro record, or too few: wrong schema id or "
                                      "corrupt payload")
        return decoded["record"]
    stream = io.BytesIO(value)
    stream.seek(offset)
    try:
        record = fastavro.schemaless_reader(stream, writer.fastavro)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on bad bytes
        raise CorruptPayloadError(f"Avro payload does not match {label}: {type(exc).__name__}: {exc}") from None
    if stream.tell() != len(value):
        raise CorruptPayloadError(f"{len(value) - stream.tell()} bytes left over after the Avro record: "
                                  "wrong schema id or corrupt payload")
    return record
