"""``crossmatch``: every coincidence recorded in both slots, and only changes written.

Each transient slot with coincidences gets ``multimessenger`` (a list sorted by
``n_chance``); a transient slot without any carries no such field (or, when it had some
before, an empty list): absent and empty both mean none, so the slots of the transients
nothing matched (nearly all of them) are never opened. Each slot of every messenger kind
(``kinds.messenger_kinds()``) gets ``transients`` (the ZTF object ids that matched it, those
its rule ranks first — ``Match.rank``, e.g. a volume credible level —, the rest by id;
empty for an event skipped this run: retracted, its sky map gone or corrupt, a field
missing, off the sky). So both sides agree after every run. Each kind declares its rule
(``MessengerKind.match``: the fields it requires, its matching function and its
settings); this module names no kind.

``<storehouse>/state/crossmatch.json`` keeps, per slot that carries a value (every
messenger slot; the transient slots with coincidences), a digest of that value and the
slot file's stat (inode, size, mtime, ctime), a digest of everything the match reads
(the rules, the matching code's files, the transient index file, every file in the
messenger kinds' directories, by stat) and the last summary. When those inputs are the
same and every recorded transient slot is still the file last written, nothing is
matched again (a rerun with nothing new: a few thousand ``stat`` calls). Otherwise the
whole match is recomputed, and a slot whose record matches (wanted value, current stat)
is not opened; any other slot that must carry a value (new, a new value, rewritten by
the build, restored from a backup, recreated without the field) is read and written if
its field differs. Without a usable state, when the cross-match ran here before (a state
file or the roster's summary exists), every transient slot is read once (its bytes
searched for the field) to empty the coincidences no record vouches for; on a storehouse
it never ran on, none can carry any.

A messenger slot missing a field, a sky map that is gone or corrupt, a transient without
a position: counted, named in the log and (the first ``NAMED_SKIPS`` events) in the
summary's ``skipped_events``, skipped; the rest is matched.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import math
import os
from collections import Counter, defaultdict
from typing import Any

import orjson

from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.layout import (
    ENRICHED_FIELDS,
    IndexUnreadable,
    StateFile,
    StorehouseLayout,
    file_stamp,
    parse_json,
    read_index,
    read_roster,
    update_roster,
)
from alert_pipeline.storehouse.messengers.events import Skipped, mjd, parse_time
from alert_pipeline.storehouse.messengers.kind import MatchRule
from alert_pipeline.storehouse.messengers.rules import RulesType, Transients, on_sky, rules_dict
from alert_pipeline.storehouse.slots import KindStore, slot_bytes

log = logging.getLogger("transient_kind_builder")
#: The cross-match's memory between runs: ``state/crossmatch.json``.
STATE_NAME = "crossmatch"
#: The state's layout: per kind, the slots carrying a value (every messenger slot, the
#: transient slots with coincidences), each with a digest of the value and its file's stat;
#: a digest of the inputs; the last summary.
STATE_VERSION = 3
#: How many skipped events the summary names (all are counted).
NAMED_SKIPS = 100
TRANSIENT = "transient"
#: The field the transient slots carry their coincidences in (and the transient roster's
#: section), and the one every messenger kind's slots do: the layout's fields of this step.
TRANSIENT_FIELD, MESSENGER_FIELD = ENRICHED_FIELDS["crossmatch"]
#: How many of the least likely chance coincidences the roster lists.
ROSTER_BEST = 10


def run(storehouse: str, rules: RulesType) -> dict[str, Any]:
    """Match, write what changed, update the transient roster; the run's summary. The
    transient index is read before anything is opened for writing: a storehouse that was
    never built (a mistyped ``--storehouse``) is refused with nothing created in it. When
    nothing the match reads changed since the last run and every slot recorded as carrying
    coincidences is the file then written, the last run's result stands: nothing is
    matched again and no slot is opened."""
    layout = StorehouseLayout.at(storehouse)
    state_file = StateFile(layout, STATE_NAME)
    state = state_file.read()
    if _nothing_changed(storehouse, state, rules):
        summary = {**state["summary"], "slots_written": {}}
        log.info("crossmatch: nothing the match reads changed since the last run; its %d coincidences stand",
                 sum(summary["coincidences_by_kind"].values()))
        update_roster(layout, TRANSIENT, {TRANSIENT_FIELD: summary})
        return summary
    try:
        entries, bad_entries = read_index(layout, TRANSIENT)
    except IndexUnreadable as exc:
        raise Skipped("no_transients", f"no readable transient index ({exc}); run the build first") from None
    transient_store = kinds.spec(TRANSIENT).store(storehouse)
    transients, without_position = Transients.from_index(entries)
    skipped: Counter = Counter({"transient_without_position": without_position} if without_position else {})
    if bad_entries:
        skipped["bad_index_entry"] = bad_entries
    named: dict[str, str] = {}
    present: dict[str, set[str]] = {}
    per_transient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    per_event: dict[tuple[str, str], list[str]] = {}
    for kind, events in _messengers(storehouse, skipped, named, present).items():
        per_event.update({(kind, event_id): [] for event_id in present[kind]})  # skipped: no link left behind
        for event_id, coincidences in _match_kind(kind, events, transients, rules, storehouse, skipped,
                                                  named).items():
            per_event[(kind, event_id)] = _ranked(coincidences, transients)
            for match, n_chance in coincidences:
                event = events[event_id]
                per_transient[transients.ids[match.transient]].append(
                    {"kind": kind, "event": event_id, "dt_days": float(transients.first[match.transient] - event["mjd"]),
                     "n_chance": n_chance, **match.fields})
    for found in per_transient.values():
        found.sort(key=lambda item: (item["n_chance"], item["kind"], item["event"]))
    summary = _summary(per_transient, rules, skipped, Counter(), named)
    written = _write(storehouse, state_file, state, transient_store, entries, per_transient, per_event, rules,
                     summary)
    summary["slots_written"] = dict(sorted(written.items()))
    update_roster(layout, TRANSIENT, {TRANSIENT_FIELD: summary})
    return summary


def _ranked(coincidences: list, transients: Transients) -> list[str]:
    """The ids of an event's transients: those its rule ranks (``Match.rank``, lowest
    first), then the others by id."""
    best: dict[str, float] = {}
    for match, _ in coincidences:
        slot_id = transients.ids[match.transient]
        best[slot_id] = min(best.get(slot_id, math.inf), math.inf if match.rank is None else match.rank)
    return sorted(best, key=lambda slot_id: (best[slot_id], slot_id))


def _messengers(storehouse: str, skipped: Counter, named: dict[str, str] | None = None,
                present: dict[str, set[str]] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Every messenger kind's slots with a usable time (``mjd``) and the fields its rule
    requires, by kind and id; ``present`` gets the ids of every readable slot, skipped or not."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in kinds.messenger_kinds():
        found[kind.name] = {}
        readable = present.setdefault(kind.name, set()) if present is not None else set()
        if not os.path.isdir(StorehouseLayout.at(storehouse).kind(kind.name)):
            continue
        store = kind.spec.store(storehouse)
        for slot_id in sorted(store.slot_ids_on_disk()):
            slot = store.read_slot(slot_id)
            try:
                if slot is None:
                    raise Skipped("unreadable_slot", "not a readable slot")
                readable.add(slot_id)
                found[kind.name][slot_id] = _usable(slot, kind.match)
            except Skipped as problem:
                _skip(skipped, named, kind.name, slot_id, problem)
    return found


def _usable(slot: dict[str, Any], rule: MatchRule) -> dict[str, Any]:
    """``slot`` with its ``mjd``, when its kind's rule can match it (``Skipped`` otherwise)."""
    if (problem := rule.unmatchable(slot)) is not None:
        raise problem
    slot["mjd"] = _event_mjd(slot)
    _require(slot, rule.required, rule.text)
    if rule.positioned and not on_sky(float(slot["ra_deg"]), float(slot["dec_deg"])):
        raise Skipped("off_sky", f"its position (ra_deg {slot['ra_deg']}, dec_deg {slot['dec_deg']}) "
                                 "is not on the sky")
    return slot


