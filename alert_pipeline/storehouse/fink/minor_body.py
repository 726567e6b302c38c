"""The ``minor_body`` kind: Solar-System alerts, one slot per body.

* ``Solar System MPC`` rows: one slot per Minor Planet Center designation, Fink's
  ``i:ssnamenr`` (ZTF's nearest known Solar-System object). An asteroid crosses many ZTF
  object ids, so one slot gathers them. ``subtype`` = ``mpc``.
* ``Solar System candidate`` rows (no designation): one slot per ZTF object, ``subtype``
  = ``candidate``, ``provisional``.

A designation becomes a file name through ``EscapedSlotNames``: letters, digits, space,
``_``, ``-``, ``/`` and ``.`` are allowed (at most 64 characters) and mapped to a safe,
reversible file name that no other slot's name equals, even ignoring case; a candidate's
ZTF object id is its own file name. Anything else is skipped and counted
(``unsafe_designation``: other characters, longer, a kind-level file's name such as
``INDEX`` in any case, or a ZTF object id in any case, which would name a candidate's
file), as is an MPC row without a designation, or one of only spaces (``no_designation``).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from alert_pipeline.storehouse.fink import queries
from alert_pipeline.storehouse.fink.curves import BANDS, finite, light_curve, motion_arcsec_per_hour, night_count
from alert_pipeline.storehouse.fink.db import MJD_OFFSET, jd_to_iso
from alert_pipeline.storehouse.fink.queries import ZTF_OBJECT_ID
from alert_pipeline.storehouse.fink.roster import Roster
from alert_pipeline.storehouse.slots import EscapedSlotNames, KindSpec, RowSource

KIND = "minor_body"
MPC_LABEL = "Solar System MPC"
CANDIDATE_LABEL = "Solar System candidate"
LABELS = (MPC_LABEL, CANDIDATE_LABEL)
SUBTYPES = ("mpc", "candidate")
NAMES = EscapedSlotNames(verbatim=ZTF_OBJECT_ID)
_LIKE_ZTF_OBJECT_ID = re.compile(ZTF_OBJECT_ID, re.IGNORECASE)
INDEX_FIELDS = ("slot_id", "subtype", "designation", "first_mjd", "last_mjd", "n_alerts", "n_nights",
                "ra_deg_last", "dec_deg_last", "provisional")


def designation_problem(designation: str) -> str | None:
    """Why an MPC designation cannot have a slot (``no_designation``,
    ``unsafe_designation``), or None."""
    if not designation.strip():
        return "no_designation"
    if not _safe(designation) or _LIKE_ZTF_OBJECT_ID.fullmatch(designation):
        return "unsafe_designation"  # a ZTF-id-shaped designation would name a candidate's file
    return None


def designation_skips(rows_per_designation: dict[str, int]) -> dict[str, int]:
    """Rows skipped per reason, from the valid MPC rows counted per designation."""
    skipped: dict[str, int] = {}
    for designation, rows in rows_per_designation.items():
        problem = designation_problem(designation)
        if problem:
            skipped[problem] = skipped.get(problem, 0) + rows
    return skipped


def _safe(body: str) -> bool:
    try:
        NAMES.stem(body)
    except ValueError:
        return False
    return True


def body_slot(row: tuple, provenance: dict[str, Any], roster: Roster) -> dict[str, Any] | None:
    """One minor-body slot from a ``queries.PER_BODY`` row, or None (counted) when the
    body cannot have a slot."""
    body, mpc, n_alerts, object_ids, ras, decs, fink, *series = row
    filters, jds, mags, _, _, positives = series
    problem = designation_problem(body) if mpc else None if _safe(body) else "unsafe_designation"
    if problem:
        roster.skipped_rows[problem] = roster.skipped_rows.get(problem, 0) + n_alerts
        return None
    subtype = "mpc" if mpc else "candidate"
    roster.objects += 1
    roster.by_subtype[subtype] += 1
    detected = [(jd, mag) for jd, mag, positive in zip(jds, mags, positives, strict=True)
                if positive and finite(mag) is not None]
    return {
        "slot_id": body,
        "kind": KIND,
        "subtype": subtype,
        "designation": body if mpc else None,
        "ztf_object_ids": list(object_ids),
        "provisional": not mpc,
        "lat": None,
        "lon": None,
        "n_alerts": n_alerts,
        "first_mjd": jds[0] - MJD_OFFSET,
        "last_mjd": jds[-1] - MJD_OFFSET,
        "first_detection": jd_to_iso(jds[0]),
        "last_detection": jd_to_iso(jds[-1]),
        "n_nights": night_count(jds),
        "ra_deg_first": finite(ras[0]),
        "dec_deg_first": finite(decs[0]),
        "ra_deg_last": finite(ras[-1]),
        "dec_deg_last": finite(decs[-1]),
        "motion_arcsec_per_hour": motion_arcsec_per_hour((jds[0], ras[0], decs[0]), (jds[-1], ras[-1], decs[-1])),
        "mag_brightest": min((mag for _, mag in detected), default=None),
        "mag_faintest": max((mag for _, mag in detected), default=None),
        "mag_latest": detected[-1][1] if detected else None,
        "bands": [band for number, band in BANDS.items() if number in set(filters)],
        "light_curve": light_curve(*series),
        "source_fields": fink,
        "provenance": {**provenance, "rows_used": n_alerts},
    }


SPEC = KindSpec(KIND, INDEX_FIELDS, NAMES, RowSource(queries.PER_BODY, {"mpc": MPC_LABEL, "labels": list(LABELS)},
                                                     body_slot, partial(Roster.of, SUBTYPES)))
