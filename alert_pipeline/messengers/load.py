"""Items → slots of the messenger kinds, with the rules that merge versions of an event.

``MessengerStore.apply`` writes one item at a time (so a sky map is held only while its
event is written) and ``finish`` rebuilds the index and roster of every kind it touched,
from the files on disk, then syncs. Writes go through the storehouse: atomic, and a slot
whose content did not change is not rewritten. The rules:

* gw: a later alert of a superevent (by ``time_created``) replaces the earlier slot and
  its sky map (``<slot>.multiorder.fits``, written before the slot that names it); an
  older one is skipped (``superseded``); a RETRACTION keeps the slot and marks it
  ``retracted``;
* neutrino: versions of one event are ranked by ``neutrino.supersedes`` (an IceCat-1 row
  over any GCN notice, the later of two notices, the later of two rows), within a run and
  against the stored slot, so the same files in any order give the same slot; a notice
  that a row replaces, or older than the stored notice, is ``superseded``; another event
  under the same name is stored as ``NAME-RUN-EVENT``;
* uhecr: a later row of the same experiment and second replaces the earlier;
* gw, one event loaded twice (an alert, and its own sky map saved beside it as a FITS
  file): a sky-map file is that event when its ``OBJECT`` names a stored alert's slot,
  or when its ``DATE-OBS`` and map content (``skymap_sha256``) equal a stored slot's;
  the alert's slot is kept (the file counts as unchanged), and an alert arriving after
  the file of its own map replaces the file's slot;
* every kind: the fields later steps add (``storehouse.ENRICHMENTS``) are kept (by the
  storehouse's ``write_slot``).

A file of which nothing could be used (no event written or unchanged, at least one
problem) is listed in the report's ``unused``, so the command can say so loudly;
problems inside a file that otherwise loaded are only counted in ``skipped``.

Each skipped item is counted; the first ``LOGGED_SKIPS_PER_REASON`` of each reason are
logged in full and the rest in one line per reason at the end (250,000 bad rows must not
make 250,000 WARNING lines).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import kinds
from ..durable import open_regular, write_atomically
from ..storehouse import KindStore, utc_now
from . import gw, neutrino
from .events import Item, Skipped
from .formats import read_file

log = logging.getLogger("transient_kind_builder")
#: The slot field each messenger kind's roster counts by.
ROSTER_FIELDS = {gw.KIND: "alert_type", neutrino.KIND: "stream", "uhecr": "experiment"}
#: The roster's name for slots without that field (a GW event from a bare sky-map file).
UNLABELLED = {gw.KIND: "sky-map file"}


#: What ``MessengerStore.apply`` did with an item: "written", "unchanged", or the problem.
Outcome = str | Skipped
#: Problems that still mean the event was read and is stored (an older alert of a stored
#: superevent: loading a folder of alerts again must not call its older files unused).
KNOWN_ALREADY = ("superseded",)
#: How many skipped items of one reason are logged one by one (the rest: one line at the end).
LOGGED_SKIPS_PER_REASON = 20


@dataclass
class LoadReport:
    """Counts by kind (written, unchanged) and by reason (skipped); ``unused`` lists the
    files of which nothing could be used: {"file": path as given, "reason", "detail"}."""

    written: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    unused: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"written": dict(self.written), "unchanged": dict(self.unchanged),
                "skipped": dict(sorted(self.skipped.items())), "unused": list(self.unused)}


@dataclass
class _FileUse:
    """What one file gave: events used (written, unchanged or revised by a later file)
    and its problems."""

    used: int = 0
    problems: list[Skipped] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        if isinstance(outcome, Skipped) and outcome.reason not in KNOWN_ALREADY:
            self.problems.append(outcome)
        else:
            self.used += 1

    def unused_entry(self, path: str) -> dict[str, Any] | None:
        """The report's ``unused`` entry when nothing of the file could be used."""
        if self.used or not self.problems:
            return None
        first = self.problems[0]
        detail = str(first)
        if len(self.problems) > 1:
            reasons = Counter(problem.reason for problem in self.problems)
            detail += f" (and {len(self.problems) - 1} more problems: {dict(sorted(reasons.items()))})"
        return {"file": path, "reason": first.reason, "detail": detail}


