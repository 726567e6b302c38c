"""Items → slots of the messenger kinds, with the rules that merge versions of an event.

``MessengerStore.apply`` writes one item at a time (so a large item is held only while its
event is written) and ``finish`` rebuilds the index and roster of every kind it touched,
from the files on disk, then syncs. Writes go through the storehouse: atomic, and a slot
whose content did not change is not rewritten. The rules:

* each kind's own revision rule (``MessengerKind.revision``, declared in its module):
  how a new version of an event meets the slot stored under its id (a later alert
  supersedes, a retraction marks, a catalogue row outranks a notice; by default the new
  version replaces the stored one);
* within a run, two versions of one event read from the files: the kind's ``replaces``
  decides (by default the later read), and the one that gave way is counted when the
  kind's ``superseded`` says so; a kind whose items are large (``streamed``: sky maps)
  is written as it is read;
* every kind: the fields later steps add (``layout.ENRICHED_FIELDS``) are kept (by the
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
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.messengers.events import Item, Skipped
from alert_pipeline.storehouse.messengers.formats import read_file
from alert_pipeline.storehouse.messengers.kind import Revision
from alert_pipeline.storehouse.slots import KindStore, utc_now

log = logging.getLogger("transient_kind_builder")


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
        self._revisions: dict[str, Revision] = {}
        self._skips_by_reason: Counter = Counter()

    def store(self, kind: str) -> KindStore:
        if kind not in self._stores:
            self._stores[kind] = kinds.spec(kind).store(self.storehouse)
        return self._stores[kind]

    def revision(self, kind: str) -> Revision:
        """The kind's revision rule for this run (it may remember what it has seen)."""
        if kind not in self._revisions:
            self._revisions[kind] = kinds.messenger_kind(kind).revision(self.store(kind))
        return self._revisions[kind]

    def apply(self, item: Item) -> Outcome:
        """Write one item's slot (or count its problem); what was done."""
        if item.problem is not None:
            self.skip(item.where, item.problem)
            return item.problem
        store, revision = self.store(item.kind), self.revision(item.kind)
        slot = dict(item.slot)
        try:
            existing, twin = self._merged(revision, slot, store.read_slot(slot["slot_id"]), item)
            if twin is not None:  # the event is already stored as ``twin``: kept as it is
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
        revision.written(slot)
        (self.report.written if written else self.report.unchanged)[item.kind] += 1
        return "written" if written else "unchanged"

    @staticmethod
    def _merged(revision: Any, slot: dict[str, Any], stored: dict[str, Any] | None, item: Item) -> Any:
        """The kind's revision rule on the new item and the stored slot. A stored slot the rule
        cannot read (hand-edited, damaged) is named as the reason the item is not applied:
        the slot is kept as it is (never replaced by the new item alone), and the run goes on."""
        try:
            return revision.merge(slot, stored, item)
        except Skipped:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the rule on a stored slot is that slot's
            if stored is None:
                raise
            raise Skipped("stored_slot_unusable", f"the stored {item.kind} slot {slot.get('slot_id')} cannot be "
                          f"merged with it ({type(exc).__name__}: {str(exc)[:200]}); repair or remove that slot "
                          "and load again") from None

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

    def sync(self) -> None:
        """Make every slot written so far durable (one filesystem sync per kind)."""
        for store in self._stores.values():
            store.sync()

    def finish(self) -> dict[str, Any]:
        """Rebuild the index and roster of every kind written to, sync; the rosters."""
        self._log_unlogged_skips()
        rosters = {}
        for name, store in self._stores.items():
            kind = kinds.messenger_kind(name)
            index = store.rebuild_index(kind.spec.index_fields)
            grouped = Counter(entry.get(kind.roster_field) or kind.unlabelled for entry in index["slots"])
            roster = {"objects": index["count"], f"by_{kind.roster_field}": dict(sorted(grouped.items())),
                      "last_load": {"written": self.report.written[name], "unchanged": self.report.unchanged[name]},
                      "built_at": index["built_at"], **kind.roster_extra(index["slots"])}
            store.write_roster(roster)
            store.sync()
            rosters[name] = roster
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
            if item.problem is not None or kinds.messenger_kind(item.kind).streamed:
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
    kind's rule; by default the later read)."""
    return kinds.messenger_kind(new.kind).replaces(new.slot, held.slot)


def _count_superseded(target: MessengerStore, loser: Item, winner: Item) -> None:
    """Count a version that gave way to another of its event, when its kind counts it
    (a notice that a catalogue row replaced: ``superseded``)."""
    problem = kinds.messenger_kind(loser.kind).superseded(loser.slot, winner.slot)
    if problem is not None:
        target.skip(loser.where, problem)
