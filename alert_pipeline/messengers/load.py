"""Items → slots of the messenger kinds, with the rules that merge versions of an event.

``MessengerStore.apply`` writes one item at a time (so a sky map is held only while its
event is written) and ``finish`` rebuilds the index and roster of every kind it touched,
from the files on disk, then syncs. Writes go through the storehouse: atomic, and a slot
whose content did not change is not rewritten. The rules:

* gw: a later alert of a superevent (by ``time_created``) replaces the earlier slot and
  its sky map (``<slot>.multiorder.fits``, written before the slot that names it); an
  older one is skipped (``superseded``); a RETRACTION keeps the slot and marks it
  ``retracted``;
* neutrino: a later row or notice of the same event replaces the earlier; another event
  under the same name is stored as ``NAME-RUN-EVENT``;
* uhecr: a later row of the same experiment and second replaces the earlier;
* every kind: the fields later steps add (``storehouse.ENRICHMENTS``) are kept (by the
  storehouse's ``write_slot``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import kinds
from ..durable import write_atomically
from ..storehouse import KindStore, utc_now
from . import gw, neutrino
from .events import Item, Skipped
from .formats import read_file

log = logging.getLogger("transient_kind_builder")
#: The slot field each messenger kind's roster counts by.
ROSTER_FIELDS = {gw.KIND: "alert_type", neutrino.KIND: "stream", "uhecr": "experiment"}
#: The roster's name for slots without that field (a GW event from a bare sky-map file).
UNLABELLED = {gw.KIND: "sky-map file"}


@dataclass
class LoadReport:
    written: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"written": dict(self.written), "unchanged": dict(self.unchanged),
                "skipped": dict(sorted(self.skipped.items()))}


class MessengerStore:
    """The messenger kinds of one storehouse, written item by item."""

    def __init__(self, storehouse: str) -> None:
        self.storehouse = storehouse
        self.report = LoadReport()
        self._stores: dict[str, KindStore] = {}

    def store(self, kind: str) -> KindStore:
        if kind not in self._stores:
            self._stores[kind] = kinds.spec(kind).store(self.storehouse)
        return self._stores[kind]

    def apply(self, item: Item) -> None:
        """Write one item's slot (or count its problem)."""
        if item.problem is not None:
            self.skip(item.where, item.problem)
            return
        store = self.store(item.kind)
        slot = dict(item.slot)
        existing = store.read_slot(slot["slot_id"])
        try:
            if item.kind == neutrino.KIND:
                slot["slot_id"] = neutrino.distinct_name(existing, slot)
                if slot["slot_id"] != item.slot["slot_id"]:
                    existing = store.read_slot(slot["slot_id"])
            if item.kind == gw.KIND:
                slot = self._gw(store, slot, existing, item)
        except Skipped as problem:
            self.skip(item.where, problem)
            return
        slot["provenance"] = {"source": item.where, "built_at": utc_now()}
        written = store.write_slot(slot["slot_id"], slot, exists=existing is not None)
        (self.report.written if written else self.report.unchanged)[item.kind] += 1

    def skip(self, where: str, problem: Skipped) -> None:
        self.report.skipped[problem.reason] += 1
        log.warning("skipped %s: %s (%s)", where, problem, problem.reason)

    def _gw(self, store: KindStore, slot: dict[str, Any], existing: dict[str, Any] | None,
            item: Item) -> dict[str, Any]:
        if slot.get("alert_type") == "RETRACTION":
            if existing is None:
                raise Skipped("retraction_of_unknown", f"a retraction of {slot['slot_id']}, which has no slot")
            return {**existing, "retracted": True, "retraction_time_created": item.order}
        newer, older = item.order, (existing or {}).get("alert_time_created")
        if older and slot.get("alert_time_created") and newer < older:
            raise Skipped("superseded", f"an alert of {newer}, older than the stored one of {older}")
        if existing and existing.get("retracted") and older and newer < (existing.get("retraction_time_created") or ""):
            slot["retracted"] = True
        path = os.path.join(store.directory, gw.skymap_name(slot["slot_id"]))
        data = item.skymap.fits_bytes()
        if not (os.path.exists(path) and _same_bytes(path, data)):
            write_atomically(path, data, durable=False)
        return slot

    def sync(self) -> None:
        """Make every slot written so far durable (one filesystem sync per kind)."""
        for store in self._stores.values():
            store.sync()

    def finish(self) -> dict[str, Any]:
        """Rebuild the index and roster of every kind written to, sync; the rosters."""
        rosters = {}
        for kind, store in self._stores.items():
            spec = kinds.spec(kind)
            index = store.rebuild_index(spec.index_fields)
            grouped = Counter(entry.get(ROSTER_FIELDS[kind]) or UNLABELLED.get(kind, "unknown")
                              for entry in index["slots"])
            roster = {"objects": index["count"], f"by_{ROSTER_FIELDS[kind]}": dict(sorted(grouped.items())),
                      "last_load": {"written": self.report.written[kind], "unchanged": self.report.unchanged[kind]},
                      "built_at": index["built_at"]}
            if kind == gw.KIND:
                roster["retracted"] = sum(1 for entry in index["slots"] if entry.get("retracted"))
            store.write_report_file("roster", roster)
            store.sync()
            rosters[kind] = roster
        return rosters


def load_files(storehouse: str, paths: Iterable[str], accept_mock: bool = False) -> tuple[LoadReport, dict]:
    """Load every file; the report and the rosters. A sky map is written as soon as it
    is read; the other events are applied once each after all files are read, the last
    version of an event (in file order, then row order) winning, so loading the same
    files again rewrites nothing."""
    target = MessengerStore(storehouse)
    items = (item for path in paths for item in read_file(path, accept_mock))
    for item in last_revisions(items, target):
        target.apply(item)
    return target.report, target.finish()


def last_revisions(items: Iterable[Item], target: MessengerStore) -> list[Item]:
    """``items`` with each event's earlier revisions dropped (problems counted as they
    come; gw items, which carry a sky map, applied at once)."""
    latest: dict[tuple, Item] = {}
    for item in items:
        if item.problem is not None or item.kind == gw.KIND:
            target.apply(item)
            continue
        key = (item.kind, item.slot["slot_id"], item.slot.get("run_id"), item.slot.get("event_id"))
        latest.pop(key, None)  # re-inserted last: the order of first appearance is not kept for revisions
        latest[key] = item
    return list(latest.values())


def _same_bytes(path: str, data: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read() == data
