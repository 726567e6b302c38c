"""What the site was made from: ``<storehouse>/state/pages.json`` and the records it names.

Per kind, per slot file stem, a ``Record``: the slot file's stamp (inode, size, mtime,
ctime: any rewrite, restore or replacement changes it; a gw slot's also covers its sky-map
file), the slot's id and summary (``summaries``), the slots its page links to, and the
digest of the page's bytes (and of its image, for gw). A slot whose stamp is the recorded
one has the recorded summary and page: it is not opened. Its page is rendered again when
the summary of a slot it links to changed (or appeared, or went) since the state was saved:
every page was made from the summaries the state records.

The records are a columnar Arrow file in ``state/pages/`` (``records-<generation>.arrow``:
read at once, every summary checked to begin with its slot's id and stem, and decoded when a
page or the index first needs it, and checked again then: a summary that is not its slot's
raises ``RecordsUnreadable`` and the run starts again with no state); ``pages.json``
names it (its digest, and its file's stamp when saved: the same file is not digested again), the site directory and the site's version (its style, script and page
code, and the cross-match's rules the pages draw), and is written last, so it commits the records. Another directory or version is no state. A
state that is missing, unreadable or of another layout is no state either: the next run
renders every page, and writes only those whose bytes differ.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from alert_pipeline.durable import write_atomically
from alert_pipeline.storehouse.collector import held_off
from alert_pipeline.storehouse.layout import StateFile, StorehouseLayout, read_bounded_with_status
from alert_pipeline.storehouse.site.summaries import well_formed

log = logging.getLogger("transient_kind_builder")
#: The site's memory between runs: ``state/pages.json`` and ``state/pages/``.
STATE_NAME = "pages"
STATE_VERSION = 2
RECORDS_FILE = re.compile(r"records-(\d+)\.arrow")
#: The largest records file read (~600 bytes a slot: a million slots and more).
MAX_RECORDS_BYTES = 1 << 30
#: What a recorded kind and stem must look like (they name files under the site, which a
#: run may remove): never a path.
KIND_NAME, STEM = r"^[a-z][a-z0-9_]*$", r"^[^/\x00.][^/\x00]*$"
#: A link as the records store it: kind and slot id (a kind name holds no ``/``).
LINK_SEPARATOR = "/"


class RecordsUnreadable(Exception):  # noqa: N818 - not a ValueError: no per-slot guard may take it
    """A recorded summary, decoded when first needed, is not its slot's: the records are no state."""


@dataclass(slots=True)
class Record:
    """What the site knows of one slot. ``summary`` is its JSON as stored (compared and written
    as bytes), ``decoded`` the same summary as a dict once decoded (read it with ``summary_of``)."""

    stamp: str | None
    slot_id: str
    stem: str
    summary: bytes
    links: list[str]
    page: str | None
    decoded: dict[str, Any] | None = None


def link_key(kind: str, slot_id: str) -> str:
    return f"{kind}{LINK_SEPARATOR}{slot_id}"


def record_of(stamp: str | None, found: dict[str, Any], links: list[tuple[str, str]], page: str | None) -> Record:
    return Record(stamp, found["id"], found["stem"], orjson.dumps(found), [link_key(*pair) for pair in links], page,
                  found)


def summary_of(record: Record) -> dict[str, Any]:
    """A record's summary (treat it as read-only), decoded on first use: a rerun with nothing
    to render decodes none of 100,000. ``RecordsUnreadable`` when it is not its slot's."""
    if record.decoded is None:
        try:
            decoded = orjson.loads(record.summary)
        except orjson.JSONDecodeError as exc:
            raise RecordsUnreadable(f"the summary of {record.stem} is not JSON ({exc})") from None
        if not (isinstance(decoded, dict) and decoded.get("id") == record.slot_id
                and decoded.get("stem") == record.stem and well_formed(decoded)):
            raise RecordsUnreadable(f"the summary of {record.stem} is not its slot's")
        record.decoded = decoded
    return record.decoded


def summary_prefix(slot_id: str, stem: str) -> bytes:
    """How a slot's summary begins (``summaries.summary`` puts its id and stem first)."""
    return orjson.dumps({"id": slot_id, "stem": stem})[:-1] + b","


def file_stamp(path: str, dir_fd: int | None = None) -> str | None:
    """What changes whenever the file is replaced or rewritten (None when it is missing);
    ``dir_fd``: ``path`` is relative to that directory (one name looked up, not a path)."""
    try:
        found = os.stat(path, dir_fd=dir_fd)
    except OSError:
        return None
    return stamp(found)


def stamp(found: os.stat_result) -> str:
    """A file's stamp from its status."""
    return f"{found.st_ino}:{found.st_size}:{found.st_mtime_ns}:{found.st_ctime_ns}"


@functools.cache
def site_version() -> str:
    """A digest of the code and assets that make the pages: a new version renders every page
    again. Taken once per process, from the files as they were when it first ran (the code
    it runs: an edit meanwhile is seen by the next process)."""
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read())
    return digest.hexdigest()


def _state_file(storehouse: str) -> StateFile:
    return StateFile(StorehouseLayout.at(storehouse), STATE_NAME)


def _records_directory(storehouse: str) -> str:
    return StorehouseLayout.at(storehouse).state_directory(STATE_NAME)


