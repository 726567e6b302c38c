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
import logging
import math
import os
from collections.abc import Iterator
from typing import IO, Any

from alert_pipeline.durable import open_regular, write_atomically
from alert_pipeline.storehouse.messengers.events import (
    Item,
    Skipped,
    cosmic,
    iso,
    parse_time,
    safe_id,
    text_list,
    timed,
)
from alert_pipeline.storehouse.messengers.kind import JSON, STREAM, MatchRule, MessengerKind, Reader, Revision
from alert_pipeline.storehouse.messengers.rules import (
    LONGEST_WINDOW_DAYS,
    Match,
    Transients,
    gw_matches,
    load_skymap,
    per_event,
    rule,
)
from alert_pipeline.storehouse.messengers.skymaps import MAX_SKYMAP_FILE_BYTES, SkyMapError, read_skymap
from alert_pipeline.storehouse.slots import KindSpec, KindStore

log = logging.getLogger("transient_kind_builder")

KIND = "gw"
INDEX_FIELDS = ("slot_id", "time", "mjd", "alert_type", "retracted", "significant", "area_90_deg2", "far_hz")
SPEC = KindSpec(KIND, INDEX_FIELDS)
ALERT_TYPES = ("PRELIMINARY", "INITIAL", "UPDATE", "RETRACTION", "EARLYWARNING")
SKYMAP_SUFFIX = ".multiorder.fits"
#: GraceDB's prefix of mock (playground) events: ``MS181101ab``, ``M12345``.
MOCK_PREFIX = "M"
#: How a FITS file starts, plain or gzipped (a sky map's first bytes).
FITS_STARTS = (b"SIMPLE  =", b"\x1f\x8b")


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
                    alert_time_created=created, **_identity(skymap), **_distance(skymap))
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
                    pipeline=skymap.header.get("CREATOR"), alert_time_created=None, **_identity(skymap),
                    **_distance(skymap))
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


#: The slot fields of the distance the map's header states (posterior mean and standard deviation, Mpc).
DISTANCE_MEAN_FIELD, DISTANCE_STD_FIELD = "distance_mean_mpc", "distance_std_mpc"


def _distance(skymap: Any) -> dict[str, Any]:
    """Whether the map has distance layers (so its matches get volume fields), and the
    posterior mean and standard deviation of the distance its header states (Mpc)."""
    mean, std = (_number(skymap.header.get(key)) for key in ("DISTMEAN", "DISTSTD"))
    return {"has_distance": skymap.has_distance,
            DISTANCE_MEAN_FIELD: mean if mean is not None and math.isfinite(mean) else None,
            DISTANCE_STD_FIELD: std if std is not None and math.isfinite(std) else None}


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


