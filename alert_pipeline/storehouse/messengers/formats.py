"""Which messenger format a file holds, from its content (never its name).

Each messenger kind declares the formats it reads (``MessengerKind.readers``: a
recogniser and a reader each); this module asks them in the registry's order and names
no kind. ``read_file`` yields the file's ``Item`` objects, one event at a time, so a
catalogue of any length and a sky map are each held once: a binary stream a kind
recognises from its first bytes (a FITS sky map) is streamed to its reader; a JSON
object, an XML document (parsed once, DTDs and entities refused, ``voevent.parse_xml``:
a document it refuses is one ``bad_xml`` item) or a text document (a CSV, an event list)
is read whole up to ``MAX_DOCUMENT_BYTES`` and given to the first kind's reader that
recognises it. A file in none of these formats is one skipped item
(``unknown_format``), named with what was recognised of it. Only regular files are
opened: a FIFO, a device or a link to one (``/dev/zero``) is refused before it is read
(``not_a_file``), so it can neither hang the run nor fill its memory. A reader that fails
in a way no check foresaw costs its file only: the items read so far are kept and the
failure is one skipped item (``reader_error``, the exception named).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from alert_pipeline.durable import NotRegularFile, open_regular
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.messengers.events import Item, Skipped
from alert_pipeline.storehouse.messengers.kind import HEAD_BYTES, JSON, STREAM, TEXT, XML, Reader, TextHead
from alert_pipeline.storehouse.messengers.voevent import local_name, looks_like_xml, parse_xml

log = logging.getLogger("transient_kind_builder")
#: Largest JSON or text input read (an IGWN alert with its sky map is ~1 MB).
MAX_DOCUMENT_BYTES = 64 << 20
#: Most JSON objects and arrays a document may hold (counted before parsing: a notice has a
#: few dozen, a list of notices a few per notice; millions of ``[]`` would cost gigabytes).
MAX_JSON_CONTAINERS = 1_000_000
#: Unrecognised values of one JSON document named one by one; the rest are one item.
NAMED_UNRECOGNISED = 20


def readers(form: str) -> list[Reader]:
    """Every kind's readers of ``form``, in the registry's order, each kind's in its own."""
    return [reader for kind in kinds.messenger_kinds() for reader in kind.readers if reader.form == form]


def __getattr__(name: str) -> ModuleType:
    """``formats.<kind>``: a messenger kind's module (its readers), by the kind's name."""
    for module in kinds.messenger_modules():
        if module.KIND_SPEC.name == name:
            return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_file(path: str, accept_mock: bool = False) -> Iterator[Item]:
    """The items of one file; a file that cannot be read or recognised is one problem."""
    where = os.path.basename(path)
    yield from _guarded(_read_file(path, where, accept_mock), where)


def _stream_reader(head: bytes) -> Reader | None:
    """The reader of a binary stream that starts with ``head``, if a kind recognises it."""
    return next((reader for reader in readers(STREAM) if reader.recognise(head)), None)


def _read_file(path: str, where: str, accept_mock: bool) -> Iterator[Item]:
    try:
        with open_regular(path, follow_links=True) as handle:  # a FIFO or a device is refused, never read
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(HEAD_BYTES)
            handle.seek(0)
            reader = _stream_reader(head)
            if reader is not None:
                yield from reader.read(handle, size, where, accept_mock)
                return
            if size > MAX_DOCUMENT_BYTES:
                yield _problem("too_large", f"{size} bytes, more than a messenger file may be "
                                            f"({MAX_DOCUMENT_BYTES})", where)
                return
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
            if len(data) > MAX_DOCUMENT_BYTES:
                yield _problem("too_large", f"more than a messenger file may be ({MAX_DOCUMENT_BYTES} bytes)", where)
                return
    except NotRegularFile as exc:
        yield _problem("not_a_file", f"{exc.strerror}, not a regular file: not read", where)
        return
    except OSError as exc:
        yield _problem("unreadable", f"cannot read it: {exc.strerror or exc}", where)
        return
    yield from read_document(data, where, accept_mock)


