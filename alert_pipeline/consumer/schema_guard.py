"""A writer schema is input: checked before any record is decoded with it.

A container file carries its own schema, and a schema registry serves whatever it holds.
Two shapes let a few hundred bytes cost the machine, whatever the message's size:

* a **recursive** named type (a record that holds itself, directly or through others):
  the data may then nest without bound, and both Avro decoders recurse in C, so a 200 kB
  message 200,000 levels deep kills the process (SIGSEGV) instead of raising;
* an array or map whose items take **no bytes** (``null``, an empty record, ``fixed``
  of size 0): a block may then declare 2^60 items that the decoder allocates one by one
  from nothing.

No LSST alert schema has either, so a schema that does is refused (quarantined as
``unsafe-schema``). Without them, the data nests no deeper than the schema and every
item costs at least one byte of the message, so decoding is bounded by the message's
size. The schema itself is bounded too: its text, and how deep its types nest.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from alert_pipeline.errors import UnsafeSchemaError

#: The largest writer schema accepted, as JSON text (the bundled alert schemas are ~100-160 kB).
MAX_SCHEMA_BYTES = 1024 * 1024
#: How deeply types may nest inside a writer schema (the bundled alert schemas: at most 6).
MAX_SCHEMA_DEPTH = 32

_PRIMITIVE_MIN_BYTES = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8,
                        "bytes": 1, "string": 1}


def check_schema_text(text: bytes | str) -> Any:
    """Parse a writer schema's JSON text and check it (``check_schema``); returns the
    parsed definition. Cached by text: a container stream repeats one header."""
    if len(text) > MAX_SCHEMA_BYTES:
        raise UnsafeSchemaError(f"the writer schema is {len(text)} bytes of JSON, more than {MAX_SCHEMA_BYTES}")
    return _checked_text(text if isinstance(text, bytes) else text.encode())


@functools.lru_cache(maxsize=64)
def _checked_text(text: bytes) -> Any:
    try:
        definition = json.loads(text)
    except RecursionError:
        raise UnsafeSchemaError("the writer schema's JSON nests too deeply to be an alert schema") from None
    except ValueError as exc:
        raise UnsafeSchemaError(f"the writer schema is not JSON: {exc}") from None
    check_schema(definition)
    return definition


def check_schema(definition: Any) -> None:
    """Refuse a writer schema that is recursive, nests more than ``MAX_SCHEMA_DEPTH``
    types deep, or has array or map items that take no bytes (``UnsafeSchemaError``).
    Malformed schemas are left to the Avro library, which names their fault."""
    _Walk().min_bytes(definition, namespace="", depth=0)


class _Walk:
    """One pass over a schema: named types by full name, the names being defined now
    (a reference to one of them is recursion), each type's smallest encoding."""

    def __init__(self) -> None:
        self.named: dict[str, int] = {}  # full name → smallest encoding in bytes
        self.open: set[str] = set()

    def min_bytes(self, schema: Any, namespace: str, depth: int) -> int:
        if depth > MAX_SCHEMA_DEPTH:
            raise UnsafeSchemaError(f"the writer schema nests types more than {MAX_SCHEMA_DEPTH} deep")
        if isinstance(schema, str):
            return self._reference(schema, namespace)
        if isinstance(schema, list):  # a union: its branch index costs a byte
            for branch in schema:
                self.min_bytes(branch, namespace, depth + 1)
            return 1
        if not isinstance(schema, dict):
            return 1  # malformed: the Avro library refuses it with its own message
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            return self._named(schema, kind, namespace, depth)
        if kind in ("array", "map"):
            items = schema.get("items" if kind == "array" else "values")
            if self.min_bytes(items, namespace, depth + 1) == 0:
                raise UnsafeSchemaError(f"the writer schema has an {kind} of items that take no bytes "
                                        f"({_describe(items)}): a few bytes could claim unbounded items")
            return 1
        return self.min_bytes(kind, namespace, depth + 1) if kind is not None else 1

    def _reference(self, name: str, namespace: str) -> int:
        if name in _PRIMITIVE_MIN_BYTES:
            return _PRIMITIVE_MIN_BYTES[name]
        full = name if "." in name else f"{namespace}.{name}" if namespace else name
        for candidate in (full, name):
            if candidate in self.open:
                raise UnsafeSchemaError(f"the writer schema is recursive: type {candidate!r} contains itself, "
                                        "so its data could nest without bound")
            if candidate in self.named:
                return self.named[candidate]
        return 1  # unknown name: the Avro library refuses it

    def _named(self, schema: dict, kind: str, namespace: str, depth: int) -> int:
        name = str(schema.get("name", ""))
        own_namespace = str(schema.get("namespace") or (name.rpartition(".")[0] if "." in name else namespace))
        full = name if "." in name or not own_namespace else f"{own_namespace}.{name}"
        if kind == "enum":
            size = 1
        elif kind == "fixed":
            size = schema.get("size") if isinstance(schema.get("size"), int) else 1
        else:
            self.open.add(full)
            size = 0
            fields = schema.get("fields")
            for field in fields if isinstance(fields, list) else ():
                if isinstance(field, dict):
                    size += self.min_bytes(field.get("type"), own_namespace, depth + 1)
            self.open.discard(full)
        self.named[full] = size
        return size


def _describe(schema: Any) -> str:
    text = json.dumps(schema)
    return text if len(text) <= 60 else text[:57] + "..."