def _skip(skipped: Counter, named: dict[str, str] | None, kind: str, event_id: str, problem: Skipped) -> None:
    """Count a skipped event, log it (a retraction quietly: it is expected) and name it."""
    skipped[problem.reason] += 1
    level = logging.INFO if problem.reason == "retracted" else logging.WARNING
    log.log(level, "crossmatch: %s %s skipped: %s (%s)", kind, event_id, problem, problem.reason)
    if named is not None and len(named) < NAMED_SKIPS:
        named[f"{kind}/{event_id}"] = f"{problem.reason}: {problem}"


def _match_kind(kind: str, events: dict[str, dict[str, Any]], transients: Transients, rules: RulesType,
                storehouse: str, skipped: Counter, named: dict[str, str] | None = None) -> dict[str, list]:
    """Per event id: [(match, n_chance)], by the kind's rule; an event that cannot be
    matched is left out (counted and named)."""
    matched = kinds.messenger_kind(kind).match.match(events, transients, rules,
                                                     StorehouseLayout.at(storehouse).kind(kind))
    result: dict[str, list] = {}
    for event_id, found in matched.items():
        if isinstance(found, Skipped):
            _skip(skipped, named, kind, event_id, found)
        else:
            result[event_id] = found
    return result


def _write(storehouse: str, state_file: StateFile, state: Any, transient_store: KindStore,
           entries: list[dict[str, Any]], per_transient: dict[str, list], per_event: dict[tuple[str, str], list[str]],
           rules: RulesType, summary: dict[str, Any]) -> Counter:
    """Make every slot carry its coincidences, then record this run (after a sync of what
    was written). A transient slot without coincidences is left as it is unless it may
    carry some from an earlier run: those the state recorded, or every slot once when
    there is no usable state but the cross-match ran here before (``_must_sweep``)."""
    layout = StorehouseLayout.at(storehouse)
    usable = state if _usable_state(state) else None
    recorded = usable["slots"] if usable is not None else {}
    sweep = usable is None and _must_sweep(layout, state_file)
    if sweep:
        log.info("crossmatch: no usable state of an earlier run: every transient slot is read once")
    if usable is None:  # a run killed from now on leaves a state that says: sweep
        state_file.write({"version": STATE_VERSION, "complete": False})
    carried = set(recorded.get(TRANSIENT, {}))
    checked = [entry["slot_id"] for entry in entries] if sweep else sorted(carried | set(per_transient))
    wanted: dict[str, dict[str, Any]] = {TRANSIENT: {slot_id: per_transient.get(slot_id, []) for slot_id in checked}}
    for (kind, event_id), ids in per_event.items():
        wanted.setdefault(kind, {})[event_id] = ids
    written: Counter = Counter()
    records: dict[str, dict[str, str]] = {}
    for kind, values in wanted.items():
        store = transient_store if kind == TRANSIENT else kinds.spec(kind).store(storehouse)
        before = recorded.get(kind)
        name = TRANSIENT_FIELD if kind == TRANSIENT else MESSENGER_FIELD
        records[kind], written[kind] = _agree(store, name, values, before if isinstance(before, dict) else {},
                                              absent_is_none=kind == TRANSIENT)
        if written[kind]:
            store.sync()
    now = {"version": STATE_VERSION, "complete": True, "rules": rules_dict(rules), "slots": records,
           "inputs": _inputs(storehouse, rules), "summary": {**summary, "slots_written": {}}}
    if now != state:
        state_file.write(now)
    return +written