def _guarded(items: Iterator[Item], where: str) -> Iterator[Item]:
    """``items``, and when the reader fails unforeseen, one ``reader_error`` item in place
    of the rest (the exception's type and message logged): one file costs itself only."""
    try:
        yield from items
    except Exception as exc:  # noqa: BLE001 - any reader failure is this input's problem, not the run's
        log.error("reading %s failed: %s: %s", where, type(exc).__name__, str(exc)[:300])
        yield _problem("reader_error", f"{type(exc).__name__}: {str(exc)[:300]}", where)


def read_document(data: bytes, where: str, accept_mock: bool = False) -> Iterator[Item]:
    """The items of one JSON or text document (a file's bytes, a Kafka message); an
    unforeseen failure of its reader is one ``reader_error`` item."""
    yield from _guarded(_read_document(data, where, accept_mock), where)


def _read_document(data: bytes, where: str, accept_mock: bool = False) -> Iterator[Item]:
    reader = _stream_reader(data[:HEAD_BYTES])
    if reader is not None:
        yield from reader.read(io.BytesIO(data), len(data), where, accept_mock)
        return
    if looks_like_xml(data):
        yield from _xml_items(data, where, accept_mock)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        yield _problem("unknown_format", f"neither {_names(STREAM, ' nor ')} nor UTF-8 text", where)
        return
    if text.lstrip().startswith(("{", "[")):
        yield from _json_items(text, where, accept_mock)
        return
    lines = text.splitlines()
    first = lines[0] if lines else ""
    head = TextHead(text, first, next(csv.reader([first])) if first else [])
    reader = next((reader for reader in readers(TEXT) if reader.recognise(head)), None)
    if reader is None:
        yield _problem("unknown_format", f"not a messenger format this tool reads (first line: {first[:60]!r})", where)
        return
    yield from reader.read(text, where, accept_mock)


def _json_items(text: str, where: str, accept_mock: bool) -> Iterator[Item]:
    containers = text.count("{") + text.count("[")
    if containers > MAX_JSON_CONTAINERS:  # bounded before parsing: millions of [] cost GBs to build
        yield _problem("too_complex", f"a JSON document of {containers} objects and arrays (more than "
                                      f"{MAX_JSON_CONTAINERS} a notice file may hold)", where)
        return
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        yield _problem("not_json", f"not JSON: {exc}", where)
        return
    documents: list[Any] = doc if isinstance(doc, list) else [doc]
    unrecognised = 0
    for index, document in enumerate(documents):
        place = where if len(documents) == 1 else f"{where}[{index}]"
        reader = next((reader for reader in readers(JSON) if reader.recognise(document)), None) \
            if isinstance(document, dict) else None
        if reader is not None:
            yield from reader.read(document, place, accept_mock)
            continue
        unrecognised += 1
        if unrecognised <= NAMED_UNRECOGNISED:  # the rest counted in one item: a file costs itself once
            yield _problem("unknown_format", f"JSON that is neither {_names(JSON, ' nor ')}"
                           if isinstance(document, dict) else "a JSON value that is not an object", place)
    if unrecognised > NAMED_UNRECOGNISED:
        yield _problem("unknown_format", f"{unrecognised - NAMED_UNRECOGNISED} more JSON values of this file are no "
                                         "notice this tool reads", where)


def _xml_items(data: bytes, where: str, accept_mock: bool) -> Iterator[Item]:
    try:
        root = parse_xml(data)
    except Skipped as problem:
        yield Item("", where, problem=problem)
        return
    reader = next((reader for reader in readers(XML) if reader.recognise(root)), None)
    if reader is None:
        yield _problem("unknown_format", f"XML (<{local_name(root.tag)[:40]}>) that is neither "
                                         f"{_names(XML, ' nor ')}", where)
        return
    yield from reader.read(root, where, accept_mock)


def _names(form: str, joiner: str) -> str:
    """The formats of ``form`` the kinds read, named for a message."""
    return joiner.join(reader.name for reader in readers(form)) or "nothing"


def _problem(reason: str, detail: str, where: str) -> Item:
    return Item("", where, problem=Skipped(reason, detail))
