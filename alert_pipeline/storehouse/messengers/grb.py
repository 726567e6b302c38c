"""The ``grb`` kind: one slot per gamma-ray-burst trigger, from the missions' GCN notices.

Read from:

* **GCN VOEvents** (the classic ``gcn.classic.voevent.*`` streams, one notice per message
  or file): Fermi GBM Alert, Flight, Ground and Final positions (Packet_Type 110, 111,
  112, 115), Swift BAT (61, its light curve 63, quick-look 97, transient 84), XRT (67) and
  UVOT (81) positions, INTEGRAL IBAS Wakeup, Refined, Offline and Weak positions (53–56);
* **GCN JSON** notices of the unified schema (``$schema`` …``/gcn/notices/<mission>/…``):
  Fermi GBM triggers, Swift BAT-GUANO (its retraction too), SVOM, Einstein Probe.

The slot id is ``<Mission>-<TrigID>`` (``Fermi-680782656``, ``Swift-1104470``). All the
notices of one trigger are one slot: each is kept in ``notices`` (its type, serial number,
when it was issued, its position and radii), ordered by precision (the smallest 90 %
radius first), then the later issued; the first with a position gives the slot's
``ra_deg``/``dec_deg``/``error_radius_deg`` (a Swift XRT position replaces BAT's, a GBM
Final position its Flight one). ``time`` is the earliest notice time of the trigger (the
burst: an XRT or UVOT notice is timed by its own observation, minutes later). A notice
of a type without a position (GBM Alert, BAT light curve) joins ``notices`` and gives
none. ``not_a_grb`` is set when any notice says so (``Def_NOT_a_GRB``, a JSON
retraction); such a slot is kept and never matched. Test notices (role ``test``,
``Test_Submission``/``Test_Notice`` true, JSON ``alert_tense`` other than current) are
skipped and counted (``test_notice``), as are notices that are no observation (a Swift
pointing notice, role ``utility``).

``error_radius_90_deg`` is what the cross-match uses: each notice's quoted radius as a
90 % radius (``radius_90``, the one conversion, with its sources in ``docs/grb.md``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np
import orjson

from alert_pipeline.storehouse.messengers.events import (
    Item,
    Skipped,
    cosmic,
    error_deg,
    iso,
    parse_time,
    safe_id,
    sky_position,
    timed,
)
from alert_pipeline.storehouse.messengers.kind import JSON, XML, MatchRule, MessengerKind, Reader, Revision
from alert_pipeline.storehouse.messengers.rules import LONGEST_WINDOW_DAYS, Match, Transients, per_event, rule
from alert_pipeline.storehouse.messengers.skymaps import SKY_DEG2
from alert_pipeline.storehouse.messengers.voevent import VOEvent, is_voevent, read_voevent
from alert_pipeline.storehouse.slots import KindSpec

KIND = "grb"
INDEX_FIELDS = ("slot_id", "time", "mjd", "mission", "instrument", "ra_deg", "dec_deg", "error_radius_90_deg",
                "not_a_grb")
SPEC = KindSpec(KIND, INDEX_FIELDS)
#: The containment every radius is converted to.
CONTAINMENT_90 = 0.9
#: Fermi GBM's systematic error, 68 % (Connaughton et al. 2015, ApJS 216, 32: a 3.7°
#: Gaussian; its ~10 % tail to ~14° is not modelled by a circle).
SYSTEMATIC_68_DEG = {("Fermi", "GBM"): 3.7}
#: The issuers of the classic GCN VOEvents this kind reads (the ivorn's authority#stream).
GCN_IVORN = re.compile(r"ivo://nasa\.gsfc\.gcn/(Fermi|SWIFT|INTEGRAL)#")
#: INTEGRAL's trigger number is the one in its ivorn (``…#Refined_Pos_010042-1-942``): a
#: Refined notice's TrigID is another number (75578 for trigger 10042).
INTEGRAL_TRIGGER = re.compile(r"#[A-Za-z]+_Pos_0*(\d+)-\d+-\d+$")


@dataclass(frozen=True)
class NoticeType:
    """A GCN notice type: its name (GCN's, as in its Kafka topic), mission, instrument,
    whether it carries a position, and what its radius is (containment, systematic in)."""

    name: str
    mission: str
    instrument: str
    positioned: bool = True
    containment: float = CONTAINMENT_90
    systematic_included: bool = True


#: The classic notices read, by Packet_Type; radii: Fermi GBM 68 % (Flight: statistical +
#: systematic; Ground, Final: statistical), Swift and INTEGRAL 90 % (docs/grb.md has the sources).
PACKETS = {
    53: NoticeType("INTEGRAL_WAKEUP", "INTEGRAL", "IBIS"),
    54: NoticeType("INTEGRAL_REFINED", "INTEGRAL", "IBIS"),
    55: NoticeType("INTEGRAL_OFFLINE", "INTEGRAL", "IBIS"),
    56: NoticeType("INTEGRAL_WEAK", "INTEGRAL", "IBIS"),
    61: NoticeType("SWIFT_BAT_GRB_POS_ACK", "Swift", "BAT"),
    63: NoticeType("SWIFT_BAT_GRB_LC", "Swift", "BAT", positioned=False),
    67: NoticeType("SWIFT_XRT_POSITION", "Swift", "XRT"),
    81: NoticeType("SWIFT_UVOT_POS", "Swift", "UVOT"),
    84: NoticeType("SWIFT_BAT_TRANS", "Swift", "BAT"),
    97: NoticeType("SWIFT_BAT_QL_POS", "Swift", "BAT"),
    110: NoticeType("FERMI_GBM_ALERT", "Fermi", "GBM", positioned=False),
    111: NoticeType("FERMI_GBM_FLT_POS", "Fermi", "GBM", containment=0.68),
    112: NoticeType("FERMI_GBM_GND_POS", "Fermi", "GBM", containment=0.68, systematic_included=False),
    115: NoticeType("FERMI_GBM_FIN_POS", "Fermi", "GBM", containment=0.68, systematic_included=False),
}
#: The GCN JSON notices read, by the mission part of ``$schema`` (…/gcn/notices/<part>/…).
JSON_MISSIONS = {"fermi": "Fermi", "swift": "Swift", "svom": "SVOM", "einstein_probe": "EinsteinProbe"}
_SCHEMA = re.compile(r"/gcn/notices/(" + "|".join(JSON_MISSIONS) + r")/")
#: The topics of the notices read (classic VOEvents: ``gcn.classic.voevent.<notice type>``).
GCN_TOPICS = (*(f"gcn.classic.voevent.{name}" for name in ("FERMI_GBM_FLT_POS", "FERMI_GBM_GND_POS",
                                                            "FERMI_GBM_FIN_POS", "SWIFT_BAT_GRB_POS_ACK",
                                                            "SWIFT_XRT_POSITION", "SWIFT_UVOT_POS")),
              "gcn.notices.swift.bat.guano", "gcn.notices.einstein_probe.wxt.alert")


def radius_90(radius: float, containment: float, systematic_included: bool, systematic_68_deg: float = 0.0) -> float:
    """A quoted radius as a 90 % radius: the instrument's systematic (a 68 % radius) added
    in quadrature when the quote lacks it, then scaled as a 2-D Gaussian's, whose radius
    holding a fraction p is σ·√(−2 ln(1 − p)): × 2.146 / 1.510 = 1.4216 from 68 %."""
    if not systematic_included and systematic_68_deg:
        radius = math.hypot(radius, systematic_68_deg)
    if containment != CONTAINMENT_90:
        radius *= math.sqrt(-2 * math.log(1 - CONTAINMENT_90)) / math.sqrt(-2 * math.log(1 - containment))
    return min(radius, 180.0)


# ------------------------------------------------------------------ VOEvents
def is_gcn_voevent(root: Element) -> bool:
    return is_voevent(root) and bool(GCN_IVORN.match(root.get("ivorn") or ""))


def from_voevent(root: Element, where: str) -> Item:
    """One classic GCN notice as a one-notice slot, or the problem that kept it out."""
    try:
        notice = read_voevent(root)
        packet = notice.integer("Packet_Type")
        kind = PACKETS.get(packet) if packet is not None else None
        if notice.role == "test" or notice.flag("Test_Submission", "Test_Notice"):
            raise Skipped("test_notice", f"a test notice (role {notice.role}, Packet_Type {packet})")
        if notice.role != "observation":
            raise Skipped("not_an_observation", f"a {notice.role} notice (Packet_Type {packet}), no burst")
        if kind is None:
            raise Skipped("not_a_burst_notice", f"Packet_Type {packet} is no burst notice this kind reads")
        return _item(_trigger(notice, kind), kind, _voevent_entry(notice, kind, packet, where), where)
    except Skipped as problem:
        return Item(KIND, where, problem=problem)


def _trigger(notice: VOEvent, kind: NoticeType) -> str:
    found = INTEGRAL_TRIGGER.search(notice.ivorn) if kind.mission == "INTEGRAL" else None
    trigger = found.group(1) if found else notice.params.get("TrigID", "").strip()
    if not trigger:
        raise Skipped("missing_field", "no TrigID")
    return trigger


def _voevent_entry(notice: VOEvent, kind: NoticeType, packet: int, where: str) -> dict[str, Any]:
    if notice.time is None:
        raise Skipped("no_time", "no ISOTime")
    entry = {"type": kind.name, "packet_type": packet, "serial": notice.integer("Pkt_Ser_Num"),
             "instrument": kind.instrument, "id": notice.ivorn, "time": iso(notice.time),
             "issued": iso(parse_time(notice.date)) if notice.date else None,
             "not_a_grb": notice.flag("Def_NOT_a_GRB"), "source": where,
             **_flags(notice), **_position(notice, kind)}
    return entry


def _flags(notice: VOEvent) -> dict[str, Any]:
    """Swift's flags that the position may be wrong or the source known (kept, not acted on)."""
    flags = {"startrack_lost_lock": notice.flag("StarTrack_Lost_Lock"),
             "target_in_catalog": notice.flag("Target_in_Flt_Catalog", "Target_in_Gnd_Catalog",
                                              "Target_in_Blk_Catalog")}
    return {name: value for name, value in flags.items() if value is not None}


def _position(notice: VOEvent, kind: NoticeType) -> dict[str, Any]:
    """The notice's position and radii; none for a type without one (its 0/0/0 is none)."""
    if not kind.positioned:
        return _no_position()
    if notice.ra is None or notice.error_radius is None:
        raise Skipped("missing_field", f"a {kind.name} notice without a position")
    return _circle(notice.ra, notice.dec, notice.error_radius, kind.containment, kind.systematic_included,
                   (kind.mission, kind.instrument))


def _circle(ra: Any, dec: Any, radius: Any, containment: float, systematic_included: bool,
            instrument: tuple[str, str]) -> dict[str, Any]:
    ra_deg, dec_deg = sky_position(ra, dec)
    error = error_deg(radius, "error radius")
    if error <= 0:
        raise Skipped("bad_error", f"error radius {error} is not positive")
    return {"ra_deg": ra_deg, "dec_deg": dec_deg, "error_radius_deg": error, "containment": containment,
            "error_radius_90_deg": radius_90(error, containment, systematic_included,
                                             SYSTEMATIC_68_DEG.get(instrument, 0.0))}


def _no_position() -> dict[str, Any]:
    return {"ra_deg": None, "dec_deg": None, "error_radius_deg": None, "containment": None,
            "error_radius_90_deg": None}


# ------------------------------------------------------------------ GCN JSON
def is_json_notice(doc: dict[str, Any]) -> bool:
    return bool(_SCHEMA.search(str(doc.get("$schema", ""))))


def from_json(doc: dict[str, Any], where: str) -> Item:
    """One GCN JSON notice as a one-notice slot: ``ra_dec_error`` with its
    ``containment_probability`` (default 0.9) and ``systematic_included`` (default false),
    as the schema's Localization defines them; a retraction sets ``not_a_grb``."""
    try:
        mission = JSON_MISSIONS[_SCHEMA.search(str(doc["$schema"])).group(1)]
        instrument = str(doc.get("instrument") or "").strip() or "unknown"
        tense = doc.get("alert_tense", "current")
        if tense != "current":
            raise Skipped("test_notice", f"alert_tense {str(tense)[:20]!r}, not a current notice")
        ids = doc.get("id")
        trigger = ids[0] if isinstance(ids, list) and ids else ids
        if not isinstance(trigger, str | int) or isinstance(trigger, bool):
            raise Skipped("missing_field", "no trigger id")
        moment = parse_time(doc.get("trigger_time"))
        alert_type = str(doc.get("alert_type") or "")
        serial = doc.get("record_number")
        entry = {"type": str(doc.get("subtype") or alert_type or "notice"), "packet_type": None,
                 "serial": serial if isinstance(serial, int) and not isinstance(serial, bool) else None,
                 "instrument": instrument, "time": iso(moment),
                 "issued": iso(parse_time(doc["alert_datetime"])) if doc.get("alert_datetime") else None,
                 "not_a_grb": True if alert_type == "retraction" else None, "source": where}
        entry["id"] = f"{str(doc['$schema']).rsplit('/', 1)[-1]}:{trigger}:{entry['serial']}:{alert_type}"
        entry.update(_json_position(doc, mission, instrument))
        return _item(str(trigger), NoticeType(entry["type"], mission, instrument), entry, where)
    except Skipped as problem:
        return Item(KIND, where, problem=problem)


def _json_position(doc: dict[str, Any], mission: str, instrument: str) -> dict[str, Any]:
    if doc.get("ra") is None and doc.get("dec") is None:
        return _no_position()
    error = doc.get("ra_dec_error")
    if isinstance(error, list):  # an ellipse [a, b, angle]: its circumscribing circle
        error = error[0] if error else None
    containment = doc.get("containment_probability", CONTAINMENT_90)
    if isinstance(containment, bool) or not isinstance(containment, int | float) or not 0 < containment < 1:
        raise Skipped("bad_value", f"containment_probability = {str(containment)[:20]!r} is not in (0, 1)")
    return _circle(doc.get("ra"), doc.get("dec"), error, float(containment),
                   doc.get("systematic_included") is True, (mission, instrument))


# ------------------------------------------------------------------ one slot per trigger
def _item(trigger: str, kind: NoticeType, entry: dict[str, Any], where: str) -> Item:
    slot_id = safe_id(f"{kind.mission}-{trigger}", "mission and trigger id")
    slot = cosmic(slot_id, KIND, mission=kind.mission, trigger_id=trigger)
    return Item(KIND, where, summarise(slot, [entry]), order=entry.get("issued") or entry["time"])


def precision_order(notices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notices, positioned ones first by 90 % radius (the smallest first), then the
    later issued; then those without a position, the later issued first."""
    by_time = sorted(notices, key=lambda n: (_moment(n.get("issued") or n["time"]), n["id"]), reverse=True)
    return sorted(by_time, key=lambda n: (n["error_radius_90_deg"] is None, n["error_radius_90_deg"] or 0.0))


def summarise(slot: dict[str, Any], notices: list[dict[str, Any]]) -> dict[str, Any]:
    """``slot`` with its fields from its ``notices`` (see the module docstring)."""
    ordered = precision_order(notices)
    best = ordered[0]
    timed(slot, min(_moment(notice["time"]) for notice in ordered))
    slot.update(instrument=best["instrument"], ra_deg=best["ra_deg"], dec_deg=best["dec_deg"],
                error_radius_deg=best["error_radius_deg"], containment=best["containment"],
                error_radius_90_deg=best["error_radius_90_deg"],
                not_a_grb=any(notice.get("not_a_grb") for notice in ordered), notices=ordered)
    return slot


def _moment(text: str) -> dt.datetime:
    return parse_time(text)


class GrbRevision(Revision):
    """A notice joins its trigger's stored slot: a notice already there (same id, same
    content wherever it was read from) changes nothing, a new one is added and the slot
    summarised again. A notice with a stored notice's id but other content is refused with
    its reason: GCN never reissues an id, so one of the two is damaged or forged, and which
    one is for a person to decide, not for the order the files were read in."""

    def merge(self, slot: dict[str, Any], existing: dict[str, Any] | None,
              item: Item) -> tuple[dict[str, Any] | None, str | None]:
        if existing is None:
            return None, None
        held = [notice for notice in existing.get("notices") or [] if isinstance(notice, dict) and "id" in notice]
        known = {notice["id"]: notice for notice in held}
        for notice in slot["notices"]:
            stored = known.get(notice["id"])
            before, now = (_content(stored), _content(notice)) if stored is not None else ({}, {})
            if before != now:
                differing = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
                raise Skipped("contradicts_stored_notice",
                              f"notice {str(notice['id'])[:200]} is stored in {existing.get('slot_id')} with other "
                              f"values ({', '.join(differing[:10])}); the stored one is kept")
        new = [notice for notice in slot["notices"] if notice["id"] not in known]
        if not new:
            return existing, existing["slot_id"]  # every notice is stored: nothing to write
        summarise(slot, held + new)
        return existing, None


def _content(notice: dict[str, Any]) -> dict[str, Any]:
    """A notice's values as stored (a JSON round trip), without where it was read from."""
    return {key: value for key, value in orjson.loads(orjson.dumps(notice)).items() if key != "source"}


def _read_voevent(root: Element, where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from_voevent(root, where)


def _read_json(doc: dict[str, Any], where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from_json(doc, where)


# ------------------------------------------------------------------ the cross-match
def _matches(event: dict[str, Any], transients: Transients, rules: Any, _directory: str) -> tuple[list[Match], float]:
    """Transients first detected in [T0, T0 + grb_window_days] inside the 90 % circle;
    n_chance = the transients first detected in the window × the circle's share of the sky."""
    radius = float(event["error_radius_90_deg"])
    if not 0 < radius <= 180:
        raise Skipped("bad_error", f"error_radius_90_deg {radius} is not in (0, 180]")
    window = transients.first_between(event["mjd"], event["mjd"] + rules.grb_window_days)
    cap_deg2 = 2 * math.pi * (1 - math.cos(math.radians(radius))) * (180 / math.pi) ** 2
    n_chance = (window.stop - window.start) * cap_deg2 / SKY_DEG2
    indices = np.arange(window.start, window.stop)
    separation = _separation(transients.ra[indices], transients.dec[indices], event["ra_deg"], event["dec_deg"])
    inside = separation <= radius
    return [Match(int(i), {"separation_deg": float(angle), "radius_deg": radius})
            for i, angle in zip(indices[inside], separation[inside], strict=True)], n_chance


def _separation(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Great-circle separations (degrees), by the haversine formula (exact at arcseconds)."""
    ra, dec, ra0, dec0 = np.radians(ra), np.radians(dec), math.radians(float(ra0)), math.radians(float(dec0))
    half = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * math.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(half, 0.0, 1.0))))


def _not_a_grb(slot: dict[str, Any]) -> Skipped | None:
    if slot.get("not_a_grb"):
        return Skipped("retracted", "its mission says it is not a GRB (Def_NOT_a_GRB or a retraction)")
    return None


def _roster_extra(entries: list[dict[str, Any]]) -> dict[str, Any]:
    instruments: dict[str, int] = {}
    for entry in entries:
        name = f"{entry.get('mission') or 'unknown'} {entry.get('instrument') or 'unknown'}"
        instruments[name] = instruments.get(name, 0) + 1
    return {"by_instrument": dict(sorted(instruments.items())),
            "not_a_grb": sum(1 for entry in entries if entry.get("not_a_grb")),
            "without_position": sum(1 for entry in entries if entry.get("ra_deg") is None)}


#: The cross-match rule's default window after the trigger (days; declared with its range in ``KIND_SPEC.match``).
WINDOW_DAYS = 3.0

KIND_SPEC = MessengerKind(
    spec=SPEC,
    readers=(Reader("a GCN VOEvent of Fermi, Swift or INTEGRAL", XML, is_gcn_voevent, _read_voevent),
             Reader("a GCN JSON notice of Fermi, Swift, SVOM or Einstein Probe", JSON, is_json_notice, _read_json)),
    roster_field="mission", roster_extra=_roster_extra, revision=GrbRevision,
    # each notice joins its trigger's stored slot as it is read: two notices of a trigger
    # in one run are both kept, never one replacing the other
    streamed=True,
    gcn_topics=GCN_TOPICS,
    expected_problems=("test_notice", "not_an_observation"),
    match=MatchRule(
        required=("ra_deg", "dec_deg", "error_radius_90_deg"), match=per_event(_matches), unmatchable=_not_a_grb,
        settings=(rule("grb_window_days", WINDOW_DAYS, LONGEST_WINDOW_DAYS,
                       "a transient first detected this long after a gamma-ray burst's trigger (days)"),)))

