"""The ``neutrino`` kind: one slot per IceCube event.

From track lists in the IceCat-1 column layout (``NAME, RUNID, EVENTID, START,
EVENTMJD, I3TYPE, RA, DEC, RA_ERR_PLUS, RA_ERR_MINUS, DEC_ERR_PLUS, DEC_ERR_MINUS,
ENERGY, FAR, SIGNAL, …``) and from IceCube's GCN JSON notices
(``gcn.notices.icecube.gold_bronze_track_alerts``: one event;
``gcn.notices.icecube.lvk_nu_track_search``: the neutrinos coincident with a GW alert), and
from its classic GCN VOEvents (``gcn.classic.voevent.ICECUBE_ASTROTRACK_GOLD``/``_BRONZE``:
one event, ``Error2Radius`` its 90 % statistical radius ``src_error_90``), which follow
the JSON notices' rules: a notice without an ``IceCube-YYMMDDA`` name is ``IC<run>-<event>``,
its ``notice_time`` when it was issued (``Who/Date``); test notices (``Test``,
``InternalTest``, role ``test``) are skipped (``test_notice``), and so is a ``Retraction``
(``retraction``: this kind has no retraction rule, the notice is not loaded).

The 90 % region is four errors in degrees, RA errors in degrees of RA as IceCube quotes
them; a circular error fills all four, and an elliptical one (semi-axes, angle) its
circumscribing circle. Two different events published under one name keep two slots:
the first stored keeps the name, the other is ``NAME-RUN-EVENT``. A row without EVENTMJD
falls back to START.

Versions of one event (same name, run and event id), as an astronomer ranks them
(``supersedes``): an IceCat-1 row is IceCube's offline reconstruction, published after the
realtime GCN notices, so it replaces any notice of its event and no notice replaces it;
among notices the later revision (``alert_datetime``) wins; among catalogue rows the later
row (IceCat-1 revises rows). Each slot says which it came from (``source_type``:
``catalogue`` or ``notice``, with the notice's ``notice_time``), so the rule holds across
loads: the same files in any order give the same slot.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

from alert_pipeline.storehouse.messengers.events import (
    CsvRows,
    Item,
    Skipped,
    cosmic,
    error_deg,
    from_mjd,
    iso,
    offset,
    optional,
    parse_time,
    positive,
    safe_id,
    sky_position,
    text_list,
    timed,
)
from alert_pipeline.storehouse.messengers.kind import JSON, TEXT, XML, MatchRule, MessengerKind, Reader, Revision
from alert_pipeline.storehouse.messengers.rules import (
    LONGEST_WINDOW_DAYS,
    Match,
    Transients,
    nu_matches,
    per_event,
    rule,
)
from alert_pipeline.storehouse.messengers.voevent import is_voevent, read_voevent
from alert_pipeline.storehouse.slots import KindSpec

KIND = "neutrino"
INDEX_FIELDS = ("slot_id", "time", "mjd", "ra_deg", "dec_deg", "stream", "signalness", "energy_tev")
SPEC = KindSpec(KIND, INDEX_FIELDS)
ICECAT_COLUMNS = ("NAME", "RUNID", "EVENTID", "START", "EVENTMJD", "I3TYPE", "RA", "DEC", "RA_ERR_PLUS",
                  "RA_ERR_MINUS", "DEC_ERR_PLUS", "DEC_ERR_MINUS")
SECONDS_PER_YEAR = 365.25 * 86400
#: How far a coincident neutrino's ``event_dt`` may be from the GW trigger (IceCube
#: searches +-500 s; a day leaves room and refuses nonsense such as 1e12 s).
MAX_EVENT_DT_SECONDS = 86400.0
_GCN_NAME = re.compile(r"IceCube-(\d{6}[A-Z]{1,2})")
#: ``source_type`` of a slot: from a catalogue row (IceCat-1 layout) or a GCN notice.
CATALOGUE, NOTICE = "catalogue", "notice"


def is_icecat(header: list[str]) -> bool:
    return all(column in header for column in ICECAT_COLUMNS)


def from_icecat(text: str, where: str) -> Iterator[Item]:
    """Every row of an IceCat-1 layout CSV (blank lines skipped; a row with more cells
    than the header is one problem; a file the csv module cannot split ends as one)."""
    rows = CsvRows(text, where, KIND)
    for number, row in rows:
        place = f"{where}:{number}"
        try:
            if None in row:
                raise Skipped("bad_row", f"{len(row) - 1 + len(row[None])} cells, more than the header's {len(row) - 1}")
            name = safe_id((row.get("NAME") or "").strip(), "NAME")
            run, event = (row.get("RUNID") or "").strip(), (row.get("EVENTID") or "").strip()
            moment, source_mjd = _icecat_time(row)
            ra, dec = sky_position(row.get("RA"), row.get("DEC"))
            errors = [error_deg(row.get(key), key) for key in ("RA_ERR_PLUS", "RA_ERR_MINUS", "DEC_ERR_PLUS",
                                                               "DEC_ERR_MINUS")]
            far = optional(row.get("FAR"), "FAR")
            slot = _slot(name, moment, ra, dec, errors, energy=positive(row.get("ENERGY"), "ENERGY"),
                         signalness=optional(row.get("SIGNAL"), "SIGNAL"), far_per_year=far,
                         stream=_stream(row.get("I3TYPE")), run=run, event=event, source_mjd=source_mjd)
            yield Item(KIND, place, slot, order=f"{where}:{number:09d}")
        except Skipped as problem:
            yield Item(KIND, place, problem=problem)
    if rows.problem:
        yield rows.problem


def is_notice(doc: dict[str, Any]) -> bool:
    text = " ".join(str(doc.get(key, "")) for key in ("$schema", "type", "mission"))
    return "icecube" in text.lower()


def from_notice(doc: dict[str, Any], where: str) -> Iterator[Item]:
    """An IceCube GCN notice: one event (track alerts) or its coincident events (LVK
    search; none when no neutrino coincided)."""
    try:
        if "coincident_events" in doc:
            trigger = parse_time(doc.get("trigger_time"))
            events = doc.get("coincident_events")
            if events is not None and not isinstance(events, list):
                raise Skipped("bad_value", "coincident_events is not a list")
            for index, event in enumerate(events or []):
                try:
                    yield _coincident(event, trigger, f"{where}#{index}", doc)
                except Skipped as problem:
                    yield Item(KIND, f"{where}#{index}", problem=problem)
            return
        run, event = _run_and_event(doc.get("id"))
        names = [match.group(1) for name in _names(doc.get("event_name"))
                 if (match := _GCN_NAME.fullmatch(name))]
        name = f"IC{names[0]}" if names else f"IC{run}-{event}"
        ra, dec = sky_position(doc.get("ra"), doc.get("dec"))
        errors = _circle(doc.get("ra_dec_error"))
        far_hz = optional(doc.get("far"), "far")
        slot = _slot(safe_id(name, "event_name"), parse_time(doc.get("trigger_time")), ra, dec, errors,
                     energy=positive(doc.get("nu_energy"), "nu_energy"), signalness=optional(doc.get("p_astro"),
                                                                                          "p_astro"),
                     far_per_year=None if far_hz is None else far_hz * SECONDS_PER_YEAR,
                     stream=_stream(doc.get("pipeline")), run=run, event=event, notice_time=_notice_time(doc))
        yield Item(KIND, where, slot, order=slot["notice_time"])
    except Skipped as problem:
        yield Item(KIND, where, problem=problem)


def is_voevent_notice(root: Any) -> bool:
    return is_voevent(root) and (root.get("ivorn") or "").startswith("ivo://nasa.gsfc.gcn/AMON#ICECUBE_")


def from_voevent(root: Any, where: str) -> Item:
    """An IceCube classic GCN VOEvent (gold, bronze track): one event."""
    try:
        notice = read_voevent(root)
        if notice.role == "test" or notice.flag("Test") or notice.flag("InternalTest"):
            raise Skipped("test_notice", f"a test notice (role {notice.role})")
        if notice.flag("Retraction"):
            raise Skipped("retraction", "IceCube retracted this alert; not loaded (no retraction rule in this kind)")
        if notice.time is None:
            raise Skipped("no_time", "no ISOTime")
        run, event = notice.params.get("run_id", "").strip(), notice.params.get("event_id", "").strip()
        if not run or not event:
            raise Skipped("missing_field", "no run_id and event_id")
        ra, dec = sky_position(notice.ra, notice.dec)
        errors = _circle(notice.error_radius)
        far = optional(notice.params.get("FAR"), "FAR")
        issued = iso(parse_time(notice.date)) if notice.date else iso(notice.time)
        slot = _slot(safe_id(f"IC{run}-{event}", "run_id and event_id"), notice.time, ra, dec, errors,
                     energy=positive(notice.params.get("energy"), "energy"),
                     signalness=optional(notice.params.get("signalness"), "signalness"), far_per_year=far,
                     stream=_stream(notice.ivorn.partition("#")[2]), run=run, event=event, notice_time=issued)
        return Item(KIND, where, slot, order=issued)
    except Skipped as problem:
        return Item(KIND, where, problem=problem)


def _coincident(event: Any, trigger: dt.datetime, where: str, doc: dict[str, Any]) -> Item:
    if not isinstance(event, dict):
        raise Skipped("bad_value", "a coincident event that is not an object")
    place = event.get("localization") or {}
    if not isinstance(place, dict):
        raise Skipped("bad_value", "localization is not an object")
    run, number = _run_and_event(event.get("id"))
    moment = offset(trigger, event.get("event_dt") if event.get("event_dt") is not None else 0.0, "event_dt",
                    MAX_EVENT_DT_SECONDS)
    ra, dec = sky_position(place.get("ra"), place.get("dec"))
    slot = _slot(safe_id(f"IC{run}-{number}", "id"), moment, ra, dec,
                 _circle(place.get("ra_dec_error")), energy=None, signalness=None, far_per_year=None,
                 stream="lvk-nu-track-search", run=run, event=number, notice_time=_notice_time(doc))
    slot["gw_reference"] = doc.get("ref_ID")
    return Item(KIND, where, slot, order=slot["notice_time"])


def _notice_time(doc: dict[str, Any]) -> str:
    """When a notice was issued (``alert_datetime``, else its trigger time): which of two
    notices of one event is the later revision."""
    return iso(parse_time(doc.get("alert_datetime") or doc.get("trigger_time")))


def _slot(name: str, moment: dt.datetime, ra: float, dec: float, errors: list[float], *, energy: float | None,
          signalness: float | None, far_per_year: float | None, stream: str | None, run: str, event: str,
          source_mjd: float | None = None, notice_time: str | None = None) -> dict:
    """A neutrino slot; from a GCN notice when ``notice_time`` is given, else from a catalogue row."""
    slot = timed(cosmic(name, KIND), moment, source_mjd)
    slot.update(ra_deg=ra, dec_deg=dec, ra_err_plus_deg=errors[0], ra_err_minus_deg=errors[1],
                dec_err_plus_deg=errors[2], dec_err_minus_deg=errors[3], energy_tev=energy, signalness=signalness,
                far_per_year=far_per_year, stream=stream, run_id=run or None, event_id=event or None,
                source_type=CATALOGUE if notice_time is None else NOTICE, notice_time=notice_time)
    return slot


def _run_and_event(ids: Any) -> tuple[str, str]:
    """("run", "event") from a notice's ``id`` (["138590_39138551"], or one such string)."""
    if ids is None or ids == []:
        return "", ""
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not isinstance(ids[0], (str, int)) or isinstance(ids[0], bool):
        raise Skipped("bad_value", f"id = {str(ids)[:80]!r} is not a list of RUN_EVENT ids")
    run, _, event = str(ids[0]).partition("_")
    return run, event