def _usable_state(state: Any) -> bool:
    return (isinstance(state, dict) and state.get("version") == STATE_VERSION and state.get("complete") is True
            and isinstance(state.get("slots"), dict) and isinstance(state.get("summary"), dict)
            and all(isinstance(records, dict) for records in state["slots"].values()))


def _must_sweep(layout: StorehouseLayout, state_file: StateFile) -> bool:
    """Whether a transient slot may carry coincidences no usable state records: only the
    cross-match writes them, so not when it never ran here (no state file, and no summary
    in the transient roster, which a completed run always leaves)."""
    return os.path.exists(state_file.path) or TRANSIENT_FIELD in read_roster(layout, TRANSIENT)


def _nothing_changed(storehouse: str, state: Any, rules: RulesType) -> bool:
    """Whether the last run's result still stands: the same rules and code, the same
    transient index and messenger files, and every transient slot recorded as carrying
    coincidences still the file that run left (one ``stat`` each)."""
    if not _usable_state(state) or state.get("inputs") != _inputs(storehouse, rules):
        return False
    store = kinds.spec(TRANSIENT).store(storehouse)
    for slot_id, record in state["slots"].get(TRANSIENT, {}).items():
        try:
            stamp = file_stamp(store.slot_path(slot_id))
        except ValueError:
            return False
        if stamp is None or not isinstance(record, str) or record.split("/", 1)[-1] != stamp.decode():
            return False
    return True


def _inputs(storehouse: str, rules: RulesType) -> str:
    """A digest of everything the match reads: the rules, this code and the messenger
    kinds' (their files' stamps), the transient index file and every file of the
    messenger kinds' directories (slots and sky maps), by name and stamp."""
    layout = StorehouseLayout.at(storehouse)
    digest = hashlib.blake2b(orjson.dumps(rules_dict(rules), option=orjson.OPT_SORT_KEYS), digest_size=16)
    code = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in (os.path.abspath(__file__), *sorted(glob.glob(os.path.join(code, "messengers", "*.py")))):
        digest.update(path.encode() + b"=" + (file_stamp(path) or b"-") + b";")
    digest.update(b"index=" + (file_stamp(layout.index(TRANSIENT)) or b"-") + b";")
    for kind in kinds.messenger_kinds():
        directory = layout.kind(kind.name)
        digest.update(b"kind " + kind.name.encode() + b";")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            digest.update(name.encode() + b"=" + (file_stamp(os.path.join(directory, name)) or b"-") + b";")
    return digest.hexdigest()


