"""The event storehouse: one JSON file per slot, per kind, and an index rebuilt from disk.

Layout, shared by every cosmic kind (gw, uhecr, neutrino, transient …)::

    <storehouse>/<kind>/<slot_id>.json     one slot
    <storehouse>/<kind>/index.json         {"kind", "count", "built_at", "slots": [...]}

A slot id becomes its file name through the kind's ``SlotNames``: the identity for ids
of letters, digits, '.', '_' and '-' (ZTF object ids), or ``EscapedSlotNames`` for ids
that may hold other characters (minor-body designations such as ``2015 BQ311``).

Slot files are replaced atomically (temp file + rename), so a reader or an interrupted
build only ever sees a whole old slot or a whole new one; the index is rewritten last
(``rebuild-index`` rebuilds it from the slot files on disk). A slot whose content is unchanged is not rewritten (its
bytes and mtime stay), comparing everything but the ``VOLATILE`` fields.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from alert_pipeline.storehouse.backend import POSIX, SlotFiles
from alert_pipeline.storehouse.layout import (
    KIND_FILE_STEMS,
    StorehouseLayout,
    kept_fields,
    parse_json,
    update_roster,
)

log = logging.getLogger("storehouse")

#: Paths inside a slot that change on every build and so do not count as a change.
VOLATILE: tuple[tuple[str, ...], ...] = (("provenance", "built_at"),)
#: Fields that later steps add to slots another step writes (the cross-match's
#: coincidences, the Transient Name Server's record): a rewrite of the slot keeps them.
ENRICHMENTS = kept_fields()
_SLOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@contextmanager
def one_writer(storehouse: str, command: str, create: bool = False) -> Iterator[None]:
    """Hold the storehouse's writer lock (an ``flock`` on the storehouse directory itself,
    so taking it creates nothing), waiting and saying so while another command holds it:
    two commands that read a slot and write it back later (the build, tns, the cross-match,
    load-messengers, rebuild-index) would otherwise lose each other's writes. A storehouse
    that does not exist is created only when ``create`` (a first load or build); otherwise
    the command goes on unlocked and finds there is nothing to do. The lock goes with its
    process: a killed command never leaves one behind."""
    if create:
        os.makedirs(storehouse, exist_ok=True)
    try:
        descriptor = os.open(storehouse, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        yield
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another command is writing the storehouse %s; waiting for it to finish", command,
                        os.path.abspath(storehouse))
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def slot_bytes(slot: Mapping[str, Any]) -> bytes:
    """The canonical serialisation of a slot: one line, sorted keys, UTF-8 (equal slots
    are equal bytes). orjson writes it much faster than json (``benchmarks/builder_scale.py``),
    with the same shortest round-trip floats; a value orjson refuses (an integer beyond 64 bits in a
    source row) falls back to json. ``python3 -m json.tool`` shows a slot indented."""
    try:
        return orjson.dumps(slot, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        return (json.dumps(slot, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _with_enrichments(slot: Mapping[str, Any], old: bytes) -> Mapping[str, Any]:
    """``slot`` plus the ``ENRICHMENTS`` of the stored slot ``old`` that it lacks (the old
    slot is parsed only when its bytes name one)."""
    missing = [name for name in ENRICHMENTS if name not in slot and f'"{name}"'.encode() in old]
    if not missing:
        return slot
    try:
        stored = parse_json(old)
    except (ValueError, RecursionError):
        return slot
    if not isinstance(stored, dict):
        return slot
    return {**slot, **{name: stored[name] for name in missing if name in stored}}


def _without_volatile(slot: Any) -> Any:
    """A copy of the slot without the VOLATILE fields (copies only the dicts on the path)."""
    if not isinstance(slot, dict):
        return slot
    stripped = dict(slot)
    for path in VOLATILE:
        holder = stripped
        for key in path[:-1]:
            if not isinstance(holder.get(key), dict):
                break
            holder[key] = dict(holder[key])
            holder = holder[key]
        else:
            holder.pop(path[-1], None)
    return stripped


class SlotNames:
    """Slot id ↔ file stem: the identity, for ids of letters, digits, '.', '_' and '-'."""

    def stem(self, slot_id: str) -> str:
        """The file stem of a slot id; ValueError for an id that cannot name a slot file
        (including the names of the kind-level files, ``index`` and ``roster``)."""
        stem = self._encode(slot_id)
        if is_reserved(stem) or is_reserved(slot_id):
            raise ValueError(f"slot id {slot_id!r} is the name of a kind-level file")
        return stem

    def _encode(self, slot_id: str) -> str:
        if not _SLOT_ID.match(slot_id):
            raise ValueError(f"invalid slot id {slot_id!r}")
        return slot_id

    def slot_id(self, stem: str) -> str | None:
        """The slot id a file stem stands for, or None when it is no slot's."""
        return stem if _SLOT_ID.match(stem) else None


