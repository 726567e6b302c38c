"""``hosts``: the galaxies of each GW volume, ranked, and each transient's host galaxy,
from the storehouse's galaxy catalogue (``galaxies``).

* A gw slot whose stored multi-order map has distance layers gets ``host_candidates``
  (the catalogue's galaxies inside its 90 % credible volume, best first, at most ``top``)
  and ``n_galaxies_90_volume`` (how many there were); others carry neither (or null,
  once an answer they had is gone).
* A transient slot gets ``host`` when a catalogue galaxy lies within the host rule
  (``query.HostRule``); otherwise it carries none (or null, once a host it had is gone).

Only changes are written. ``state/hosts.json`` keeps, per slot, a digest of (the fields
it was last seen carrying, its file's stat), and per gw slot a digest of what its answer
depends on (its map file, the catalogue, the settings): a rerun with nothing new computes
nothing and opens no slot; a reloaded catalogue recomputes every answer and writes only
the slots whose answer changed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import orjson

from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.galaxies import query
from alert_pipeline.storehouse.galaxies.store import recover as recover_catalogue
from alert_pipeline.storehouse.galaxies.volume import read_volume_map
from alert_pipeline.storehouse.layout import (
    ENRICHED_FIELDS,
    IndexUnreadable,
    StateFile,
    StorehouseLayout,
    file_stamp,
    read_index,
)
from alert_pipeline.storehouse.messengers.events import Skipped
from alert_pipeline.storehouse.messengers.gw import KIND as GW
from alert_pipeline.storehouse.messengers.gw import skymap_name
from alert_pipeline.storehouse.slots import KindStore

log = logging.getLogger("transient_kind_builder")
HOST, CANDIDATES, COUNT = ENRICHED_FIELDS["hosts"]
TRANSIENT = "transient"
STATE_NAME = "hosts"
STATE_VERSION = 1
#: The file every HATS catalogue has, replaced by every load: the catalogue's identity.
CATALOGUE_STAMP_FILE = "hats.properties"


@dataclass(frozen=True)
class HostSettings:
    catalogue: str
    top: int
    max_kpc: float
    cap_arcmin: float
    scheduler: str | None = None

    def key(self) -> dict[str, Any]:
        """What the answers depend on (not where they are computed)."""
        return {name: value for name, value in asdict(self).items() if name != "scheduler"}


def _digest(encoded_value: bytes, stamp: bytes) -> str:
    """What a slot carried (its answer) and the file it was in, as one short digest."""
    return hashlib.blake2b(encoded_value + b"|" + stamp, digest_size=8).hexdigest()


def run(storehouse: str, settings: HostSettings) -> dict[str, Any]:
    """Both sides, written where they changed; the run's summary."""
    layout = StorehouseLayout.at(storehouse)
    path = layout.catalogue(settings.catalogue)
    recover_catalogue(storehouse, settings.catalogue)
    catalogue = file_stamp(os.path.join(path, CATALOGUE_STAMP_FILE))
    if catalogue is None:
        raise Skipped("no_catalogue", f"no galaxy catalogue {settings.catalogue!r} at {path}; load one with "
                                      "load-galaxies")
    state_file = StateFile(layout, STATE_NAME)
    state = state_file.read() or {}
    if state.get("version") != STATE_VERSION or state.get("settings") != settings.key():
        state = {}
    inputs = hashlib.blake2b(catalogue + orjson.dumps(settings.key(), option=orjson.OPT_SORT_KEYS),
                             digest_size=8).hexdigest()
    summary: dict[str, Any] = {"catalogue": settings.catalogue}
    gw_digests, summary["gw"] = _gw(storehouse, path, settings, inputs, state.get(GW) or {})
    transient_digests, summary["transient"] = _transients(layout, storehouse, path, settings, inputs,
                                                          state.get(TRANSIENT) or {})
    now = {"version": STATE_VERSION, "settings": settings.key(), GW: gw_digests, TRANSIENT: transient_digests}
    if now != state:
        state_file.write(now)
    return summary


