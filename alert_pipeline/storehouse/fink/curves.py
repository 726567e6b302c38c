"""Per-band light curves and sky tracks, cut from a group's alerts in time order.

The inputs are the parallel arrays of ``queries.SERIES`` (one element per alert, one
alert per candid, sorted by time then candid). Values are passed through exactly as the
source rows hold them: no rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: ZTF filter ids in wavelength order.
BANDS = {1: "g", 2: "r", 3: "i"}
MJD_OFFSET = 2400000.5
#: Palomar (ZTF) is at 116.86° W: its local noon, when one observing night ends and the
#: next begins, is ~19:48 UTC. A night is numbered by the MJD of the noon that opens it.
NIGHT_START_FRACTION = 0.5 + 116.86 / 360


def finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def finite_list(values: Sequence[float | None]) -> Sequence[float | None]:
    """``values`` with NaN and infinities as None (the common all-finite case in one sum)."""
    if None not in values and math.isfinite(sum(values)):
        return values
    return [finite(value) for value in values]


def candid_values(candids: Sequence[str]) -> list[int | str]:
    """Candids as the integers ZTF made them (one that is not an integer stays text)."""
    try:
        return [int(candid) for candid in candids]
    except ValueError:
        return [int(candid) if candid.lstrip("-").isdigit() else candid for candid in candids]


def light_curve(filters: Sequence[int | None], jds: Sequence[float], mags: Sequence[float | None],
                mag_errs: Sequence[float | None], candids: Sequence[str],
                positives: Sequence[bool]) -> dict[str, dict[str, list]]:
    """``{"g": {"mjd": [...], "mag": [...], "mag_err": [...], "candid": [...], "positive": [...]}, ...}``
    for each band present, bands in wavelength order. Negative detections stay, flagged:
    they are real measurements of a flux decrease. Alerts of an unknown filter id are left out."""
    numbers = candid_values(candids)
    mags, mag_errs = finite_list(mags), finite_list(mag_errs)
    by_filter: dict[int | None, list[int]] = {}
    for index, filter_id in enumerate(filters):
        by_filter.setdefault(filter_id, []).append(index)
    curve: dict[str, dict[str, list]] = {}
    for number, band in BANDS.items():
        picked = by_filter.get(number)
        if picked:
            curve[band] = {
                "mjd": [jds[index] - MJD_OFFSET for index in picked],
                "mag": [mags[index] for index in picked],
                "mag_err": [mag_errs[index] for index in picked],
                "candid": [numbers[index] for index in picked],
                "positive": [bool(positives[index]) for index in picked],
            }
    return curve


def night_count(jds: Sequence[float]) -> int:
    """Distinct ZTF observing nights (local noon to local noon at Palomar)."""
    return len({math.floor(jd - MJD_OFFSET - NIGHT_START_FRACTION) for jd in jds})


def separation_degrees(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle angle between two sky positions (Vincenty's formula: exact at every
    separation, from arcseconds to antipodes)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (ra1, dec1, ra2, dec2))
    delta = lon2 - lon1
    numerator = math.hypot(math.cos(lat2) * math.sin(delta),
                           math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(delta))
    denominator = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(delta)
    return math.degrees(math.atan2(numerator, denominator))


def motion_arcsec_per_hour(first: tuple[float, float, float], last: tuple[float, float, float]) -> float | None:
    """Mean apparent motion from the first (jd, ra, dec) to the last, along the great
    circle; None for a single epoch."""
    hours = (last[0] - first[0]) * 24
    if hours <= 0:
        return None
    return separation_degrees(first[1], first[2], last[1], last[2]) * 3600 / hours
