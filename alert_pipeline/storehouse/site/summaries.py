"""What a page of one slot shows of another, and which slots a page links to.

A slot's *summary* is the little the index and the pages of its linked slots show of it
(a transient's classes and coincidences on an event's candidate table; an event's time
and headline on a transient's coincidence table). Pages depend on their own slot and on
their linked slots' summaries only, so a changed slot rewrites its page, the pages that
link to it when its summary changed, and the index (``build``).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from typing import Any

import orjson

TRANSIENT, MINOR_BODY = "transient", "minor_body"
#: The kinds whose slots are made from the broker's alerts; every other kind is an event
#: of a messenger (gw, neutrino, uhecr, grb …), whose slots list their ``transients``.
ALERT_KINDS = (TRANSIENT, MINOR_BODY)
#: An event's energy field → its unit, the first present shown in its headline.
ENERGIES = {"energy_tev": "TeV", "energy_eev": "EeV", "energy_kev": "keV", "energy_gev": "GeV"}


def _number(value: Any) -> float | None:
    """A finite number as a float, else None (a 400-digit integer too: no float holds it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _string(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


def coincidences(slot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A transient's coincidences as the cross-match recorded them (dicts naming kind and event)."""
    found = slot.get("multimessenger")
    if not isinstance(found, list):
        return []
    return [item for item in found if isinstance(item, dict) and isinstance(item.get("kind"), str)
            and isinstance(item.get("event"), str)]


def tns_record(slot: Mapping[str, Any]) -> dict[str, Any]:
    record = slot.get("tns")
    return record if isinstance(record, dict) else {}


def transient_ids(slot: Mapping[str, Any]) -> list[str]:
    """An event's candidate transients, in the slot's order (its ranking)."""
    found = slot.get("transients")
    return [item for item in found if isinstance(item, str)] if isinstance(found, list) else []


def event_headline(kind: str, slot: Mapping[str, Any]) -> str:
    """A few words on an event (plain text: escaped where shown)."""
    if kind == "gw":
        classes = slot.get("classification")
        best = max(((v, k) for k, v in classes.items() if _number(v) is not None), default=None) \
            if isinstance(classes, dict) else None
        far = _number(slot.get("far_hz"))
        words = [f"{best[1]} {best[0]:.0%}" if best else None,
                 f"FAR {far * 3.15576e7:.3g}/yr" if far is not None else None]
        return ", ".join(word for word in words if word)
    words = [_string(slot.get("experiment") or slot.get("stream") or slot.get("mission"))]
    for name, unit in ENERGIES.items():
        if (energy := _number(slot.get(name))) is not None:
            words.append(f"{energy:.3g} {unit}")
            break
    return ", ".join(word for word in words if word)


def summary(kind: str, stem: str, slot: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of one slot (JSON values only)."""
    common = {"id": _string(slot.get("slot_id")) or stem, "stem": stem}
    if kind == TRANSIENT:
        record = tns_record(slot)
        return {**common, "class": _string(slot.get("fink_classification")), "subtype": _string(slot.get("subtype")),
                "tns_name": _string(record.get("name")), "tns_type": _string(record.get("type")),
                "first": _string(slot.get("first_detection")), "first_mjd": _number(slot.get("first_mjd")),
                "ra": _number(slot.get("ra_deg")), "dec": _number(slot.get("dec_deg")),
                "mm": coincidences(slot)}
    if kind == MINOR_BODY:
        return {**common, "designation": _string(slot.get("designation")), "first": _string(slot.get("first_detection")),
                "n_alerts": slot.get("n_alerts") if type(slot.get("n_alerts")) is int else None}
    return {**common, "time": _string(slot.get("time")), "mjd": _number(slot.get("mjd")),
            "headline": event_headline(kind, slot), "retracted": slot.get("retracted") is True,
            "transients": transient_ids(slot)}


#: What ``summary`` puts in each field (a summary read back from the site's records is checked against it).
_TEXT_FIELDS = frozenset({"class", "subtype", "tns_name", "tns_type", "first", "designation", "time", "headline"})
_NUMBER_FIELDS = frozenset({"first_mjd", "ra", "dec", "mjd"})


def sky_map_name(value: Any) -> str | None:
    """The file name of a gw slot's ``skymap`` (beside the slot), or None for one that names no file."""
    if type(value) is not str:
        return None
    name = os.path.basename(value)
    return name if name not in ("", ".", "..") and "\0" not in name else None


def well_formed(found: Mapping[str, Any]) -> bool:
    """Whether every field of a summary holds what ``summary`` writes there (text, a finite
    float, a list of ids, coincidences naming their kind and event, a sky map's file name)."""
    for key, value in found.items():
        if key in _TEXT_FIELDS:
            fits = value is None or type(value) is str
        elif key in _NUMBER_FIELDS:
            fits = value is None or type(value) is float and math.isfinite(value)
        elif key in ("id", "stem"):
            fits = type(value) is str
        elif key == "n_alerts":
            fits = value is None or type(value) is int
        elif key == "retracted":
            fits = type(value) is bool
        elif key == "transients":
            fits = type(value) is list and all(type(item) is str for item in value)
        elif key == "mm":
            fits = type(value) is list and all(type(item) is dict and type(item.get("kind")) is str
                                               and type(item.get("event")) is str for item in value)
        elif key == "skymap":
            fits = sky_map_name(value) == value
        else:
            fits = False
        if not fits:
            return False
    return True


def links(kind: str, slot_summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (kind, slot id) of every slot the page links to, from its summary."""
    if kind == TRANSIENT:
        return sorted({(item["kind"], item["event"]) for item in slot_summary.get("mm", [])})
    if kind == MINOR_BODY:
        return []
    return [(TRANSIENT, slot_id) for slot_id in slot_summary.get("transients", [])]


def digest(value: Any) -> str:
    """A short digest of a JSON value."""
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()
