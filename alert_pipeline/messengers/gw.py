"""The ``gw`` kind: one slot per gravitational-wave event, with its sky map beside it.

From IGWN alerts as GCN Kafka delivers them (``igwn.gwalert``: JSON with the sky map as
base64 of a multi-order FITS file) and from LVK sky-map FITS files as GraceDB serves them
(multi-order or flat). The slot id is the superevent id (``S230518h``); a bare sky-map
file is named by its ``OBJECT`` card, else by its time as the GW catalogues name events
(``GW190814_211039``). Mock events (GraceDB's ``M`` prefix: ``MS…`` superevents, ``M…``
events), whether named by an alert's ``superevent_id`` or a sky map's ``OBJECT``, are
skipped (``mock_event``) unless accepted. A later alert
of a superevent (by ``time_created``) replaces the earlier one and its sky map; a
``RETRACTION`` keeps the slot and marks it ``retracted``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
from typing import IO, Any

from ..storehouse import KindSpec
from .events import Item, Skipped, cosmic, iso, parse_time, safe_id, text_list, timed
from .skymaps import MAX_SKYMAP_FILE_BYTES, SkyMapError, read_skymap

KIND = "gw"
INDEX_FIELDS = ("slot_id", "time", "mjd", "alert_type", "retracted", "significant", "area_90_deg2", "far_hz")
SPEC = KindSpec(KIND, INDEX_FIELDS)
ALERT_TYPES = ("PRELIMINARY", "INITIAL", "UPDATE", "RETRACTION", "EARLYWARNING")
SKYMAP_SUFFIX = ".multiorder.fits"
#: GraceDB's prefix of mock (playground) events: ``MS181101ab``, ``M12345``.
MOCK_PREFIX = "M"


def skymap_name(slot_id: str) -> str:
    """The file beside ``<slot_id>.json`` that holds the event's multi-order sky map."""
    return f"{slot_id}{SKYMAP_SUFFIX}"


def from_alert(doc: dict[str, Any], where: str, accept_mock: bool = False) -> Item:
    """One IGWN alert (a parsed ``igwn.gwalert`` message)."""
    try:
        slot_id = _unless_mock(safe_id(doc.get("superevent_id"), "superevent_id"), accept_mock)
        alert_type = str(doc.get("alert_type", "")).upper()
        if alert_type not in ALERT_TYPES:
            raise Skipped("bad_value", f"alert_type {doc.get('alert_type')!r} is none of {', '.join(ALERT_TYPES)}")
        created = iso(parse_time(doc.get("time_created")))
        if alert_type == "RETRACTION":
            return Item(KIND, where, cosmic(slot_id, KIND, alert_type=alert_type, retracted=True), order=created)
        event = doc.get("event")
        if not isinstance(event, dict):
            raise Skipped("bad_value", f"{alert_type} alert without an event")
        skymap = _alert_skymap(event.get("skymap"))
        areas = skymap.credible_areas_deg2((0.5, 0.9))
        slot = timed(cosmic(slot_id, KIND), parse_time(event.get("time")))
        slot.update(alert_type=alert_type, retracted=False, skymap=skymap_name(slot_id), area_50_deg2=areas[0],
                    area_90_deg2=areas[1], far_hz=_number(event.get("far")), significant=event.get("significant"),
                    classification=_mapping(event.get("classification")), properties=_mapping(event.get("properties")),
                    instruments=text_list(event.get("instruments"), "instruments"),
                    pipeline=event.get("pipeline"), group=event.get("group"), search=event.get("search"),
                    alert_time_created=created, **_identity(skymap))
        return Item(KIND, where, slot, skymap, order=created)
    except Skipped as problem:
        return Item(KIND, where, problem=problem)


def from_skymap_file(stream: IO[bytes], size: int | None, where: str, accept_mock: bool = False) -> Item:
    """One LVK sky-map FITS file (multi-order or flat, gzipped or not); a map whose
    ``OBJECT`` names a mock event is skipped as an alert of it would be."""
    try:
        try:
            skymap = read_skymap(stream, size)
        except SkyMapError as exc:
            raise Skipped("bad_skymap", str(exc)) from None
        moment = _date_obs(skymap.header.get("DATE-OBS"))
        rounded = moment + dt.timedelta(microseconds=500_000)  # the catalogues' GWYYMMDD_hhmmss, to the second
        slot_id = skymap.header.get("OBJECT") or rounded.strftime("GW%y%m%d_%H%M%S")
        slot_id = _unless_mock(safe_id(str(slot_id).strip(), "OBJECT"), accept_mock)
        areas = skymap.credible_areas_deg2((0.5, 0.9))
        slot = timed(cosmic(slot_id, KIND), moment)
        slot.update(alert_type=None, retracted=False, skymap=skymap_name(slot_id), area_50_deg2=areas[0],
                    area_90_deg2=areas[1], far_hz=None, significant=None, classification=None, properties=None,
                    instruments=text_list(str(skymap.header.get("INSTRUME") or ""), "INSTRUME"),
                    pipeline=skymap.header.get("CREATOR"), alert_time_created=None, **_identity(skymap))
        return Item(KIND, where, slot, skymap, order=iso(moment))
    except Skipped as problem:
        return Item(KIND, where, problem=problem)


def _unless_mock(slot_id: str, accept_mock: bool) -> str:
    """``slot_id``, or ``mock_event`` when it names a mock event and mocks are not accepted."""
    if slot_id.startswith(MOCK_PREFIX) and not accept_mock:
        raise Skipped("mock_event", f"{slot_id} is a mock event (pass --accept-mock to load it)")
    return slot_id


def _identity(skymap: Any) -> dict[str, Any]:
    """What recognises one event's map loaded twice (an alert, and its FITS saved beside
    it): the map's content digest and its DATE-OBS card."""
    date_obs = skymap.header.get("DATE-OBS")
    return {"skymap_sha256": skymap.content_sha256(), "skymap_date_obs": str(date_obs) if date_obs else None}


def same_event_key(slot: dict[str, Any]) -> tuple[str, str] | None:
    """(DATE-OBS, map digest) of a gw slot, or None when it has no map identity."""
    digest, date_obs = slot.get("skymap_sha256"), slot.get("skymap_date_obs")
    return (str(date_obs), str(digest)) if digest and date_obs else None


def _alert_skymap(encoded: Any) -> Any:
    if not isinstance(encoded, str) or not encoded:
        raise Skipped("bad_skymap", "the alert carries no sky map")
    if len(encoded) > MAX_SKYMAP_FILE_BYTES * 4 // 3:
        raise Skipped("bad_skymap", "the alert's sky map is larger than a sky map may be")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Skipped("bad_skymap", "the alert's sky map is not base64") from None
    try:
        return read_skymap(io.BytesIO(data), len(data))
    except SkyMapError as exc:
        raise Skipped("bad_skymap", f"the alert's sky map: {exc}") from None


def _date_obs(value: Any) -> dt.datetime:
    if not value:
        raise Skipped("no_time", "the sky map has no DATE-OBS")
    return parse_time(str(value))


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _mapping(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {str(key): _number(number) for key, number in value.items()}