def _agree(store: KindStore, name: str, values: dict[str, Any], recorded: dict[str, str],
           absent_is_none: bool = False) -> tuple[dict[str, str], int]:
    """Make each slot of ``values`` carry its value in field ``name`` (with
    ``absent_is_none``, a slot without the field already carries an empty one): a slot
    whose record matches (value, current stat) is not opened. The records to keep (none
    for a slot gone or unreadable: it is looked at again next run; with ``absent_is_none``
    none for an empty value either) and how many slots were written."""
    records: dict[str, str] = {}
    written = 0
    for slot_id, value in values.items():
        try:
            path = store.slot_path(slot_id)
        except ValueError:
            continue  # not a slot file name: no slot to agree with
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS) if value else _EMPTY  # most are empty
        stamp = file_stamp(path)
        if stamp is not None and recorded.get(slot_id) == _record(encoded, stamp):
            records[slot_id] = recorded[slot_id]
            continue
        outcome = _set_field(store, slot_id, name, value, absent_is_none)
        stamp = file_stamp(path)
        if outcome is None or stamp is None:
            continue
        written += outcome
        if value or not absent_is_none:
            records[slot_id] = _record(encoded, stamp)
    return records, written


_EMPTY = orjson.dumps([])


def _record(encoded_value: bytes, stamp: bytes) -> str:
    """What the state keeps of a slot: a digest of its value, then its file's stamp."""
    return hashlib.blake2b(encoded_value, digest_size=8).hexdigest() + "/" + stamp.decode()


def _set_field(store: KindStore, slot_id: str, name: str, value: Any, absent_is_none: bool = False) -> int | None:
    """1 when the slot was rewritten with ``name`` = ``value``, 0 when it already held it
    (or, with ``absent_is_none``, lacks the field and ``value`` is empty: its bytes are
    searched, not parsed), None when there is no readable slot. The slot is read once and
    replaced whole (temp file + rename): it already carries every other enrichment."""
    path = store.slot_path(slot_id)
    try:
        raw = store.files.read(path)
        if absent_is_none and not value and f'"{name}"'.encode() not in raw:
            return 0
        slot = parse_json(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        log.warning("crossmatch: slot %s is unreadable and left alone: %s", slot_id, exc)
        return None
    if not isinstance(slot, dict):
        return None
    if slot.get(name, [] if absent_is_none else None) == value:
        return 0
    slot[name] = value
    if store.refine is not None:
        slot = store.refine(slot)
    store.files.replace(path, slot_bytes(slot))
    return 1


def _summary(per_transient: dict[str, list], rules: RulesType, skipped: Counter, written: Counter,
             named: dict[str, str] | None = None) -> dict[str, Any]:
    by_kind: Counter = Counter(item["kind"] for found in per_transient.values() for item in found)
    best = sorted(({"transient": slot_id, **{k: item[k] for k in ("kind", "event", "n_chance", "dt_days")}}
                   for slot_id, found in per_transient.items() for item in found),
                  key=lambda item: (item["n_chance"], item["transient"]))[:ROSTER_BEST]
    return {"coincidences_by_kind": {kind.name: by_kind.get(kind.name, 0) for kind in kinds.messenger_kinds()},
            "transients_with_coincidences": sum(1 for found in per_transient.values() if found),
            "least_likely_by_chance": best, "skipped": dict(sorted(skipped.items())),
            "skipped_events": dict(sorted((named or {}).items())),
            "slots_written": dict(sorted(written.items())), "rules": rules_dict(rules)}


def _event_mjd(slot: dict[str, Any]) -> float:
    value = slot.get("mjd")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    try:
        return mjd(parse_time(slot.get("time")))
    except Skipped as problem:
        raise Skipped("missing_field", f"no usable time: {problem}") from None


def _require(slot: dict[str, Any], names: tuple[str, ...], text: tuple[str, ...] = ()) -> None:
    """Each of ``names`` present and finite, a number unless it is one of ``text``."""
    for name in names:
        value = slot.get(name)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            raise Skipped("missing_field", f"no {name}")
        if name not in text and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Skipped("missing_field", f"{name} is not a number")