class MessengerStore:
    """The messenger kinds of one storehouse, written item by item."""

    def __init__(self, storehouse: str) -> None:
        self.storehouse = storehouse
        self.report = LoadReport()
        self._stores: dict[str, KindStore] = {}
        self._gw_identity: dict[tuple[str, str], str] | None = None
        self._skips_by_reason: Counter = Counter()

    def store(self, kind: str) -> KindStore:
        if kind not in self._stores:
            self._stores[kind] = kinds.spec(kind).store(self.storehouse)
        return self._stores[kind]

    def apply(self, item: Item) -> Outcome:
        """Write one item's slot (or count its problem); what was done."""
        if item.problem is not None:
            self.skip(item.where, item.problem)
            return item.problem
        store = self.store(item.kind)
        slot = dict(item.slot)
        try:
            existing = store.read_slot(slot["slot_id"])
            if item.kind == neutrino.KIND:
                slot["slot_id"] = neutrino.distinct_name(existing, slot)
                if slot["slot_id"] != item.slot["slot_id"]:
                    existing = store.read_slot(slot["slot_id"])
                if existing is not None and not neutrino.supersedes(slot, existing):
                    raise Skipped("superseded", _superseded_detail(slot, existing))
            if item.kind == gw.KIND:
                twin = self._gw(store, slot, existing, item)
                if twin is not None:
                    log.info("%s is the sky map of %s, already stored: kept as it is", item.where, twin)
                    self.report.unchanged[item.kind] += 1
                    return "unchanged"
            slot["provenance"] = {"source": item.where, "built_at": utc_now()}
            written = store.write_slot(slot["slot_id"], slot, exists=existing is not None)
        except Skipped as problem:
            self.skip(item.where, problem)
            return problem
        except ValueError as exc:  # the storehouse refused the slot (its id, its content)
            problem = Skipped("bad_value", f"the storehouse refused it: {exc}")
            self.skip(item.where, problem)
            return problem
        if item.kind == gw.KIND and (key := gw.same_event_key(slot)):
            self._gw_keys(store)[key] = slot["slot_id"]
        (self.report.written if written else self.report.unchanged)[item.kind] += 1
        return "written" if written else "unchanged"

    def skip(self, where: str, problem: Skipped) -> None:
        """Count a skipped item; log it while its reason has been logged fewer than
        ``LOGGED_SKIPS_PER_REASON`` times (``finish`` says how many more there were)."""
        self.report.skipped[problem.reason] += 1
        self._skips_by_reason[problem.reason] += 1
        if self._skips_by_reason[problem.reason] <= LOGGED_SKIPS_PER_REASON:
            log.warning("skipped %s: %s (%s)", where, problem, problem.reason)

    def _log_unlogged_skips(self) -> None:
        """One line per reason for the skipped items not logged one by one."""
        for reason, count in sorted(self._skips_by_reason.items()):
            if count > LOGGED_SKIPS_PER_REASON:
                log.warning("… and %d more skipped as %s", count - LOGGED_SKIPS_PER_REASON, reason)

    def _gw(self, store: KindStore, slot: dict[str, Any], existing: dict[str, Any] | None,
            item: Item) -> str | None:
        """Prepare a gw slot (its sky map written beside it); the id of the stored slot
        this event already is, when it is a sky-map file of an event stored from its alert."""
        if slot.get("alert_type") == "RETRACTION":
            if existing is None:
                raise Skipped("retraction_of_unknown", f"a retraction of {slot['slot_id']}, which has no slot")
            slot.clear()
            slot.update({**existing, "retracted": True, "retraction_time_created": item.order})
            return None
        from_file = slot.get("alert_type") is None
        if from_file and existing is not None and existing.get("alert_type"):
            return slot["slot_id"]  # OBJECT names the superevent already stored from its alert
        key = gw.same_event_key(slot)
        twin = self._gw_keys(store).get(key) if key else None
        if twin is not None and twin != slot["slot_id"]:
            if from_file:
                return twin
            self._drop_file_slot(store, twin)
        newer, older = item.order, (existing or {}).get("alert_time_created")
        if older and slot.get("alert_time_created") and newer < older:
            raise Skipped("superseded", f"an alert of {newer}, older than the stored one of {older}")
        if existing and existing.get("retracted") and older and newer < (existing.get("retraction_time_created") or ""):
            slot["retracted"] = True
        path = os.path.join(store.directory, gw.skymap_name(slot["slot_id"]))
        data = item.skymap.fits_bytes()
        if not (os.path.exists(path) and _same_bytes(path, data)):
            write_atomically(path, data, durable=False)
        return None

    def _gw_keys(self, store: KindStore) -> dict[tuple[str, str], str]:
        """(DATE-OBS, map digest) → slot id of the stored gw slots, read once per run."""
        if self._gw_identity is None:
            self._gw_identity = {}
            for slot_id in sorted(store.slot_ids_on_disk()):
                stored = store.read_slot(slot_id)
                if stored and (key := gw.same_event_key(stored)):
                    self._gw_identity.setdefault(key, slot_id)
        return self._gw_identity

    def _drop_file_slot(self, store: KindStore, slot_id: str) -> None:
        """Remove a slot made from a bare sky-map file, now that its event's alert came."""
        stored = store.read_slot(slot_id)
        if stored is None or stored.get("alert_type"):
            return  # only a sky-map file's slot gives way
        for name in (gw.skymap_name(slot_id), os.path.basename(store.slot_path(slot_id))):
            try:
                os.remove(os.path.join(store.directory, name))
            except FileNotFoundError:
                pass
        log.warning("gw slot %s (from a sky-map file) replaced by its event's alert", slot_id)

    def sync(self) -> None:
        """Make every slot written so far durable (one filesystem sync per kind)."""
        for store in self._stores.values():
            store.sync()

    def finish(self) -> dict[str, Any]:
        """Rebuild the index and roster of every kind written to, sync; the rosters."""
        self._log_unlogged_skips()
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
    files again rewrites nothing. Each file's reader is guarded (``formats``): a file
    that fails costs itself, and the events of the files before and after it are written."""
    target = MessengerStore(storehouse)
    uses: dict[str, _FileUse] = {}
    latest: dict[tuple, tuple[str, Item]] = {}
    for path in paths:
        use = uses.setdefault(path, _FileUse())
        for item in read_file(path, accept_mock):
            if item.problem is not None or item.kind == gw.KIND:
                use.count(target.apply(item))
                continue
            key = (item.kind, item.slot["slot_id"], item.slot.get("run_id"), item.slot.get("event_id"))
            held = latest.get(key)
            if held is None or _replaces(item, held[1]):
                latest.pop(key, None)  # re-inserted last: the order of first appearance is not kept
                latest[key] = (path, item)
                loser_path, loser = held if held is not None else (None, None)
            else:
                loser_path, loser = path, item
            if loser is not None:
                uses[loser_path].used += 1  # revised by another version: it was read and used
                _count_superseded(target, loser, latest[key][1])
    for path, item in latest.values():
        uses[path].count(target.apply(item))
    target.report.unused = [entry for path, use in uses.items() if (entry := use.unused_entry(path))]
    return target.report, target.finish()


def _replaces(new: Item, held: Item) -> bool:
    """Whether ``new`` replaces ``held``, two versions of one event read in this run (the
    neutrino ranking; otherwise the later read)."""
    return new.kind != neutrino.KIND or neutrino.supersedes(new.slot, held.slot)


def _count_superseded(target: MessengerStore, loser: Item, winner: Item) -> None:
    """Count a notice that a catalogue row of its event replaced as ``superseded``."""
    if loser.kind == neutrino.KIND and neutrino.is_notice_beaten_by_catalogue(loser.slot, winner.slot):
        target.skip(loser.where, Skipped("superseded", _superseded_detail(loser.slot, winner.slot)))


def _superseded_detail(loser: dict[str, Any], winner: dict[str, Any]) -> str:
    """Why a neutrino version gives way to another of its event."""
    if winner.get("source_type") == neutrino.CATALOGUE:
        return f"a notice of {loser['slot_id']}; its IceCat-1 row (the offline reconstruction) is kept"
    return f"a notice of {loser.get('notice_time')}, older than the one of {winner.get('notice_time')}"


def _same_bytes(path: str, data: bytes) -> bool:
    """Whether the regular file ``path`` holds ``data`` (a link or a FIFO in its place
    does not, and is replaced by the atomic write)."""
    try:
        with open_regular(path) as handle:
            return os.fstat(handle.fileno()).st_size == len(data) and handle.read(len(data) + 1) == data
    except OSError:
        return False