def _names(value: Any) -> list[str]:
    """A notice's ``event_name``: a list of names, or one name."""
    return text_list(value, "event_name") if not isinstance(value, str) else [value.strip()]


def _circle(value: Any) -> list[float]:
    """A GCN ``ra_dec_error`` (a radius, or [semi-major, semi-minor, angle]) as four errors."""
    if isinstance(value, list):
        if not value:
            raise Skipped("bad_error", "an empty ra_dec_error")
        value = value[0]  # the semi-major axis: the ellipse's circumscribing circle
    radius = error_deg(value, "ra_dec_error")
    return [radius] * 4


def _icecat_time(row: dict[str, Any]) -> tuple[dt.datetime, float | None]:
    """The event's time and, when the row has one, its EVENTMJD as published."""
    source_mjd = optional(row.get("EVENTMJD"), "EVENTMJD")
    start = (row.get("START") or "").strip()
    if start and start != "None":
        return parse_time(start), source_mjd
    if source_mjd is not None:
        return from_mjd(source_mjd), source_mjd
    raise Skipped("no_time", "neither EVENTMJD nor START")


def _stream(text: Any) -> str | None:
    lowered = str(text or "").lower()
    for stream in ("gold", "bronze", "cascade"):
        if stream in lowered:
            return stream
    return lowered or None


