"""The ``uhecr`` kind: one slot per ultra-high-energy cosmic ray.

From the event lists the collaborations publish:

* the **Pierre Auger Observatory** data set of events above 32 EeV (ApJS 2022): columns
  ``#Yr JD UTC Th Ph RA Dec E Expo`` (year, day of the year, UTC as Unix seconds,
  zenith, azimuth, RA, Dec, energy in EeV, exposure), whitespace-separated;
* **Telescope Array** lists (e.g. the events above 57 EeV, ApJL 790 L21): lines
  ``YYYY Mon DD hh mm ss zenith E RA Dec`` (the CDS machine-readable table) or
  ``YYYY Mon DD hh:mm:ss zenith E RA Dec`` (the table as the paper prints it), optionally
  followed by more numbers (copies that append galactic l and b); minus signs may be
  Unicode (U+2212);
* a plain CSV ``experiment,time,ra_deg,dec_deg,energy_eev`` for anything else.

The slot id is ``<experiment>-<UTC time as YYYYMMDDTHHMMSS>``, the experiment written
``Auger`` or ``TA`` (others as given, letters and digits only).
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
    from_unix,
    iso,
    optional,
    parse_time,
    positive,
    safe_id,
    sky_position,
    timed,
    utc,
)
from alert_pipeline.storehouse.messengers.kind import TEXT, MatchRule, MessengerKind, Reader, TextHead
from alert_pipeline.storehouse.messengers.rules import LONGEST_WINDOW_DAYS, Transients, rule, uhecr_chance, uhecr_pairs
from alert_pipeline.storehouse.slots import KindSpec

KIND = "uhecr"
INDEX_FIELDS = ("slot_id", "time", "mjd", "ra_deg", "dec_deg", "energy_eev", "experiment")
SPEC = KindSpec(KIND, INDEX_FIELDS)
AUGER_COLUMNS = ("#Yr", "JD", "UTC", "Th", "Ph", "RA", "Dec", "E")
CSV_COLUMNS = ("experiment", "time", "ra_deg", "dec_deg", "energy_eev")
_NUMBER = r"[-+\u2212]?\d+(?:\.\d*)?"
#: A TA row: date, time as "hh mm ss" or "hh:mm:ss", zenith, energy, RA, Dec, and
#: optionally more numbers (galactic l, b) that are not read.
TA_ROW = re.compile(rf"^\s*(\d{{4}})\s+([A-Z][a-z]{{2}})\s+(\d{{1,2}})\s+(\d{{1,2}})(?:\s+|:)(\d{{1,2}})(?:\s+|:)(\d{{1,2}})\s+"
                    rf"({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})(?:\s+{_NUMBER})*\s*$")
_EXPERIMENTS = {"auger": "Auger", "pao": "Auger", "ta": "TA", "telescopearray": "TA"}


def is_auger(first_line: str) -> bool:
    return first_line.split()[:len(AUGER_COLUMNS)] == list(AUGER_COLUMNS)


def is_ta(text: str) -> bool:
    return any(TA_ROW.match(line) for line in text.splitlines()[:400])


def is_plain_csv(header: list[str]) -> bool:
    return [column.strip().lower() for column in header[:len(CSV_COLUMNS)]] == list(CSV_COLUMNS)


def from_auger(text: str, where: str) -> Iterator[Item]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        place = f"{where}:{number}"
        try:
            cells = line.split()
            if len(cells) < len(AUGER_COLUMNS):
                raise Skipped("bad_row", f"{len(cells)} columns, expected {len(AUGER_COLUMNS)} or more")
            moment = from_unix(cells[2])
            yield _item("Auger", moment, cells[5], cells[6], cells[7], place, zenith=cells[3])
        except Skipped as problem:
            yield Item(KIND, place, problem=problem)


def from_ta(text: str, where: str) -> Iterator[Item]:
    for number, line in enumerate(text.splitlines(), start=1):
        match = TA_ROW.match(line)
        if not match:
            continue
        place = f"{where}:{number}"
        year, month, day, hour, minute, second, zenith, energy, ra, dec = match.groups()
        try:
            try:
                moment = utc(dt.datetime.strptime(f"{year} {month} {day} {hour} {minute} {second}",
                                                  "%Y %b %d %H %M %S").replace(tzinfo=dt.UTC))
            except ValueError:
                raise Skipped("bad_time", f"{year} {month} {day} {hour}:{minute}:{second} is not a date") from None
            yield _item("TA", moment, ra, dec, energy, place, zenith=zenith)
        except Skipped as problem:
            yield Item(KIND, place, problem=problem)


def from_csv(text: str, where: str) -> Iterator[Item]:
    """Every row of a plain CSV (a file the csv module cannot split, e.g. a quote never
    closed, ends as one problem)."""
    rows = CsvRows(text, where, KIND)
    for number, raw in rows:
        row = {str(key).strip().lower(): value for key, value in raw.items()}
        place = f"{where}:{number}"
        try:
            experiment = _experiment(row.get("experiment"))
            yield _item(experiment, parse_time(row.get("time")), row.get("ra_deg"), row.get("dec_deg"),
                        row.get("energy_eev"), place)
        except Skipped as problem:
            yield Item(KIND, place, problem=problem)
    if rows.problem:
        yield rows.problem


def _item(experiment: str, moment: dt.datetime, ra: Any, dec: Any, energy: Any, where: str,
          zenith: Any = None) -> Item:
    ra_deg, dec_deg = sky_position(ra, dec)
    energy_eev = positive(energy, "energy")
    if energy_eev is None:
        raise Skipped("bad_value", "no energy")
    slot_id = safe_id(f"{experiment}-{moment:%Y%m%dT%H%M%S}", "experiment and time")
    slot = timed(cosmic(slot_id, KIND), moment)
    zenith_deg = optional(zenith, "zenith")
    slot.update(ra_deg=ra_deg, dec_deg=dec_deg, energy_eev=energy_eev, experiment=experiment, zenith_deg=zenith_deg)
    return Item(KIND, where, slot, order=iso(moment))


def _experiment(text: Any) -> str:
    name = re.sub(r"[^A-Za-z0-9]", "", str(text or ""))
    if not name or len(name) > 16:
        raise Skipped("bad_value", f"experiment {str(text)[:40]!r} is not a short name")
    return _EXPERIMENTS.get(name.lower(), name)



def _match(events: dict[str, dict[str, Any]], transients: Transients, rules: Any,
           _directory: str) -> dict[str, list | Skipped]:
    """The rays' pairs, found for all rays at once (the year-long window prunes little:
    a sky match first, then the time), each with its n_chance."""
    ordered = list(events)
    pairs = uhecr_pairs([events[event_id] for event_id in ordered], transients, rules)
    return {event_id: [(found, uhecr_chance(events[event_id], transients, rules)) for found in pairs[position]]
            for position, event_id in enumerate(ordered)}


def _read_csv(text: str, where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from from_csv(text, where)


def _read_auger(text: str, where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from from_auger(text, where)


def _read_ta(text: str, where: str, _accept_mock: bool) -> Iterator[Item]:
    yield from from_ta(text, where)


def _recognise_plain_csv(head: TextHead) -> bool:
    return is_plain_csv(head.header)


def _recognise_auger(head: TextHead) -> bool:
    return is_auger(head.first_line)


def _recognise_ta(head: TextHead) -> bool:
    return is_ta(head.text)


#: The cross-match rule's defaults: the window either side (days) and the radius (degrees),
#: declared with their ranges in ``KIND_SPEC.match``.
WINDOW_DAYS, RADIUS_DEG = 365.0, 3.0

KIND_SPEC = MessengerKind(
    spec=SPEC,
    readers=(Reader("a plain cosmic-ray CSV", TEXT, _recognise_plain_csv, _read_csv),
             Reader("an Auger event list", TEXT, _recognise_auger, _read_auger),
             Reader("a Telescope Array event list", TEXT, _recognise_ta, _read_ta)),
    roster_field="experiment",
    match=MatchRule(
        required=("ra_deg", "dec_deg"), match=_match,
        settings=(rule("uhecr_window_days", WINDOW_DAYS, LONGEST_WINDOW_DAYS,
                       "a cosmic ray this long before the first or after the last detection (days)"),
                  rule("uhecr_radius_deg", RADIUS_DEG, 30.0, "the largest separation from a cosmic ray (degrees)"))))