# ------------------------------------------------------------------ the revision rule
class GwRevision(Revision):
    """A later alert of a superevent (by ``time_created``) replaces the earlier slot and
    its sky map (``<slot>.multiorder.fits``, written before the slot that names it); an
    older one is skipped (``superseded``); a RETRACTION keeps the slot and marks it
    ``retracted``. One event loaded twice (an alert, and its own sky map saved beside it
    as a FITS file): a sky-map file is that event when its ``OBJECT`` names a stored
    alert's slot, or when its ``DATE-OBS`` and map content (``skymap_sha256``) equal a
    stored slot's; the alert's slot is kept (the file counts as unchanged), and an alert
    arriving after the file of its own map replaces the file's slot."""

    def __init__(self, store: KindStore) -> None:
        super().__init__(store)
        self._identity: dict[tuple[str, str], str] | None = None

    def merge(self, slot: dict[str, Any], existing: dict[str, Any] | None,
              item: Item) -> tuple[dict[str, Any] | None, str | None]:
        twin = self._prepare(slot, existing, item)
        if twin is not None:
            log.info("%s is the sky map of %s, already stored: kept as it is", item.where, twin)
        return existing, twin

    def written(self, slot: dict[str, Any]) -> None:
        if key := same_event_key(slot):
            self._keys()[key] = slot["slot_id"]

    def _prepare(self, slot: dict[str, Any], existing: dict[str, Any] | None, item: Item) -> str | None:
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
        key = same_event_key(slot)
        twin = self._keys().get(key) if key else None
        if twin is not None and twin != slot["slot_id"]:
            if from_file:
                return twin
            self._drop_file_slot(twin)
        newer, older = item.order, (existing or {}).get("alert_time_created")
        if older and slot.get("alert_time_created") and newer < older:
            raise Skipped("superseded", f"an alert of {newer}, older than the stored one of {older}")
        if existing and existing.get("retracted") and older and newer < (existing.get("retraction_time_created") or ""):
            slot["retracted"] = True
        path = os.path.join(self.store.directory, skymap_name(slot["slot_id"]))
        data = item.skymap.fits_bytes()
        if not (os.path.exists(path) and _same_bytes(path, data)):
            write_atomically(path, data, durable=False)
        return None

    def _keys(self) -> dict[tuple[str, str], str]:
        """(DATE-OBS, map digest) → slot id of the stored gw slots, read once per run."""
        if self._identity is None:
            self._identity = {}
            for slot_id in sorted(self.store.slot_ids_on_disk()):
                stored = self.store.read_slot(slot_id)
                if stored and (key := same_event_key(stored)):
                    self._identity.setdefault(key, slot_id)
        return self._identity

    def _drop_file_slot(self, slot_id: str) -> None:
        """Remove a slot made from a bare sky-map file, now that its event's alert came."""
        stored = self.store.read_slot(slot_id)
        if stored is None or stored.get("alert_type"):
            return  # only a sky-map file's slot gives way
        for name in (skymap_name(slot_id), os.path.basename(self.store.slot_path(slot_id))):
            try:
                os.remove(os.path.join(self.store.directory, name))
            except FileNotFoundError:
                pass
        log.warning("gw slot %s (from a sky-map file) replaced by its event's alert", slot_id)


def _same_bytes(path: str, data: bytes) -> bool:
    """Whether the regular file ``path`` holds ``data`` (a link or a FIFO in its place
    does not, and is replaced by the atomic write)."""
    try:
        with open_regular(path) as handle:
            return os.fstat(handle.fileno()).st_size == len(data) and handle.read(len(data) + 1) == data
    except OSError:
        return False


# ------------------------------------------------------------------ the kind
def _read_skymap_stream(stream: IO[bytes], size: int | None, where: str, accept_mock: bool) -> Iterator[Item]:
    yield from_skymap_file(stream, size, where, accept_mock)


def _read_alert(doc: dict[str, Any], where: str, accept_mock: bool) -> Iterator[Item]:
    yield from_alert(doc, where, accept_mock)


def _matches(event: dict[str, Any], transients: Transients, rules: Any, directory: str) -> tuple[list[Match], float]:
    """The transients inside the event's credible region and window (its sky map beside its slot)."""
    return gw_matches(event, load_skymap(directory, event), transients, rules)


def _retracted(slot: dict[str, Any]) -> Skipped | None:
    return Skipped("retracted", "the event was retracted") if slot.get("retracted") else None


def _roster_extra(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"retracted": sum(1 for entry in entries if entry.get("retracted"))}


#: The cross-match rule's defaults: the window after the event (days) and the largest credible
#: level at the transient (declared with their ranges in ``KIND_SPEC.match``).
WINDOW_DAYS, CREDIBLE_LEVEL = 14.0, 0.90

KIND_SPEC = MessengerKind(
    spec=SPEC,
    readers=(Reader("a FITS sky map", STREAM, lambda head: head.startswith(FITS_STARTS), _read_skymap_stream),
             Reader("an IGWN alert", JSON, lambda doc: "superevent_id" in doc, _read_alert)),
    roster_field="alert_type", unlabelled="sky-map file", roster_extra=_roster_extra,
    revision=GwRevision, streamed=True, gcn_topics=("igwn.gwalert",),
    expected_problems=("mock_event", "retraction_of_unknown"),
    match=MatchRule(
        required=("area_90_deg2", "skymap"), text=("skymap",), positioned=False, unmatchable=_retracted,
        match=per_event(_matches),
        settings=(rule("gw_window_days", WINDOW_DAYS, LONGEST_WINDOW_DAYS,
                       "a transient first seen up to this long after a GW event (days)"),
                  rule("gw_credible_level", CREDIBLE_LEVEL, 1.0, "the largest credible level at the transient's position"))))