# ------------------------------------------------------------------ gw: candidates in the volume
def _gw(storehouse: str, catalogue: str, settings: HostSettings, inputs: str,
        recorded: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Each gw slot's candidates; per slot {"inputs", "slot"} digests to record."""
    counts = {"ranked": 0, "without_distance": 0, "unreadable_map": 0, "unchanged": 0, "slots_written": 0}
    directory = StorehouseLayout.at(storehouse).kind(GW)
    if not os.path.isdir(directory):
        return {}, counts
    store = kinds.spec(GW).store(storehouse)
    digests: dict[str, Any] = {}
    for slot_id in sorted(store.slot_ids_on_disk()):
        map_path = os.path.join(store.directory, skymap_name(slot_id))
        stamp = file_stamp(map_path) or b"-"
        key = hashlib.blake2b(stamp + inputs.encode(), digest_size=8).hexdigest()
        before = recorded.get(slot_id) if isinstance(recorded.get(slot_id), dict) else {}
        slot_stamp = file_stamp(store.slot_path(slot_id))
        if before.get("inputs") == key and slot_stamp and before.get("slot") == _digest(key.encode(), slot_stamp):
            digests[slot_id] = before
            counts["unchanged"] += 1
            continue
        slot = store.read_slot(slot_id)
        if slot is None:
            continue
        value = _candidates(slot, map_path, catalogue, settings, counts)
        if value is None:
            continue  # an unreadable map: the slot is left as it is, and tried again next run
        counts["slots_written"] += _set_fields(store, slot_id, slot, value)
        if (slot_stamp := file_stamp(store.slot_path(slot_id))) is not None:
            digests[slot_id] = {"inputs": key, "slot": _digest(key.encode(), slot_stamp)}
    if counts["slots_written"]:
        store.sync()
    return digests, counts


def _candidates(slot: dict[str, Any], map_path: str, catalogue: str, settings: HostSettings,
                counts: dict[str, int]) -> dict[str, Any] | None:
    """The slot's two fields (a None field: the slot carries neither); None when its map
    cannot be read (a truncated or damaged file): that slot is named, counted and skipped,
    the other slots go on."""
    try:
        sky = None if slot.get("retracted") or not os.path.isfile(map_path) else read_volume_map(map_path)
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError) as exc:
        counts["unreadable_map"] += 1
        log.warning("hosts: gw %s: its sky map %s cannot be read (%s: %s); the slot is left as it is",
                    slot.get("slot_id"), map_path, type(exc).__name__, str(exc)[:200])
        return None
    if sky is None:
        counts["without_distance"] += 1
        return {CANDIDATES: None, COUNT: None}
    found = query.galaxies_in_volume(catalogue, sky, settings.scheduler)
    ranked, total = query.rank(found, settings.top)
    counts["ranked"] += 1
    log.info("hosts: gw %s: %d galaxies in its 90%% volume", slot.get("slot_id"), total)
    return {CANDIDATES: ranked, COUNT: total}


def _set_fields(store: KindStore, slot_id: str, slot: dict[str, Any], value: dict[str, Any]) -> int:
    """1 when the slot was rewritten to carry ``value``, else 0. A None field is written
    as null only over an answer the slot carries (the slot store keeps an enrichment's
    field a rewrite leaves out, so a gone answer is overwritten, not removed); a slot that
    never had one is not touched."""
    wanted = dict(slot)
    for name, field in value.items():
        if field is not None or wanted.get(name) is not None:
            wanted[name] = field
    if wanted == slot:
        return 0
    return int(store.write_slot(slot_id, wanted))


# ------------------------------------------------------------------ transients: hosts
def _transients(layout: StorehouseLayout, storehouse: str, catalogue: str, settings: HostSettings, inputs: str,
                recorded: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    counts = {"with_host": 0, "without_position": 0, "slots_written": 0}
    try:
        entries, _ = read_index(layout, TRANSIENT)
    except IndexUnreadable:
        return {}, counts
    ids, ra, dec = _positions(entries, counts)
    store = kinds.spec(TRANSIENT).store(storehouse)
    positions = hashlib.blake2b(orjson.dumps([ids.tolist(), ra.tolist(), dec.tolist()]), digest_size=8).hexdigest()
    key = f"{inputs}:{positions}"
    slots = recorded.get("slots") if recorded.get("inputs") == key and isinstance(recorded.get("slots"), dict) else {}
    if slots and all(_stamp_digest(store, slot_id, key) == slots.get(slot_id) for slot_id in ids):
        counts["with_host"] = int(recorded.get("with_host", 0))
        return recorded, counts
    found = query.hosts(catalogue, ids, ra, dec, query.HostRule(settings.max_kpc, settings.cap_arcmin),
                        settings.scheduler)
    counts["with_host"] = len(found)
    digests: dict[str, str] = {}
    for slot_id in ids:
        slot = store.read_slot(slot_id)
        if slot is None:
            continue
        counts["slots_written"] += _set_fields(store, slot_id, slot, {HOST: found.get(slot_id)})
        if (digest := _stamp_digest(store, slot_id, key)) is not None:
            digests[slot_id] = digest
    if counts["slots_written"]:
        store.sync()
    return {"inputs": key, "with_host": len(found), "slots": digests}, counts


def _stamp_digest(store: KindStore, slot_id: str, key: str) -> str | None:
    stamp = file_stamp(store.slot_path(slot_id))
    return None if stamp is None else _digest(key.encode(), stamp)


def _positions(entries: list[dict[str, Any]], counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ids and positions of the index's transients that have a usable one."""
    ids, ra, dec = [], [], []
    for entry in entries:
        lon, lat = entry.get("ra_deg"), entry.get("dec_deg")
        if _number(lon) and _number(lat) and 0 <= lon < 360 and -90 <= lat <= 90:
            ids.append(entry["slot_id"])
            ra.append(float(lon))
            dec.append(float(lat))
        else:
            counts["without_position"] += 1
    return np.array(ids, dtype=object), np.array(ra, dtype=np.float64), np.array(dec, dtype=np.float64)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