def distinct_name(existing: dict[str, Any] | None, slot: dict[str, Any]) -> str:
    """The slot id for ``slot`` given the slot already stored under its name: the same
    event (run and event id) keeps the name, another event gets ``NAME-RUN-EVENT``."""
    if existing is None or not slot.get("run_id") or not existing.get("run_id"):
        return slot["slot_id"]
    if (existing.get("run_id"), existing.get("event_id")) == (slot.get("run_id"), slot.get("event_id")):
        return slot["slot_id"]
    return f"{slot['slot_id']}-{slot['run_id']}-{slot['event_id']}"


def supersedes(new: dict[str, Any], held: dict[str, Any]) -> bool:
    """Whether ``new`` replaces ``held``, two versions of one event: a catalogue row over
    any notice, the later of two notices, the later loaded of two catalogue rows. A slot
    stored before slots said their source (no ``source_type``) gives way to any version."""
    return _rank(new) >= _rank(held)


def _rank(slot: dict[str, Any]) -> tuple[int, str]:
    source = slot.get("source_type")
    if source == CATALOGUE:
        return (2, "")
    if source == NOTICE:
        return (1, str(slot.get("notice_time") or ""))
    return (0, "")


def is_notice_beaten_by_catalogue(loser: dict[str, Any], winner: dict[str, Any]) -> bool:
    """Whether ``loser`` is a notice that a catalogue row of its event replaces (counted
    ``superseded``: the notice was read and used, the reconstruction is kept)."""
    return loser.get("source_type") == NOTICE and winner.get("source_type") == CATALOGUE


