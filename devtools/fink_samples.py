"""Synthetic Fink ZTF alerts, shaped like the ``/api/v1/latests`` output, for the demo,
the tests and the benchmarks (no network: nothing is fetched from Fink).

The default composition matches the transient-kind roster the seed describes: 2,350
in-scope objects (sn 708, kilonova 21, unknown 1,621), 16 of them cross-labelled so that
the naive per-class tallies sum to 2,366, plus Solar-System objects (out of scope) and a
few in-scope objects that also have Solar-System alerts.

Solar-System alerts move across the sky as asteroids do (10–60 arcsec/hour) and carry an
``i:ssnamenr`` shaped like ZTF's: a numbered asteroid (``"4179"``) or a packed provisional
designation (``"2015BQ311"``) for ``Solar System MPC``, the string ``"null"`` otherwise. One
designation spans several ZTF object ids (a body seen on several nights gets a new id
each time it has moved away), as in the real stream.

One kilonova candidate (the first made, when the composition has one) is the optical
counterpart of a real event: it lies in the densest pixel of the sky map of S230518h
(``tests/data/messengers/S230518h-initial.igwn.json``) and is first seen 1.5 days after
that merger, so the cross-match's worked example (README: load that alert, then
``crossmatch``) finds one coincidence. It is moved, not added, and no random draw is
spent on it: every count and every other object stay as they were.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

LABELS = {"sn": "SN candidate", "kilonova": "Kilonova candidate", "unknown": "Unknown"}
SOLAR_SYSTEM_LABELS = ("Solar System MPC", "Solar System candidate")
JD_2024 = 2460310.5
#: The densest pixel of S230518h's INITIAL sky map (its centre, by ligo.skymap: searched
#: probability 7e-5, inside the 666 deg² 90 % region) and that merger's time as a JD
#: (2023-05-18T12:59:08.167Z).
S230518H_DENSEST_RA_DEG, S230518H_DENSEST_DEC_DEG = 95.71, -10.96
S230518H_MERGER_JD = 2460083.0410667
#: When the counterpart is first seen, after the merger (days).
COUNTERPART_DELAY_DAYS = 1.5


@dataclass
class Composition:
    """How many objects of each kind to make. The defaults are the seed's roster: 2,350
    objects, sn 708, kilonova 21, unknown 1,621; 16 cross-labelled (naive tallies 2,366)."""

    single: dict[str, int] = field(default_factory=lambda: {"sn": 696, "kilonova": 17, "unknown": 1621})
    #: (subtype label first, second label, objects): the first label wins.
    cross: list[tuple[str, str, int]] = field(default_factory=lambda: [("sn", "unknown", 12),
                                                                      ("kilonova", "unknown", 3),
                                                                      ("kilonova", "sn", 1)])
    solar_system_objects: int = 150
    mixed_with_solar_system: int = 5  # in-scope objects that also carry Solar-System alerts
    alerts_per_object: tuple[int, int] = (1, 20)
    #: Move the first kilonova candidate onto S230518h (in its map, 1.5 days after it).
    gw_counterpart: bool = True


def object_ids(rng: random.Random) -> Iterator[str]:
    seen: set[str] = set()
    while True:
        candidate = f"ZTF{rng.randint(17, 25)}{''.join(rng.choices(string.ascii_lowercase, k=7))}"
        if candidate not in seen:
            seen.add(candidate)
            yield candidate


def fink_alert(rng: random.Random, object_id: str, label: str, jd: float, ra: float, dec: float,
               candid: int, ndethist: int, negative: bool = False, ssnamenr: str = "null") -> dict[str, Any]:
    """One alert as a Fink API row (the keys the live fetcher stores verbatim)."""
    fid = rng.choice((1, 2, 2, 3))
    magpsf = round(rng.uniform(16.5, 21.0), 4)
    return {
        "i:objectId": object_id,
        "i:candid": candid,
        "i:ra": ra,
        "i:dec": dec,
        "i:jd": jd,
        "i:fid": fid,
        "i:magpsf": magpsf,
        "i:sigmapsf": round(rng.uniform(0.02, 0.2), 4),
        "i:ndethist": ndethist,
        "i:isdiffpos": "f" if negative else "t",
        "i:ssnamenr": ssnamenr,
        "d:cdsxmatch": rng.choice(("Unknown", "Galaxy", "Unknown")),
        "d:roid": 3 if label.startswith("Solar") else 0,
        "v:classification": label,
        "v:lastdate": "2024-02-01 00:00:00.000",
    }


def object_alerts(rng: random.Random, object_id: str, labels: list[str], count: int,
                  candids: Iterator[int], ra: float | None = None, dec: float | None = None) -> list[dict[str, Any]]:
    """``count`` alerts of one object at one sky position (arcsecond jitter), its labels
    spread over them, ZTF's cumulative ndethist rising but not monotonically per alert."""
    ra = rng.uniform(0, 360) if ra is None else ra
    dec = rng.uniform(-30, 85) if dec is None else dec
    start = JD_2024 + rng.uniform(0, 300)
    rows = []
    for index in range(count):
        jitter_dec = rng.gauss(0, 0.3) / 3600
        jitter_ra = rng.gauss(0, 0.3) / 3600 / max(0.05, abs(math.cos(math.radians(dec))))
        label = labels[index % len(labels)] if index < len(labels) else rng.choice(labels)
        rows.append(fink_alert(rng, object_id, label, start + index * rng.uniform(0.5, 3.0), (ra + jitter_ra) % 360,
                               dec + jitter_dec, next(candids), ndethist=index + 1 + rng.randint(-1, 3),
                               negative=rng.random() < 0.08))
    return rows


