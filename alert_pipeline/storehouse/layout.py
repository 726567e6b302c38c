"""Every path of an event storehouse, declared once, and the one reader or writer of each
kind-level file.

The storehouse's tree::

    <storehouse>/<kind>/<slot stem>.json     one slot (``slots.KindStore``)
    <storehouse>/<kind>/index.json           {"kind", "count", "built_at", "slots": [...]}
    <storehouse>/<kind>/roster.json          the kind's counts, a section per step
    <storehouse>/state/<name>.json           a step's memory between runs (build, crossmatch …)
    <storehouse>/state/<name>/               a step's memory that is more than one file (tns)
    <storehouse>/quarantine/<source>/        what a source sent that could not be used (gcn)
    <storehouse>/catalogues/<name>/          a catalogue (a galaxy catalogue as HATS)
    <storehouse>/catalogues/.staging/        a catalogue being built (swapped in when whole)
    <storehouse>/site/                       the static site (``pages``)

Nothing else in the package joins these names: a module asks a ``StorehouseLayout`` for
a path, reads an index with ``read_index``, updates a roster with ``update_roster`` and
keeps its state with ``StateFile``. The cron wrapper asks the builder
(``transient_kind_builder.py paths``) instead of joining them in shell.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from alert_pipeline.durable import open_regular_fd, read_up_to, write_atomically

log = logging.getLogger("storehouse")

INDEX_NAME = "index.json"
ROSTER_NAME = "roster.json"
STATE_DIRECTORY = "state"
QUARANTINE_DIRECTORY = "quarantine"
CATALOGUES_DIRECTORY = "catalogues"
STAGING_DIRECTORY = ".staging"
SITE_DIRECTORY = "site"
#: Stems of the kind-level files beside the slots: never a slot's.
KIND_FILE_STEMS = (INDEX_NAME[: -len(".json")], ROSTER_NAME[: -len(".json")])
#: The slot fields (and roster sections) that steps after the build own, by step: part of
#: the storehouse's layout, since every writer of a slot must keep them (a rebuild of a
#: slot keeps what the cross-match and TNS added). Each enrichment module declares its own
#: as ``ENRICHED_FIELDS[<its name>]``; the slot store keeps them all (``kept_fields``).
ENRICHED_FIELDS: dict[str, tuple[str, ...]] = {
    "crossmatch": ("multimessenger", "transients"),
    "tns": ("tns", "spectroscopic_class"),
    "hosts": ("host", "host_candidates", "n_galaxies_90_volume"),
}


def kept_fields() -> tuple[str, ...]:
    """Every enrichment's fields, which a writer of a slot keeps when its slot lacks them."""
    return tuple(name for fields in ENRICHED_FIELDS.values() for name in fields)


#: Largest slot, index or state file read (a transient with thousands of alerts is ~1 MB).
MAX_JSON_BYTES = 256 << 20


@dataclass(frozen=True)
class StorehouseLayout:
    """The paths of one storehouse (absolute, so a later ``chdir`` cannot move them)."""

    root: str

    @classmethod
    def at(cls, storehouse: str) -> StorehouseLayout:
        return cls(os.path.abspath(storehouse))

    def kind(self, kind: str) -> str:
        return os.path.join(self.root, kind)

    def index(self, kind: str) -> str:
        return os.path.join(self.root, kind, INDEX_NAME)

    def roster(self, kind: str) -> str:
        return os.path.join(self.root, kind, ROSTER_NAME)

    def state_file(self, name: str) -> str:
        return os.path.join(self.root, STATE_DIRECTORY, f"{name}.json")

    def state_directory(self, name: str) -> str:
        return os.path.join(self.root, STATE_DIRECTORY, name)

    def quarantine(self, source: str) -> str:
        return os.path.join(self.root, QUARANTINE_DIRECTORY, source)

    def catalogues(self) -> str:
        return os.path.join(self.root, CATALOGUES_DIRECTORY)

    def catalogue(self, name: str) -> str:
        return os.path.join(self.root, CATALOGUES_DIRECTORY, name)

    def catalogue_staging(self, name: str, suffix: str = "") -> str:
        """Where catalogue ``name`` is built (``suffix`` "": the catalogue itself, whose
        leaf must be its name, as hats-import records it; ".parts", ".tmp", ".old": its
        inputs, scratch and the replaced one) before it is swapped in."""
        return os.path.join(self.root, CATALOGUES_DIRECTORY, STAGING_DIRECTORY, name + suffix)

    def site(self) -> str:
        return os.path.join(self.root, SITE_DIRECTORY)

    def named_paths(self, kinds: tuple[str, ...]) -> dict[str, str]:
        """The paths a tool beside the builder may ask for by name (``paths``): each kind's
        directory and index, and the site."""
        paths = {"storehouse": self.root, "site": self.site(), "catalogues": self.catalogues()}
        for kind in kinds:
            paths[f"{kind}-directory"] = self.kind(kind)
            paths[f"{kind}-index"] = self.index(kind)
        return paths