def empty(out: str, version: str) -> dict[str, Any]:
    """No state: every page is rendered (and written where its bytes differ)."""
    return {"version": STATE_VERSION, "out": out, "site_version": version, "records": None, "index": None}


def load(storehouse: str, out: str, version: str) -> tuple[dict[str, Any], dict[str, dict[str, Record]]]:
    """The recorded state for this site directory and version (its small part, and the
    records by kind and stem), or an empty one."""
    data = _state_file(storehouse).read()
    nothing = empty(out, version)
    if isinstance(data, dict) and isinstance(data.get("out"), str) and data["out"] != out:
        log.info("pages: the site's state is that of %s, not of %s: every page is rendered (and written where it "
                 "differs); the next run into this directory has its state", data["out"], out)
    elif isinstance(data, dict) and data.get("site_version") not in (None, version):
        log.info("pages: the site's code or the cross-match's rules changed since the last run: every page is "
                 "rendered again (and written where it differs)")
    if not (isinstance(data, dict) and data.get("version") == STATE_VERSION and data.get("out") == out
            and data.get("site_version") == version and isinstance(data.get("records"), str)
            and RECORDS_FILE.fullmatch(data["records"]) and isinstance(data.get("records_digest"), str)):
        return nothing, {}
    try:
        found, content = read_bounded_with_status(os.path.join(_records_directory(storehouse), data["records"]),
                                                  MAX_RECORDS_BYTES)
        # The file as saved (the same inode, size, mtime and ctime: no write since) is the file
        # digested then; any other (restored, copied, edited) is digested again.
        if stamp(found) != data.get("records_stamp") and _digest(content) != data["records_digest"]:
            raise ValueError("not the file pages.json names (its digest differs)")
        records = _read_records(content)
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError, MemoryError) as exc:
        log.warning("pages: the site's records %s are unreadable (%s); every page is rendered again",
                    data["records"], str(exc)[:200])
        return nothing, {}
    return data, records


def _digest(content: bytes) -> str:
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([("kind", pa.string()), ("stem", pa.string()), ("stamp", pa.string()), ("id", pa.string()),
                      ("summary", pa.binary()), ("links", pa.list_(pa.string())), ("page", pa.string())])


def _read_records(content: bytes) -> dict[str, dict[str, Record]]:
    """The records of an Arrow file ``save`` wrote (``ValueError`` for anything else: another
    schema, a null where none is written, a kind or stem that is a path, a summary that is
    not the slot's)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.ipc.open_file(pa.py_buffer(content)).read_all()
    if not table.schema.equals(_schema()):
        raise ValueError("records of another layout")
    if any(table[name].null_count for name in ("kind", "stem", "id", "summary", "links")) \
            or pc.any(pc.is_null(pc.list_flatten(table["links"]))).as_py():
        raise ValueError("a record without its kind, stem, id, summary or links")
    for column, pattern in (("kind", KIND_NAME), ("stem", STEM)):  # names that become paths under the site
        if pc.all(pc.match_substring_regex(table[column], pattern), min_count=0).as_py() is not True:
            raise ValueError(f"a {column} that is not a file name")
    records: dict[str, dict[str, Record]] = {}
    with held_off():  # 100,000 new objects, none in a cycle: the collector's passes find nothing
        for kind, stem, slot_stamp, slot_id, summary, links, page in zip(
                *(table[name].to_pylist() for name in ("kind", "stem", "stamp", "id", "summary", "links", "page")),
                strict=True):
            if not summary.startswith(summary_prefix(slot_id, stem)):
                raise ValueError(f"the summary of {kind}/{stem} is not its slot's")
            found = records.get(kind)
            if found is None:
                found = records[kind] = {}
            found[stem] = Record(slot_stamp, slot_id, stem, summary, links, page)
    return records


def save(storehouse: str, data: dict[str, Any], records: Mapping[str, Mapping[str, Record]]) -> None:
    """Write the records as a new generation, then ``pages.json`` naming it (the commit),
    then remove the generations no longer named."""
    import pyarrow as pa

    directory = _records_directory(storehouse)
    os.makedirs(directory, exist_ok=True)
    taken = [int(found.group(1)) for found in map(RECORDS_FILE.fullmatch, [data.get("records") or "",
                                                                         *os.listdir(directory)]) if found]
    name = f"records-{max(taken, default=0) + 1}.arrow"  # never a name in use, whatever holds it
    schema = _schema()
    with held_off():  # columns of 100,000 values each: nothing in them is a cycle to look for
        rows = [(kind, stem, record.stamp, record.slot_id, record.summary, record.links, record.page)
                for kind, found in records.items() for stem, record in found.items()]
        columns = list(zip(*rows, strict=True)) or [() for _ in schema]
        table = pa.Table.from_arrays([pa.array(values, field.type) for values, field in zip(columns, schema,
                                                                                              strict=True)],
                                     schema=schema)
        del rows, columns
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        content = sink.getvalue()
    path = os.path.join(directory, name)
    write_atomically(path, content)
    data["records"], data["records_digest"], data["records_stamp"] = name, _digest(content), file_stamp(path)
    _state_file(storehouse).write(data)
    for found in os.listdir(directory):
        if RECORDS_FILE.fullmatch(found) and found != name:
            with contextlib.suppress(IsADirectoryError, FileNotFoundError, PermissionError):
                os.unlink(os.path.join(directory, found))  # a directory planted under such a name stays