def dataset(composition: Composition | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """A Fink alert list with the given composition (default: the seed's roster)."""
    composition = composition or Composition()
    rng = random.Random(seed)
    ids = object_ids(rng)
    candids = iter(range(2_400_000_000_000_000_000 + seed * 10_000_000, 2**63))
    low, high = composition.alerts_per_object
    rows: list[dict[str, Any]] = []
    for subtype, count in composition.single.items():
        for _ in range(count):
            rows += object_alerts(rng, next(ids), [LABELS[subtype]], rng.randint(low, high), candids)
    for first, second, count in composition.cross:
        for _ in range(count):
            rows += object_alerts(rng, next(ids), [LABELS[first], LABELS[second]], rng.randint(max(2, low), high), candids)
    designations = designation_names(rng)
    remaining = composition.solar_system_objects
    while remaining > 0:
        mpc = rng.random() < 0.7
        crossings = min(rng.randint(1, 4) if mpc else 1, remaining)
        rows += minor_body_alerts(rng, ids, candids, crossings, next(designations) if mpc else None)
        remaining -= crossings
    mixed = [row["i:objectId"] for row in rows if row["v:classification"] == LABELS["unknown"]]
    for object_id in sorted(set(mixed))[: composition.mixed_with_solar_system]:
        template = next(row for row in rows if row["i:objectId"] == object_id)
        rows.append(fink_alert(rng, object_id, SOLAR_SYSTEM_LABELS[0], template["i:jd"] + 1.0, template["i:ra"],
                               template["i:dec"], next(candids), ndethist=1, ssnamenr=next(designations)))
    if composition.gw_counterpart:
        place_gw_counterpart(rows)
    rng.shuffle(rows)
    return rows


def place_gw_counterpart(rows: list[dict[str, Any]]) -> str | None:
    """Move the first kilonova candidate of ``rows`` (in place) into S230518h's sky map,
    first seen ``COUNTERPART_DELAY_DAYS`` after the merger, its alerts' spacing and
    arcsecond jitter kept; its object id, or None when there is no kilonova candidate."""
    first = next((row for row in rows if row["v:classification"] == LABELS["kilonova"]), None)
    if first is None:
        return None
    object_id = first["i:objectId"]
    alerts = [row for row in rows if row["i:objectId"] == object_id]
    shift_jd = S230518H_MERGER_JD + COUNTERPART_DELAY_DAYS - min(row["i:jd"] for row in alerts)
    ra0, dec0 = first["i:ra"], first["i:dec"]
    for row in alerts:
        offset_ra = (row["i:ra"] - ra0 + 180.0) % 360.0 - 180.0
        row["i:ra"] = (S230518H_DENSEST_RA_DEG + offset_ra) % 360.0
        row["i:dec"] = S230518H_DENSEST_DEC_DEG + row["i:dec"] - dec0
        row["i:jd"] += shift_jd
    return object_id


def designation_names(rng: random.Random) -> Iterator[str]:
    """Distinct designations shaped like ZTF's ``ssnamenr``: numbered asteroids ("4179")
    and packed provisional designations ("2015BQ311")."""
    seen: set[str] = set()
    while True:
        if rng.random() < 0.6:
            name = str(rng.randint(1, 650_000))
        else:
            half_month = rng.choice("ABCDEFGHJKLMNOPQRSTUVWXY")
            name = f"{rng.randint(2000, 2024)}{half_month}{rng.choice(string.ascii_uppercase)}{rng.randint(1, 400)}"
        if name not in seen:
            seen.add(name)
            yield name


def minor_body_alerts(rng: random.Random, ids: Iterator[str], candids: Iterator[int], crossings: int,
                      designation: str | None) -> list[dict[str, Any]]:
    """A moving body seen on ``crossings`` nights, each night under a new ZTF object id with
    1–4 alerts ~30 minutes apart; ``designation`` None makes it a Solar System candidate."""
    label = SOLAR_SYSTEM_LABELS[0] if designation else SOLAR_SYSTEM_LABELS[1]
    ra, dec = rng.uniform(0, 360), rng.uniform(-25, 30)  # near the ecliptic, mostly
    rate = rng.uniform(10, 60) / 3600  # degrees per hour
    angle = rng.uniform(0, 2 * math.pi)
    start = JD_2024 + rng.uniform(0, 300)
    rows = []
    for night in range(crossings):
        object_id = next(ids)
        first = start + night * rng.randint(1, 3) + rng.uniform(0.15, 0.3)
        for index in range(rng.randint(1, 4)):
            jd = first + index * rng.uniform(0.015, 0.03)
            hours = (jd - start) * 24
            alert_dec = dec + rate * hours * math.sin(angle)
            alert_ra = (ra + rate * hours * math.cos(angle) / math.cos(math.radians(alert_dec))) % 360
            rows.append(fink_alert(rng, object_id, label, jd, alert_ra, alert_dec, next(candids), ndethist=index + 1,
                                   ssnamenr=designation or "null"))
    return rows