class EscapedSlotNames(SlotNames):
    """Ids of ``allowed`` characters mapped to safe, reversible, collision-free stems that
    stay distinct on a case-insensitive file system: ASCII capitals and digits stay,
    every other character becomes ``_XX`` (its code in hex; ``_`` itself and lower-case
    letters too, so decoding is unambiguous and no two stems differ only in case). No
    '/', no leading dot: a stem never leaves its directory. Ids matching ``verbatim``
    (which must not match any other escaped stem, e.g. ZTF object ids, the only stems
    with lower-case letters) are their own stem.

    So ``2015BQ311`` is its own stem, ``2015ab`` is ``2015_61_62`` and ``P/2010 A2`` is
    ``P_2F2010_20A2``."""

    def __init__(self, allowed: str = r"[A-Za-z0-9 _./-]{1,64}", verbatim: str | None = None) -> None:
        self.allowed = re.compile(allowed)
        self.verbatim = re.compile(verbatim) if verbatim else None

    def _encode(self, slot_id: str) -> str:
        if self.verbatim is not None and self.verbatim.fullmatch(slot_id):
            return slot_id
        if not self.allowed.fullmatch(slot_id):
            raise ValueError(f"slot id {slot_id[:80]!r} has characters or a length a slot id may not have")
        return "".join(char if char.isdigit() or "A" <= char <= "Z" else f"_{ord(char):02X}" for char in slot_id)

    def slot_id(self, stem: str) -> str | None:
        if not _ESCAPED_STEM.fullmatch(stem):
            return None
        decoded = _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), stem)
        try:
            return decoded if self._encode(decoded) == stem else None
        except ValueError:
            return None


_ESCAPE = re.compile(r"_([0-9A-F]{2})")
_ESCAPED_STEM = re.compile(r"(?:[A-Za-z0-9]|_[0-9A-F]{2})+")


@dataclass(frozen=True)
class RowSource:
    """How the builder makes a kind's slots from the events table: ``query`` (SQL with a
    ``{table}`` placeholder) streams one row per group, ``make_slot(row, provenance,
    roster)`` turns a row into a slot (or None, counted in the ``roster``, which
    ``roster_type(**counts)`` makes: ``fink.roster.Roster.of`` for the kind's subtypes)."""

    query: str
    params: Mapping[str, Any]
    make_slot: Callable[..., dict[str, Any] | None]
    roster_type: Callable[..., Any]


@dataclass(frozen=True)
class KindSpec:
    """Everything the tools know of one slot kind, declared once in the kind's module:
    its name (the directory), the slot fields its ``index.json`` lists, its file-name
    rule, and, for kinds built from the events table, its ``RowSource``."""

    name: str
    index_fields: tuple[str, ...]
    names: SlotNames = field(default_factory=lambda: SlotNames())
    rows: RowSource | None = None
    #: ``refine(slot) -> slot``, applied to every slot written after its enrichments are
    #: kept: what an enrichment changes in the slot itself (a spectroscopic class refines
    #: the subtype) survives a rebuild.
    refine: Any = None

    def store(self, storehouse: str, files: SlotFiles = POSIX) -> KindStore:
        return KindStore(storehouse, self.name, self.names, self.refine, files)


@dataclass
class WriteReport:
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    shrink_refused: int = 0  # stale slots kept because removing them looked like a mistake
    entries: list[dict[str, Any]] = field(default_factory=list)  # index entries of the slots kept

    def count(self, written: bool) -> None:
        if written:
            self.written += 1
        else:
            self.unchanged += 1

    def merge(self, other: WriteReport) -> None:
        """Add a part of the build written elsewhere (a worker process)."""
        self.written += other.written
        self.unchanged += other.unchanged
        self.entries.extend(other.entries)


#: ``patch_index``'s landmarks in the index ``write_index`` writes (orjson, compact).
_INDEX_HEAD = re.compile(rb'\{"kind":"[^"\\]*","count":(\d+),"built_at":("[^"\\]*"),"slots":\[')
_ENTRY_START = b'{"slot_id":'
#: The id of every entry, as JSON text (decoded before they are compared: an escape sorts
#: otherwise than the character it stands for).
_ENTRY_ID = re.compile(rb'\{"slot_id":("(?:[^"\\]|\\.)*")')
_ENTRY_SEPARATOR = b'},{"slot_id":'


def _is_entry(data: bytes, slot_id: str) -> bool:
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(entry, dict) and entry.get("slot_id") == slot_id


