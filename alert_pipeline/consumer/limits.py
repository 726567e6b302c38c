"""What one message may expand to, checked before anything is expanded.

A few hundred bytes can claim gigabytes: a zlib or bzip2 bomb, an Avro container file
that declares fifty million records. These checks stream the decompression and stop at
the cap, and read a container's block headers before fastavro reads its records, so a
message costs at most its limits; beyond them it is quarantined with a reason naming the
limit (see ``errors.LimitExceededError``).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alert_pipeline.consumer.schema_guard import check_schema_text
from alert_pipeline.errors import CorruptPayloadError, LimitExceededError

OCF_MAGIC = b"Obj\x01"
SYNC_SIZE = 16
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_decompressed_bytes: int = 64 * 1024 * 1024
    max_records_per_message: int = 1000


def inflate_bounded(data: bytes, cap: int, wbits: int = zlib.MAX_WBITS) -> bytes:
    """zlib-inflate ``data``, refusing (before holding more than ``cap`` bytes) when it
    would be larger."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, cap + 1)
    except zlib.error as exc:
        raise CorruptPayloadError(f"not zlib data: {exc}") from exc
    if len(out) > cap or inflater.unconsumed_tail:
        raise LimitExceededError("max_decompressed_bytes", f"inflates to more than {cap} bytes")
    return out


def _measure(make: Callable[[], Any], data: bytes, cap: int) -> int:
    """How many bytes ``data`` decompresses to, in chunks, stopping past ``cap``; nothing
    is kept. ``make`` builds a zlib, bz2 or lzma decompressor; concatenated bz2 and xz
    streams are followed as ``bz2.decompress`` / ``lzma.decompress`` (fastavro's codecs)
    follow them."""
    total, pending = 0, data
    try:
        while pending:
            decompressor = make()
            is_zlib = hasattr(decompressor, "unconsumed_tail")
            out = decompressor.decompress(pending, _CHUNK)
            while True:
                total += len(out)
                if total > cap:
                    raise LimitExceededError("max_decompressed_bytes",
                                             f"a container block inflates to more than {cap} bytes")
                if is_zlib and decompressor.unconsumed_tail:
                    out = decompressor.decompress(decompressor.unconsumed_tail, _CHUNK)
                elif not is_zlib and not (decompressor.eof or decompressor.needs_input):
                    out = decompressor.decompress(b"", _CHUNK)
                else:
                    break
            if is_zlib or not decompressor.eof:
                return total  # zlib.decompress reads one stream; an unfinished stream ends here
            pending = decompressor.unused_data
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        if isinstance(exc, LimitExceededError):
            raise
        raise CorruptPayloadError(f"container block does not decompress: {exc}") from exc
    return total


def _read_long(data: bytes, position: int) -> tuple[int, int]:
    """An Avro long (zig-zag varint) at ``position``; returns it and the next position."""
    shift = result = 0
    while True:
        if position >= len(data) or shift > 63:
            raise CorruptPayloadError("Avro container file ends inside a number")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7


def _skip_header(data: bytes) -> tuple[str, bytes, int]:
    """The container's codec, its writer schema (JSON text) and where its first block starts."""
    position, codec, schema = len(OCF_MAGIC), "null", b""
    while True:
        count, position = _read_long(data, position)
        if count == 0:
            break
        if count < 0:
            count = -count
            _, position = _read_long(data, position)
        for _ in range(count):
            length, position = _read_long(data, position)
            key = data[position:position + length]
            position += length
            length, position = _read_long(data, position)
            if key == b"avro.codec":
                codec = data[position:position + length].decode("ascii", "replace")
            elif key == b"avro.schema":
                schema = data[position:position + length]
            position += length
    return codec, schema, position + SYNC_SIZE


def check_container(data: bytes, limits: Limits) -> None:
    """Refuse an Avro container file whose writer schema is unsafe (``schema_guard``), or
    that declares more records, or decompresses to more bytes, than ``limits`` allow,
    before fastavro reads any record."""
    codec, schema, position = _skip_header(data)
    check_schema_text(schema)
    records = expanded = 0
    while position < len(data):
        count, position = _read_long(data, position)
        size, position = _read_long(data, position)
        if count < 0 or size < 0 or position + size > len(data):
            raise CorruptPayloadError("Avro container block header is inconsistent with the message size")
        records += count
        if records > limits.max_records_per_message:
            raise LimitExceededError("max_records_per_message",
                                     f"the container declares more than {limits.max_records_per_message} records")
        block = data[position:position + size]
        if codec == "deflate":
            expanded += _measure(lambda: zlib.decompressobj(-15), block, limits.max_decompressed_bytes - expanded)
        elif codec == "bzip2":
            expanded += _measure(bz2.BZ2Decompressor, block, limits.max_decompressed_bytes - expanded)
        elif codec == "xz":
            expanded += _measure(lzma.LZMADecompressor, block, limits.max_decompressed_bytes - expanded)
        position += size + SYNC_SIZE
