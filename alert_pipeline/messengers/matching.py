"""``crossmatch``: every coincidence recorded in both slots, and only changes written.

Each transient slot gets ``multimessenger`` (a list, empty when none, sorted by
``n_chance``); each gw, neutrino and uhecr slot gets ``transients`` (the ZTF object ids
that matched it). The whole match is recomputed (it is cheap), then compared with the
last run's result (``<storehouse>/state/crossmatch.json``, written after the slots are
synced): only slots whose coincidences changed, and transient slots new since that run,
are read and written, so a rerun with nothing new rewrites no file. Without that file,
or with other rules, every slot is compared. A messenger slot missing a field, a sky map
that is gone or corrupt, a transient without a position: counted, named in the log,
skipped; the rest is matched.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter, defaultdict
from typing import Any

import orjson

from .. import kinds
from ..durable import write_atomically
from ..storehouse import KindStore, read_json_file
from . import gw, neutrino, uhecr
from .crossmatch import Rules, Transients, gw_matches, load_skymap, nu_matches, rules_dict, uhecr_chance, uhecr_pairs
from .events import Skipped, mjd, parse_time

log = logging.getLogger("transient_kind_builder")
STATE_FILE = os.path.join("state", "crossmatch.json")
TRANSIENT = "transient"
#: How many of the least likely chance coincidences the roster lists.
ROSTER_BEST = 10


def run(storehouse: str, rules: Rules) -> dict[str, Any]:
    """Match, write what changed, update the transient roster; the run's summary."""
    transient_store = kinds.spec(TRANSIENT).store(storehouse)
    index_path = os.path.join(transient_store.directory, "index.json")
    try:
        with open(index_path, "rb") as handle:
            entries = orjson.loads(handle.read())["slots"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Skipped("no_transients", f"no readable transient index ({index_path}: {exc}); run the build first") \
            from None
    transients, without_position = Transients.from_index(entries)
    skipped: Counter = Counter({"transient_without_position": without_position} if without_position else {})
    per_transient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    per_event: dict[tuple[str, str], list[str]] = {}
    for kind, events in _messengers(storehouse, skipped).items():
        for event_id, coincidences in _match_kind(kind, events, transients, rules, storehouse, skipped).items():
            per_event[(kind, event_id)] = sorted({transients.ids[m.transient] for m, _ in coincidences})
            for match, n_chance in coincidences:
                event = events[event_id]
                per_transient[transients.ids[match.transient]].append(
                    {"kind": kind, "event": event_id, "dt_days": float(transients.first[match.transient] - event["mjd"]),
                     "n_chance": n_chance, **match.fields})
    for found in per_transient.values():
        found.sort(key=lambda item: (item["n_chance"], item["kind"], item["event"]))
    written = _write(storehouse, transient_store, entries, per_transient, per_event, rules)
    summary = _summary(per_transient, rules, skipped, written)
    roster = read_json_file(os.path.join(transient_store.directory, "roster.json")) or {}
    transient_store.write_report_file("roster", {**roster, "multimessenger": summary})
    return summary


def _messengers(storehouse: str, skipped: Counter) -> dict[str, dict[str, dict[str, Any]]]:
    """Every gw, neutrino and uhecr slot with a usable time (``mjd``), by kind and id."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in (gw.KIND, neutrino.KIND, uhecr.KIND):
        found[kind] = {}
        directory = os.path.join(storehouse, kind)
        if not os.path.isdir(directory):
            continue
        store = kinds.spec(kind).store(storehouse)
        for slot_id in sorted(store.slot_ids_on_disk()):
            slot = store.read_slot(slot_id)
            try:
                if slot is None:
                    raise Skipped("unreadable_slot", "not a readable slot")
                if kind == gw.KIND and slot.get("retracted"):
                    skipped["retracted"] += 1
                    continue
                slot["mjd"] = _event_mjd(slot)
                _require(slot, {gw.KIND: ("area_90_deg2", "skymap"), neutrino.KIND: (
                    "ra_deg", "dec_deg", "ra_err_plus_deg", "ra_err_minus_deg", "dec_err_plus_deg",
                    "dec_err_minus_deg"), uhecr.KIND: ("ra_deg", "dec_deg")}[kind])
                found[kind][slot_id] = slot
            except Skipped as problem:
                skipped[problem.reason] += 1
                log.warning("crossmatch: %s slot %s skipped: %s (%s)", kind, slot_id, problem, problem.reason)
    return found


def _match_kind(kind: str, events: dict[str, dict[str, Any]], transients: Transients, rules: Rules, storehouse: str,
                skipped: Counter) -> dict[str, list]:
    """Per event id: [(match, n_chance)]."""
    result: dict[str, list] = {}
    if kind == uhecr.KIND:
        ordered = list(events)
        pairs = uhecr_pairs([events[event_id] for event_id in ordered], transients, rules)
        for position, event_id in enumerate(ordered):
            chance = uhecr_chance(events[event_id], transients, rules)
            result[event_id] = [(match, chance) for match in pairs[position]]
        return result
    for event_id, event in events.items():
        try:
            if kind == gw.KIND:
                matches, chance = gw_matches(event, load_skymap(os.path.join(storehouse, kind), event), transients,
                                             rules)
            else:
                matches, chance = nu_matches(event, transients, rules)
        except Skipped as problem:
            skipped[problem.reason] += 1
            log.warning("crossmatch: %s %s skipped: %s (%s)", kind, event_id, problem, problem.reason)
            continue
        result[event_id] = [(match, chance) for match in matches]
    return result


def _write(storehouse: str, transient_store: KindStore, entries: list[dict[str, Any]],
           per_transient: dict[str, list], per_event: dict[tuple[str, str], list[str]], rules: Rules) -> Counter:
    """Write the slots whose coincidences changed since the last run (every slot without
    a usable last run), sync, then record this run."""
    state_path = os.path.join(storehouse, STATE_FILE)
    state = read_json_file(state_path) or {}
    trusted = state.get("rules") == rules_dict(rules)
    before_transients = state.get("transients", {}) if trusted else {}
    before_events = state.get("messengers", {}) if trusted else {}
    now_transients = {entry["slot_id"]: per_transient.get(entry["slot_id"], []) for entry in entries}
    now_events = {f"{kind}/{event_id}": ids for (kind, event_id), ids in per_event.items()}
    written: Counter = Counter()
    for slot_id, found in now_transients.items():
        if slot_id not in before_transients or before_transients[slot_id] != found:
            written[TRANSIENT] += _set_field(transient_store, slot_id, "multimessenger", found)
    stores: dict[str, KindStore] = {}
    for key, ids in now_events.items():
        if before_events.get(key) != ids or not trusted:
            kind, event_id = key.split("/", 1)
            stores.setdefault(kind, kinds.spec(kind).store(storehouse))
            written[kind] += _set_field(stores[kind], event_id, "transients", ids)
    transient_store.sync()
    for store in stores.values():
        store.sync()
    now = {"rules": rules_dict(rules), "transients": now_transients, "messengers": now_events}
    if now != state:
        os.makedirs(os.path.dirname(state_path), exist_ok=True)
        write_atomically(state_path, orjson.dumps(now, option=orjson.OPT_SORT_KEYS))
    return written


def _set_field(store: KindStore, slot_id: str, name: str, value: Any) -> int:
    """1 when the slot was rewritten with ``name`` = ``value``, 0 when it already held it."""
    slot = store.read_slot(slot_id)
    if slot is None or slot.get(name) == value:
        return 0
    slot[name] = value
    return int(store.write_slot(slot_id, slot))


def _summary(per_transient: dict[str, list], rules: Rules, skipped: Counter, written: Counter) -> dict[str, Any]:
    by_kind: Counter = Counter(item["kind"] for found in per_transient.values() for item in found)
    best = sorted(({"transient": slot_id, **{k: item[k] for k in ("kind", "event", "n_chance", "dt_days")}}
                   for slot_id, found in per_transient.items() for item in found),
                  key=lambda item: (item["n_chance"], item["transient"]))[:ROSTER_BEST]
    return {"coincidences_by_kind": {kind: by_kind.get(kind, 0) for kind in (gw.KIND, neutrino.KIND, uhecr.KIND)},
            "transients_with_coincidences": sum(1 for found in per_transient.values() if found),
            "least_likely_by_chance": best, "skipped": dict(sorted(skipped.items())),
            "slots_written": dict(sorted(written.items())), "rules": rules_dict(rules)}


def _event_mjd(slot: dict[str, Any]) -> float:
    value = slot.get("mjd")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    try:
        return mjd(parse_time(slot.get("time")))
    except Skipped as problem:
        raise Skipped("missing_field", f"no usable time: {problem}") from None


def _require(slot: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = slot.get(name)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            raise Skipped("missing_field", f"no {name}")
        if name != "skymap" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Skipped("missing_field", f"{name} is not a number")