def index_entry(slot_id: str, slot: Mapping[str, Any], summary_fields: Sequence[str]) -> dict[str, Any]:
    entry = {"slot_id": slot.get("slot_id", slot_id)}
    entry.update({name: slot.get(name) for name in summary_fields if name != "slot_id"})
    return entry


class KindStore:
    """The slots of one kind in a storehouse."""

    def __init__(self, storehouse: str, kind: str, names: SlotNames | None = None, refine: Any = None,
                 files: SlotFiles = POSIX) -> None:
        if not _SLOT_ID.match(kind):
            raise ValueError(f"invalid kind name {kind!r}")
        self.kind = kind
        self.names = names or SlotNames()
        self.refine = refine
        self.last_slot: Mapping[str, Any] = {}
        self.files = files
        self.layout = StorehouseLayout.at(storehouse)
        self.directory = self.layout.kind(kind)
        self.files.make_directory(self.directory)

    def slot_path(self, slot_id: str) -> str:
        """The slot's file; ValueError for an id that cannot name one."""
        return os.path.join(self.directory, f"{self.names.stem(slot_id)}.json")

    def read_slot(self, slot_id: str) -> dict[str, Any] | None:
        """The stored slot, or None when there is none (or it is unreadable: replaced)."""
        try:
            slot = parse_json(self.files.read(self.slot_path(slot_id)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("slot %s is unreadable and will be replaced: %s", slot_id, exc)
            return None
        return slot if isinstance(slot, dict) else None

    def slot_ids_on_disk(self) -> set[str]:
        """Slot ids of the slot files on disk. Other files (someone's ``My notes.json``)
        are left alone, never read, removed or indexed."""
        found = set()
        for name in self.files.list(self.directory):
            stem = name[:-5]
            if not name.endswith(".json") or is_reserved(stem) or name.startswith("."):
                continue
            slot_id = self.names.slot_id(stem)
            if slot_id is not None:
                found.add(slot_id)
            else:
                log.warning("%s is not a slot file (not a valid slot id); left alone", os.path.join(self.directory, name))
        return found

    def write_slot(self, slot_id: str, slot: Mapping[str, Any], exists: bool = True) -> bool:
        """Write a slot unless only volatile fields differ. True when written. The
        ``ENRICHMENTS`` the stored slot has and ``slot`` lacks are kept.

        An existing slot is replaced atomically (temp file + rename): a reader sees the
        whole old slot or the whole new one. A new slot is created in place, which is ten
        times cheaper: it is not in ``index.json`` until the build has written and synced
        it, and a file torn by a crash is unreadable, so the next build replaces it and
        ``rebuild-index`` leaves it out. Not fsynced one by one: ``sync()`` once after a
        batch of slots (an fsync per file would cost more than building them)."""
        path = self.slot_path(slot_id)
        old = None
        if exists:  # the caller may know it does not: saves a failed open per new slot
            try:
                old = self.files.read(path)
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:  # a link or a FIFO in its place: replaced, never read
                log.warning("slot %s is unreadable and will be replaced: %s", slot_id, exc)
        if old is not None:
            slot = _with_enrichments(slot, old)
        if self.refine is not None:
            slot = self.refine(slot)
        self.last_slot = slot  # as written: what the index entry must show
        data = slot_bytes(slot)
        if old is None:
            try:
                self.files.create_new(path, data)
                return True
            except FileExistsError:
                pass  # appeared meanwhile: replace it as any other
        elif old == data:
            return False
        else:
            try:
                if _without_volatile(parse_json(old)) == _without_volatile(dict(slot)):
                    return False
            except (ValueError, RecursionError):
                pass  # an unreadable old slot is simply replaced
        self.files.replace(path, data)
        return True

    def write_one(self, slot_id: str, slot: Mapping[str, Any], summary_fields: Sequence[str], exists: bool,
                  report: WriteReport) -> None:
        """Write one slot and count it in ``report`` (with its index entry, from the slot
        as written: enrichments kept and refined)."""
        report.count(self.write_slot(slot_id, slot, exists=exists))
        report.entries.append(index_entry(slot_id, self.last_slot, summary_fields))

    def finish(self, report: WriteReport, on_disk: set[str], summary_fields: Sequence[str],
               allow_shrink: bool) -> WriteReport:
        """After every slot of a build was written (``write_one``, here or in worker
        processes): remove the slots of ``on_disk`` not written, then make it all durable
        with one filesystem sync.

        When removing would take away more than half of the slots on disk, nothing is
        removed unless ``allow_shrink`` (a mistyped source gives no rows, not a night in
        which half the sky vanished): ``shrink_refused`` then says how many were kept."""
        stale = on_disk - {entry["slot_id"] for entry in report.entries}
        if len(stale) * 2 > len(on_disk) and not allow_shrink:
            report.shrink_refused = len(stale)
            report.entries.extend(self.read_entries(sorted(stale), summary_fields))
        else:
            for slot_id in sorted(stale):
                self.files.remove(self.slot_path(slot_id))
                report.removed += 1
        self.sync()
        return report

    def sync(self) -> None:
        self.files.sync(self.directory)

    def rebuild_index(self, summary_fields: Sequence[str]) -> dict[str, Any]:
        """Scan the slot files and write ``index.json`` (sorted by slot id). Unreadable
        slot files are left out and logged, never fatal."""
        return self.write_index(self.read_entries(sorted(self.slot_ids_on_disk()), summary_fields))

    def read_entries(self, slot_ids: Iterable[str], summary_fields: Sequence[str]) -> list[dict[str, Any]]:
        """The index entries of these slots, read from their files (unreadable ones logged, left out)."""
        entries = []
        for slot_id in slot_ids:
            try:
                slot = parse_json(self.files.read(self.slot_path(slot_id)))
            except (OSError, ValueError, RecursionError) as exc:
                log.warning("slot %s is unreadable and left out of the index: %s", slot_id, exc)
                continue
            entries.append(index_entry(slot_id, slot, summary_fields))
        return entries

    def write_index(self, entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Write ``index.json`` from index entries of the slots on disk."""
        ordered = sorted(entries, key=lambda entry: entry["slot_id"])
        index = {"kind": self.kind, "count": len(ordered), "built_at": utc_now(), "slots": ordered}
        self.files.replace(self.layout.index(self.kind), orjson.dumps(index, option=orjson.OPT_APPEND_NEWLINE))
        return index

    def patch_index(self, changes: Mapping[str, Mapping[str, Any]]) -> bool:
        """Replace the entries of ``changes`` (by slot id) in ``index.json`` as bytes, and its
        ``built_at``, instead of parsing and writing every entry: an enrichment that changes
        a few hundred entries of a large index. Only the layout ``write_index`` makes is
        patched (compact JSON, entries sorted by slot id, each starting ``{"slot_id":``; a ``"``
        in a string is always escaped, so ``{"slot_id":`` is never inside one; it starts exactly
        ``count`` entries, so none inside an entry). False, nothing written, when the file is
        not that, a slot of ``changes`` is not in it, or its bytes there are not one whole
        entry: the caller rewrites the index whole."""
        path = self.layout.index(self.kind)
        try:
            data = self.files.read(path)
        except (OSError, ValueError):
            return False
        head = _INDEX_HEAD.match(data)
        if head is None or not data.endswith(b"}]}\n"):
            return False
        ids = [orjson.loads(text) for text in _ENTRY_ID.findall(data)]
        if len(ids) != int(head.group(1)) or data.count(_ENTRY_SEPARATOR) != len(ids) - 1 \
                or any(a >= b for a, b in itertools.pairwise(ids)):
            return False  # not one entry per id in write_index's order (a duplicate, a hand edit, nesting)
        parts, cursor = [data[:head.start(2)], orjson.dumps(utc_now()), data[head.end(2):head.end()]], head.end()
        end_of_entries = len(data) - len(b"]}\n")
        for slot_id in sorted(changes):
            key = _ENTRY_START + orjson.dumps(slot_id)
            found = data.find(key, cursor)
            if found < 0 or data[found + len(key):found + len(key) + 1] not in (b",", b"}") \
                    or data[found - 1:found] not in (b"[", b","):
                return False
            after = data.find(_ENTRY_SEPARATOR, found)
            after = end_of_entries if after < 0 else after + 1
            if not _is_entry(data[found:after], slot_id):
                return False
            parts += [data[cursor:found], orjson.dumps(changes[slot_id])]
            cursor = after
        parts.append(data[cursor:])
        self.files.replace(path, b"".join(parts))
        return True

    def write_roster(self, content: Mapping[str, Any]) -> str:
        """The kind's roster (``roster.json``): ``content`` in place of the stored one, the
        sections later steps own (``ENRICHMENTS``: the cross-match's summary, TNS's counts) kept."""
        return update_roster(self.layout, self.kind, content, replace=True, keep=ENRICHMENTS)


def is_reserved(stem: str) -> bool:
    """Whether a file stem is a kind-level file's (``index``, ``roster``), in any case:
    ``INDEX.json`` would be ``index.json`` on a case-insensitive file system."""
    return stem.lower() in KIND_FILE_STEMS
