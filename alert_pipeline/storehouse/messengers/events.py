"""What every messenger format yields, and the checks every event passes.

A format's reader turns its input into ``Item`` objects: a slot to store (with, for a
gravitational wave, its sky map) or a problem (``Skipped``: the reason, counted, and
where it was found, for the log). Each value is checked here before it reaches a slot:
coordinates on the sky, errors finite and not negative, energies positive, times
between 1900 and 2100.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from alert_pipeline.storehouse.slots import is_reserved

MJD_EPOCH = dt.datetime(1858, 11, 17, tzinfo=dt.UTC)
EARLIEST, LATEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
#: What a messenger slot id may be (it names the slot's file).
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Skipped(ValueError):
    """An event that cannot have a slot; ``reason`` is the counted tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Item:
    """One event read from an input: its ``slot`` (and ``skymap`` for a GW event), or
    the ``problem`` that kept it out; ``where`` names the file and line or the Kafka
    offset, ``order`` says which of two versions of one event is newer."""

    kind: str
    where: str
    slot: dict[str, Any] | None = None
    skymap: Any = None
    problem: Skipped | None = None
    order: str = ""


def finite(value: Any, name: str, reason: str = "bad_value") -> float:
    """``value`` as a finite float (text such as "1.5" or "−1.5" with a Unicode minus too)."""
    if isinstance(value, str):
        value = value.strip().replace("\u2212", "-")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Skipped(reason, f"{name} = {str(value)[:40]!r} is not a number") from None
    except OverflowError:  # an integer of hundreds of digits
        raise Skipped(reason, f"{name} = {str(value)[:40]!r}… is not a finite number") from None
    if not math.isfinite(number):
        raise Skipped(reason, f"{name} = {value!r} is not finite")
    return number


def optional(value: Any, name: str) -> float | None:
    """A finite number, or None for a missing one ('', 'None', null, NaN)."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null", "nan", "NaN")):
        return None
    number = finite(value, name)
    return number


def sky_position(ra: Any, dec: Any) -> tuple[float, float]:
    """(RA, Dec) in degrees, RA in [0, 360) and Dec in [-90, 90]."""
    ra_deg, dec_deg = finite(ra, "ra", "bad_coordinates"), finite(dec, "dec", "bad_coordinates")
    if not (0 <= ra_deg <= 360 and -90 <= dec_deg <= 90):
        raise Skipped("bad_coordinates", f"(ra, dec) = ({ra_deg}, {dec_deg}) is not on the sky")
    return ra_deg % 360.0, dec_deg


def error_deg(value: Any, name: str) -> float:
    error = finite(value, name, "bad_error")
    if error < 0 or error > 180:
        raise Skipped("bad_error", f"{name} = {error} is not an error in degrees")
    return error


def positive(value: Any, name: str) -> float | None:
    number = optional(value, name)
    if number is not None and number <= 0:
        raise Skipped("bad_value", f"{name} = {number} must be positive")
    return number


def utc(moment: dt.datetime) -> dt.datetime:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    if not EARLIEST <= moment < LATEST:
        raise Skipped("bad_time", f"time {moment.isoformat()} is outside 1900-2100")
    return moment


def parse_time(text: Any) -> dt.datetime:
    """An ISO 8601 time (a space instead of the T, Z or an offset, or none: UTC)."""
    if not isinstance(text, str) or not text.strip():
        raise Skipped("no_time", "no time given")
    cleaned = text.strip().replace("Z", "+00:00").replace(" ", "T", 1)
    try:
        return utc(dt.datetime.fromisoformat(cleaned))
    except (ValueError, OverflowError):
        raise Skipped("bad_time", f"time {text!r} is not ISO 8601") from None


def from_mjd(value: Any) -> dt.datetime:
    mjd = finite(value, "mjd", "bad_time")
    try:
        return utc(MJD_EPOCH + dt.timedelta(days=mjd))
    except OverflowError:
        raise Skipped("bad_time", f"MJD {mjd} is outside 1900-2100") from None


def from_unix(value: Any) -> dt.datetime:
    seconds = finite(value, "unix time", "bad_time")
    try:
        return utc(dt.datetime.fromtimestamp(seconds, dt.UTC))
    except (OverflowError, OSError, ValueError):
        raise Skipped("bad_time", f"Unix time {seconds} is outside 1900-2100") from None


def iso(moment: dt.datetime) -> str:
    """ISO 8601 UTC with a Z, to the microsecond when there is one."""
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.astimezone(dt.UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def mjd(moment: dt.datetime) -> float:
    return (moment - MJD_EPOCH).total_seconds() / 86400.0


def timed(slot: dict[str, Any], moment: dt.datetime, source_mjd: float | None = None) -> dict[str, Any]:
    """``slot`` with ``time`` (ISO UTC) and ``mjd`` set from ``moment`` (the source's own
    MJD, exactly as published, when it gave one)."""
    slot["time"], slot["mjd"] = iso(moment), mjd(moment) if source_mjd is None else source_mjd
    return slot


def safe_id(text: str, what: str) -> str:
    """``text`` when it can name a slot file: safe characters, and not the name of a
    kind-level file (``index``, ``roster``, in any case)."""
    if not isinstance(text, str) or not SAFE_ID.fullmatch(text) or is_reserved(text):
        raise Skipped("unsafe_id", f"{what} {str(text)[:80]!r} cannot name a slot")
    return text


def offset(moment: dt.datetime, seconds: Any, name: str, limit: float) -> dt.datetime:
    """``moment`` plus ``seconds`` (at most ``limit`` either way), checked as any time."""
    value = finite(seconds, name, "bad_time")
    if abs(value) > limit:
        raise Skipped("bad_time", f"{name} = {value} s is more than {limit:g} s")
    return utc(moment + dt.timedelta(seconds=value))


def text_list(value: Any, name: str) -> list[str]:
    """A list of strings from a JSON list of strings or one comma-separated string
    (``"H1,L1"``); None or missing is an empty list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return [part.strip() for part in value if part.strip()]
    raise Skipped("bad_value", f"{name} = {str(value)[:80]!r} is not a list of names")


def cosmic(slot_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    """The fields every cosmic slot has: a sky direction, so ``lat``/``lon`` stay null."""
    return {"slot_id": slot_id, "kind": kind, "lat": None, "lon": None, **fields}


@dataclass
class CsvRows:
    """The rows of a CSV document with their line numbers (blank rows skipped). The csv
    module may refuse the file from some line on (a quote never closed): the rows before
    it are kept and ``problem`` then holds one ``bad_row`` Item for the rest, to yield."""

    text: str
    where: str
    kind: str
    problem: Item | None = None

    def __iter__(self) -> Iterator[tuple[int, dict[str | None, Any]]]:
        rows = csv.DictReader(io.StringIO(self.text))
        number = 1
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                self.problem = Item(self.kind, f"{self.where}:{rows.line_num}",
                                    problem=Skipped("bad_row", f"not CSV from here on: {exc}"))
                return
            number += 1
            if any((value or "").strip() for value in row.values() if isinstance(value, str)):
                yield number, row
