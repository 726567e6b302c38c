"""Hostile messages for the tests: bombs, absurd ids, containers that lie about their size.

Each builder returns message bytes as an attacker (or a broken broker) could send them.
They are made on the fly, cheaply: the bzip2 bomb repeats one small stream, as
``bz2.decompress`` follows concatenated streams.
"""

from __future__ import annotations

import bz2
import copy
import io
import zlib
from typing import Any

import fastavro

from .factory import AlertFactory, _writer_definition

SYNC = b"\x17" * 16


def avro_long(value: int) -> bytes:
    """An Avro long (zig-zag varint)."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def container_header(schema: dict[str, Any], codec: str = "null") -> bytes:
    """An Avro container file's header (magic, metadata, our sync marker), no blocks."""
    import json

    metadata = {b"avro.schema": json.dumps(schema).encode(), b"avro.codec": codec.encode()}
    out = bytearray(b"Obj\x01" + avro_long(len(metadata)))
    for key, value in metadata.items():
        out += avro_long(len(key)) + key + avro_long(len(value)) + value
    return bytes(out + avro_long(0) + SYNC)


def container_block(count: int, data: bytes) -> bytes:
    return avro_long(count) + avro_long(len(data)) + data + SYNC


def record_count_bomb(records: int = 50_000_000) -> bytes:
    """~100 bytes that declare ``records`` empty records."""
    schema = {"type": "record", "name": "nothing", "fields": []}
    return container_header(schema) + container_block(records, b"")


def bzip2_container_bomb(gigabytes: float = 1.0) -> bytes:
    """A bzip2 container whose one block decompresses to ``gigabytes`` of zeros."""
    stream = bz2.compress(bytes(45 << 20))  # 45 MiB of zeros in ~80 bytes
    copies = max(1, int(gigabytes * 1024 / 45))
    schema = {"type": "record", "name": "blob", "fields": [{"name": "data", "type": "bytes"}]}
    return container_header(schema, "bzip2") + container_block(1, stream * copies)


def zlib_bomb(megabytes: int = 512) -> bytes:
    """What an ANTARES locus message looks like (zlib) inflating to ``megabytes`` of zeros."""
    compressor = zlib.compressobj(1)
    chunk = bytes(1 << 24)
    parts = [compressor.compress(chunk) for _ in range(megabytes // 16)]
    return b"".join(parts) + compressor.flush()


def container_with_schema(factory: AlertFactory, packets: list[dict[str, Any]], edit: Any = None,
                          codec: str = "null") -> bytes:
    """A container file of ``packets`` written with the factory's schema, changed by
    ``edit(schema)`` first (an enriched broker schema, a field of another type …)."""
    schema = copy.deepcopy(_writer_definition(factory.version))
    if edit is not None:
        edit(schema)
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), packets, codec=codec)
    return buffer.getvalue()


def retype_dia_source_id(avro_type: str) -> Any:
    """A schema edit: ``diaSource.diaSourceId`` of another type (e.g. "string", "double")."""
    def edit(schema: dict[str, Any]) -> None:
        for field in schema["fields"]:
            if field["name"] == "diaSource":
                for sub in field["type"]["fields"]:
                    if sub["name"] == "diaSourceId":
                        sub["type"] = avro_type
    return edit


def fits_with_short_data(size: int = 100) -> bytes:
    """A FITS primary header declaring ``size``×``size`` float32 data, with one block of it."""
    cards = [f"{'SIMPLE':<8}= {'T':>20}", f"{'BITPIX':<8}= {-32:>20}", f"{'NAXIS':<8}= {2:>20}",
             f"{'NAXIS1':<8}= {size:>20}", f"{'NAXIS2':<8}= {size:>20}", "END"]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    return header + bytes(2880)


#: A writer schema whose record holds itself: data may nest without bound.
RECURSIVE_SCHEMA = {"type": "record", "name": "R", "fields": [{"name": "next", "type": ["null", "R"]}]}
#: A writer schema whose array items take no bytes: a block may claim any number of them.
ZERO_SIZE_ITEMS_SCHEMA = {"type": "record", "name": "Z", "fields": [{"name": "a", "type": {"type": "array",
                                                                                            "items": "null"}}]}


def recursive_record(depth: int) -> bytes:
    """Avro data of ``RECURSIVE_SCHEMA`` nested ``depth`` levels: union index 1 per level,
    then null (one byte a level: 200,000 levels in 200 kB)."""
    return b"\x02" * depth + b"\x00"


def zero_size_items(count: int = 2**60) -> bytes:
    """Avro data of ``ZERO_SIZE_ITEMS_SCHEMA`` whose one block declares ``count`` items."""
    return avro_long(count) + avro_long(0)


def recursion_container(depth: int = 200_000) -> bytes:
    """A container file with ``RECURSIVE_SCHEMA`` and one record ``depth`` levels deep."""
    return container_header(RECURSIVE_SCHEMA) + container_block(1, recursive_record(depth))


def zero_size_items_container(count: int = 2**60) -> bytes:
    """A ~180-byte container file whose one record claims ``count`` items of nothing."""
    return container_header(ZERO_SIZE_ITEMS_SCHEMA) + container_block(1, zero_size_items(count))