def file_stamp(path: str) -> bytes | None:
    """What changes whenever the file is replaced or rewritten: inode, size, mtime and
    ctime (a restore may set the mtime back, never the ctime). None when it is missing."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return b"%d:%d:%d:%d" % (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def read_json_file(path: str) -> Any:
    """A JSON file's content, or None when it is missing or not JSON (orjson, falling
    back to json for what orjson refuses)."""
    return read_json_file_with_status(path)[1]


def read_json_file_with_status(path: str) -> tuple[os.stat_result | None, Any]:
    """``read_json_file``, with the status of the file read (``read_bounded_with_status``);
    (None, None) when it cannot be read or is not JSON."""
    try:
        found, data = read_bounded_with_status(path)
        return found, parse_json(data)
    except (OSError, ValueError, RecursionError):
        return None, None


def read_bounded(path: str, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a file of the storehouse, which must be a regular file itself (a link,
    a FIFO or a device planted in its place is refused, never followed or waited on) of at
    most ``limit`` bytes (``ValueError`` beyond)."""
    return read_bounded_with_status(path, limit)[1]


def read_bounded_with_status(path: str, limit: int = MAX_JSON_BYTES) -> tuple[os.stat_result, bytes]:
    """``read_bounded``, with the status of the file read (taken on the open file before it
    was read: a file rewritten meanwhile has changed since). The read asks for the file's
    size, not the limit, so a small file never costs the limit's memory."""
    fd, found = open_regular_fd(path)
    try:
        expected = min(found.st_size, limit)
        data = read_up_to(fd, expected + 1)
        if len(data) > expected:  # the file grew while it was read: the rest, up to the limit
            data += read_up_to(fd, limit + 1 - len(data))
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than a storehouse JSON file may be ({limit} bytes)")
    return found, data


def parse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # e.g. an integer beyond 64 bits, which orjson refuses


class IndexUnreadable(ValueError):
    """A kind's index is missing or not the shape the storehouse writes."""


def read_index(layout: StorehouseLayout, kind: str) -> tuple[list[dict[str, Any]], int]:
    """A kind's index entries that name a slot, and how many entries did not (a
    hand-edited index). ``IndexUnreadable`` (naming the file) when there is no usable index."""
    path = layout.index(kind)
    try:
        entries = parse_json(read_bounded(path))["slots"]
        if not isinstance(entries, list):
            raise TypeError("its slots are not a list")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise IndexUnreadable(f"{path}: {exc}") from None
    usable = [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("slot_id"), str)]
    return usable, len(entries) - len(usable)


def read_roster(layout: StorehouseLayout, kind: str) -> dict[str, Any]:
    """A kind's roster ({} when there is none or it is unreadable)."""
    roster = read_json_file(layout.roster(kind))
    return roster if isinstance(roster, dict) else {}


def update_roster(layout: StorehouseLayout, kind: str, sections: Mapping[str, Any],
                  replace: bool = False, keep: tuple[str, ...] = ()) -> str:
    """Write a kind's roster with ``sections`` (each step owns its keys): merged into the
    stored roster, or, with ``replace`` (the build, which owns the roster's body), in place
    of it except for the ``keep`` sections other steps own. Returns its path."""
    path = layout.roster(kind)
    stored = read_roster(layout, kind)
    kept = {key: stored[key] for key in keep if key in stored} if replace else stored
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, json.dumps({**kept, **sections}, indent=1, sort_keys=True).encode() + b"\n")
    return path


@dataclass(frozen=True)
class StateFile:
    """A step's memory between runs (``state/<name>.json``): trusted only when it is the
    shape the step writes (``valid``), else the step starts afresh and says so, so a
    hand-edited or torn state file can cost work but never a wrong result."""

    layout: StorehouseLayout
    name: str
    valid: Callable[[Any], bool] = lambda content: isinstance(content, dict)
    #: What starting afresh means for the step, as its warning says it.
    afresh: str = "starting afresh"

    @property
    def path(self) -> str:
        return self.layout.state_file(self.name)

    def read(self) -> Any:
        """The stored state, or None (missing, unreadable or not trusted: logged)."""
        try:
            content = parse_json(read_bounded(self.path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:  # a link, a FIFO, torn or huge: said, not trusted
            log.warning("%s is unreadable (%s); %s", self.path, str(exc)[:200], self.afresh)
            return None
        if not self.valid(content):
            log.warning("%s holds a state this tool did not write; %s", self.path, self.afresh)
            return None
        return content

    def write(self, content: Any) -> None:
        """Replace the state atomically (after the work it records is synced)."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        write_atomically(self.path, orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
