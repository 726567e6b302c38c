"""Which messenger format a file holds, from its content (never its name).

``read_file`` yields the file's ``Item`` objects, one event at a time, so a catalogue of
any length and a sky map are each held once: a FITS sky map (multi-order or flat,
gzipped or not) is streamed; JSON (an IGWN alert, an IceCube notice) and text (IceCat-1,
Auger, Telescope Array, the plain cosmic-ray CSV) are read whole up to
``MAX_DOCUMENT_BYTES``. A file in none of these formats is one skipped item
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
from typing import Any

from ..durable import NotRegularFile, open_regular
from . import gw, neutrino, uhecr
from .events import Item, Skipped

log = logging.getLogger("transient_kind_builder")
#: Largest JSON or text input read (an IGWN alert with its sky map is ~1 MB).
MAX_DOCUMENT_BYTES = 64 << 20
_FITS_STARTS = (b"SIMPLE  =", b"\x1f\x8b")


def read_file(path: str, accept_mock: bool = False) -> Iterator[Item]:
    """The items of one file; a file that cannot be read or recognised is one problem."""
    where = os.path.basename(path)
    yield from _guarded(_read_file(path, where, accept_mock), where)


def _read_file(path: str, where: str, accept_mock: bool) -> Iterator[Item]:
    try:
        with open_regular(path, follow_links=True) as handle:  # a FIFO or a device is refused, never read
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(16)
            handle.seek(0)
            if head.startswith(_FITS_STARTS):
                yield gw.from_skymap_file(handle, size, where, accept_mock)
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
    if data.startswith(_FITS_STARTS):
        yield gw.from_skymap_file(io.BytesIO(data), len(data), where, accept_mock)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        yield _problem("unknown_format", "neither a FITS sky map nor UTF-8 text", where)
        return
    if text.lstrip().startswith(("{", "[")):
        yield from _json_items(text, where, accept_mock)
        return
    lines = text.splitlines()
    first = lines[0] if lines else ""
    header = next(csv.reader([first])) if first else []
    if neutrino.is_icecat(header):
        yield from neutrino.from_icecat(text, where)
    elif uhecr.is_plain_csv(header):
        yield from uhecr.from_csv(text, where)
    elif uhecr.is_auger(first):
        yield from uhecr.from_auger(text, where)
    elif uhecr.is_ta(text):
        yield from uhecr.from_ta(text, where)
    else:
        yield _problem("unknown_format", f"not a messenger format this tool reads (first line: {first[:60]!r})", where)


def _json_items(text: str, where: str, accept_mock: bool) -> Iterator[Item]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        yield _problem("not_json", f"not JSON: {exc}", where)
        return
    documents: list[Any] = doc if isinstance(doc, list) else [doc]
    for index, document in enumerate(documents):
        place = where if len(documents) == 1 else f"{where}[{index}]"
        if not isinstance(document, dict):
            yield _problem("unknown_format", "a JSON value that is not an object", place)
        elif "superevent_id" in document:
            yield gw.from_alert(document, place, accept_mock)
        elif neutrino.is_notice(document):
            yield from neutrino.from_notice(document, place)
        else:
            yield _problem("unknown_format", "JSON that is neither an IGWN alert nor an IceCube notice", place)


def _problem(reason: str, detail: str, where: str) -> Item:
    return Item("", where, problem=Skipped(reason, detail))