def superseded_detail(loser: dict[str, Any], winner: dict[str, Any]) -> str:
    """Why a version gives way to another of its event."""
    if winner.get("source_type") == CATALOGUE:
        return f"a notice of {loser['slot_id']}; its IceCat-1 row (the offline reconstruction) is kept"
    return f"a notice of {loser.get('notice_time')}, older than the one of {winner.get('notice_time')}"


class NeutrinoRevision(Revision):
    """Versions of one event are ranked by ``supersedes`` against the stored slot (a
    version that does not replace it is ``superseded``); another event under the same
    name is stored as ``NAME-RUN-EVENT`` (``distinct_name``)."""

    def merge(self, slot: dict[str, Any], existing: dict[str, Any] | None,
              item: Item) -> tuple[dict[str, Any] | None, str | None]:
        slot["slot_id"] = distinct_name(existing, slot)
        if slot["slot_id"] != item.slot["slot_id"]:
            existing = self.store.read_slot(slot["slot_id"])
        if existing is not None and not supersedes(slot, existing):
            raise Skipped("superseded", superseded_detail(slot, existing))
        return existing, None


def _superseded(loser: dict[str, Any], winner: dict[str, Any]) -> Skipped | None:
    """A notice that a catalogue row of its event replaced is counted ``superseded``."""
    if is_notice_beaten_by_catalogue(loser, winner):
        return Skipped("superseded", superseded_detail(loser, winner))
    return None


def _read_icecat(text: str, where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from from_icecat(text, where)


def _read_notice(doc: dict[str, Any], where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from from_notice(doc, where)


def _read_voevent(root: Any, where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from_voevent(root, where)


def _matches(event: dict[str, Any], transients: Transients, rules: Any, _directory: str) -> tuple[list[Match], float]:
    return nu_matches(event, transients, rules)


#: The cross-match rule's default window (days; declared with its range in ``KIND_SPEC.match``).
WINDOW_DAYS = 30.0

KIND_SPEC = MessengerKind(
    spec=SPEC,
    readers=(Reader("an IceCube notice", JSON, lambda doc: is_notice(doc), _read_notice),
             Reader("an IceCube GCN VOEvent", XML, is_voevent_notice, _read_voevent),
             Reader("an IceCat-1 CSV", TEXT, lambda head: is_icecat(head.header), _read_icecat)),
    roster_field="stream", revision=NeutrinoRevision, replaces=supersedes, superseded=_superseded,
    gcn_topics=("gcn.notices.icecube.lvk_nu_track_search", "gcn.notices.icecube.gold_bronze_track_alerts",
                "gcn.classic.voevent.ICECUBE_ASTROTRACK_GOLD", "gcn.classic.voevent.ICECUBE_ASTROTRACK_BRONZE"),
    expected_problems=("test_notice",),
    match=MatchRule(
        required=("ra_deg", "dec_deg", "ra_err_plus_deg", "ra_err_minus_deg", "dec_err_plus_deg",
                  "dec_err_minus_deg"),
        match=per_event(_matches),
        settings=(rule("nu_window_days", WINDOW_DAYS, LONGEST_WINDOW_DAYS,
                       "a neutrino this long before the first or after the last detection (days)"),
                  rule("nu_scale", 1.0, 10.0, "scale of the neutrino's 90 %% region (1.0: the region as published)"))))
