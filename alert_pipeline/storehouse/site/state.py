"""What the site was made from: ``<storehouse>/state/pages.json`` and the records it names.

Per kind, per slot file stem, a ``Record``: the slot file's stamp (inode, size, mtime,
ctime: any rewrite, restore or replacement changes it; a gw slot's also covers its sky-map
file), the slot's id and summary (``summaries``), the slots its page links to, and the
digest of the page's bytes (and of its image, for gw). A slot whose stamp is the recorded
one has the recorded summary and page: it is not opened. Its page is rendered again when
the summary of a slot it links to changed (or appeared, or went) since the state was saved:
every page was made from the summaries the state records.

The records are a columnar Arrow file in ``state/pages/`` (``records-<generation>.arrow``:
read at once, the summaries decoded only when a page or the index needs them); ``pages.json``
names it, the site directory and the site's version (its style, script and page code), and
is written last, so it commits the records. Another directory or version is no state. A
state that is missing, unreadable or of another layout is no state either: the next run
renders every page, and writes only those whose bytes differ.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from alert_pipeline.durable import write_atomically
from alert_pipeline.storehouse.layout import StateFile, StorehouseLayout

log = logging.getLogger("transient_kind_builder")
#: The site's memory between runs: ``state/pages.json`` and ``state/pages/``.
STATE_NAME = "pages"
STATE_VERSION = 2
RECORDS_FILE = re.compile(r"records-(\d+)\.arrow")
#: What a recorded kind and stem must look like (they name files under the site, which a
#: run may remove): never a path.
KIND_NAME, STEM = r"^[a-z][a-z0-9_]*$", r"^[^/\x00.][^/\x00]*$"
#: A link as the records store it: kind and slot id (a kind name holds no ``/``).
LINK_SEPARATOR = "/"


@dataclass(slots=True)
class Record:
    """What the site knows of one slot. ``summary`` is its JSON (decoded by ``summary_of``)."""

    stamp: str | None
    slot_id: str
    summary: bytes
    links: list[str]
    page: str | None
    decoded: dict[str, Any] | None = None


def link_key(kind: str, slot_id: str) -> str:
    return f"{kind}{LINK_SEPARATOR}{slot_id}"


def record_of(stamp: str | None, found: dict[str, Any], links: list[tuple[str, str]], page: str | None) -> Record:
    return Record(stamp, found["id"], orjson.dumps(found), [link_key(*pair) for pair in links], page, found)


def summary_of(record: Record) -> dict[str, Any]:
    """A record's summary (decoded once; treat it as read-only)."""
    if record.decoded is None:
        record.decoded = orjson.loads(record.summary)
    return record.decoded


def file_stamp(path: str, dir_fd: int | None = None) -> str | None:
    """What changes whenever the file is replaced or rewritten (None when it is missing);
    ``dir_fd``: ``path`` is relative to that directory (one name looked up, not a path)."""
    try:
        found = os.stat(path, dir_fd=dir_fd)
    except OSError:
        return None
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


def load(storehouse: str, out: str, version: str) -> tuple[dict[str, Any], dict[str, dict[str, Record]]]:
    """The recorded state for this site directory and version (its small part, and the
    records by kind and stem), or an empty one."""
    data = _state_file(storehouse).read()
    empty = {"version": STATE_VERSION, "out": out, "site_version": version, "records": None, "index": None}
    if not (isinstance(data, dict) and data.get("version") == STATE_VERSION and data.get("out") == out
            and data.get("site_version") == version and isinstance(data.get("records"), str)
            and RECORDS_FILE.fullmatch(data["records"])):
        return empty, {}
    try:
        records = _read_records(os.path.join(_records_directory(storehouse), data["records"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("pages: the site's records %s are unreadable (%s); every page is rendered again",
                    data["records"], str(exc)[:200])
        return empty, {}
    return data, records


def _read_records(path: str) -> dict[str, dict[str, Record]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    for column, pattern in (("kind", KIND_NAME), ("stem", STEM)):  # names that become paths under the site
        if pc.all(pc.match_substring_regex(table[column], pattern), skip_nulls=False, min_count=0).as_py() is not True:
            raise ValueError(f"a {column} that is not a file name")
    if any(table[name].null_count for name in ("kind", "stem", "id", "summary")):
        raise ValueError("a record without its kind, stem, id or summary")
    records: dict[str, dict[str, Record]] = {}
    with _no_collection():  # 100,000 new objects, none in a cycle: the collector's passes find nothing
        for kind, stem, stamp, slot_id, summary, links, page in zip(
                *(table[name].to_pylist() for name in ("kind", "stem", "stamp", "id", "summary", "links", "page")),
                strict=True):
            found = records.get(kind)
            if found is None:
                found = records[kind] = {}
            found[stem] = Record(stamp, slot_id, summary, links, page)
    return records


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def save(storehouse: str, data: dict[str, Any], records: Mapping[str, Mapping[str, Record]]) -> None:
    """Write the records as a new generation, then ``pages.json`` naming it (the commit),
    then remove the generations no longer named."""
    import pyarrow as pa

    directory = _records_directory(storehouse)
    os.makedirs(directory, exist_ok=True)
    previous = RECORDS_FILE.fullmatch(data.get("records") or "")
    name = f"records-{int(previous.group(1)) + 1 if previous else 1}.arrow"
    rows = list(_rows(records))
    table = pa.table({"kind": pa.array([row[0] for row in rows], pa.string()),
                      "stem": pa.array([row[1] for row in rows], pa.string()),
                      "stamp": pa.array([row[2].stamp for row in rows], pa.string()),
                      "id": pa.array([row[2].slot_id for row in rows], pa.string()),
                      "summary": pa.array([row[2].summary for row in rows], pa.binary()),
                      "links": pa.array([row[2].links for row in rows], pa.list_(pa.string())),
                      "page": pa.array([row[2].page for row in rows], pa.string())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    write_atomically(os.path.join(directory, name), sink.getvalue())
    data["records"] = name
    _state_file(storehouse).write(data)
    for found in os.listdir(directory):
        if RECORDS_FILE.fullmatch(found) and found != name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, found))


def _rows(records: Mapping[str, Mapping[str, Record]]) -> Iterator[tuple[str, str, Record]]:
    for kind, found in records.items():
        for stem, record in found.items():
            yield kind, stem, record
