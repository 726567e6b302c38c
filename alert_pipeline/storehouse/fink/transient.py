"""The ``transient`` kind: one slot per ZTF object of an in-scope Fink class.

Subtype by the most specific label an object's alerts carry (kilonova > sn > unknown);
``Unknown`` objects are provisional. The slot summarises the object's in-scope alerts
(one per candid) and holds their per-band light curve.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from alert_pipeline.storehouse.fink import distance, queries
from alert_pipeline.storehouse.fink.curves import BANDS, finite, finite_list, light_curve
from alert_pipeline.storehouse.fink.db import MJD_OFFSET, jd_to_iso
from alert_pipeline.storehouse.fink.roster import Roster
from alert_pipeline.storehouse.slots import KindSpec, RowSource

KIND = "transient"
#: Fink label → (subtype, specificity). Every other label is out of scope.
IN_SCOPE: dict[str, tuple[str, int]] = {
    "Kilonova candidate": ("kilonova", 3),
    "SN candidate": ("sn", 2),
    "Unknown": ("unknown", 1),
}
SUBTYPES = ("sn", "kilonova", "unknown")
#: Fink label → the subtype the build gives it.
FINK_SUBTYPES = {label: subtype for label, (subtype, _) in IN_SCOPE.items()}
#: ``distance`` (``fink.distance``) is in the index so the cross-match reads it without opening slots.
INDEX_FIELDS = ("slot_id", "subtype", "ra_deg", "dec_deg", "first_mjd", "last_mjd", "n_alerts", "provisional",
                "distance")


LABEL_OF_RANK = {rank: label for label, (_, rank) in IN_SCOPE.items()}


def transient_slot(row: tuple, provenance: dict[str, Any], roster: Roster) -> dict[str, Any]:
    """One transient slot from a ``queries.PER_OBJECT`` row (one object's alerts as
    arrays in time order)."""
    object_id, ranks, ndets, ras, decs, fink, *series = row
    filters, jds, mags, _, _, positives = series
    label = LABEL_OF_RANK[max(ranks)]
    subtype = IN_SCOPE[label][0]
    roster.objects += 1
    roster.by_subtype[subtype] += 1
    magnitudes = [mag for mag, positive in zip(finite_list(mags), positives, strict=True)
                  if positive and mag is not None]
    ra_scatter, dec_scatter = scatter_arcsec(ras, decs)
    labels: dict[str, int] = {}
    for rank in ranks:
        labels[LABEL_OF_RANK[rank]] = labels.get(LABEL_OF_RANK[rank], 0) + 1
    return {
        "slot_id": object_id,
        "kind": KIND,
        "subtype": subtype,
        "fink_classification": label,
        "labels": dict(sorted(labels.items())),
        "provisional": subtype == "unknown",
        "lat": None,
        "lon": None,
        "ra_deg": finite(ras[-1]),
        "dec_deg": finite(decs[-1]),
        "ra_scatter_arcsec": ra_scatter,
        "dec_scatter_arcsec": dec_scatter,
        "n_alerts": len(jds),
        "max_n_detections": max((n for n in ndets if n is not None), default=None),
        "first_detection": jd_to_iso(jds[0]),
        "last_detection": jd_to_iso(jds[-1]),
        "first_mjd": jds[0] - MJD_OFFSET,
        "last_mjd": jds[-1] - MJD_OFFSET,
        "duration_days": jds[-1] - jds[0],
        "mag_brightest": min(magnitudes, default=None),
        "mag_faintest": max(magnitudes, default=None),
        "mag_latest": magnitudes[-1] if magnitudes else None,
        "bands": [band for number, band in BANDS.items() if number in set(filters)],
        "light_curve": light_curve(*series),
        "source_fields": fink,
        "provenance": {**provenance, "rows_used": len(jds)},
    }


def scatter_arcsec(ras: list[float], decs: list[float]) -> tuple[float | None, float | None]:
    """Population standard deviation of the detections' positions, in arcseconds: RA
    offsets from the latest detection wrapped into [-180, 180) (right across 0/360) and
    scaled by cos(mean Dec)."""
    points = [(ra, dec) for ra, dec in zip(finite_list(ras), finite_list(decs), strict=True)
              if ra is not None and dec is not None]
    if not points:
        return None, None
    latest_ra = points[-1][0]
    offsets = [((ra - latest_ra + 540) % 360) - 180 for ra, _ in points]
    declinations = [dec for _, dec in points]
    mean_dec = math.fsum(declinations) / len(declinations)
    return (_population_std(offsets) * math.cos(math.radians(mean_dec)) * 3600,
            _population_std(declinations) * 3600)


def _population_std(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((value - mean) ** 2 for value in values) / len(values))


def refine(slot: dict[str, Any]) -> dict[str, Any]:
    """What the enrichments' fields make of a transient slot written: its subtype refined by
    its spectroscopic class, then its distance (``fink.distance``). Applied to every slot
    written, so it survives a rebuild."""
    return distance.refine(_refined_subtype(slot))


def _refined_subtype(slot: dict[str, Any]) -> dict[str, Any]:
    """The slot's subtype and provisional flag as a function of Fink's label
    (``fink_classification``, which nothing else changes) and its spectroscopic class
    (``spectroscopic_class``, which the TNS enrichment writes) alone, so a class that
    changes or goes away leaves nothing stale behind. Applied to every slot written, so
    it survives a rebuild. A slot whose label is not one the build makes (no Fink-derived
    values to start from) keeps its own, refined by its class as before."""
    if slot.get("kind") != KIND:
        return slot
    kind = slot.get("spectroscopic_class")
    fink = FINK_SUBTYPES.get(slot.get("fink_classification"))
    if fink is None and not kind:
        return slot
    subtype = (subtype_of_class(kind) if kind else None) or fink or slot.get("subtype")
    provisional = False if kind else (fink == "unknown" if fink else slot.get("provisional"))
    if slot.get("subtype") == subtype and slot.get("provisional") == provisional:
        return slot
    return {**slot, "subtype": subtype, "provisional": provisional}


def subtype_of_class(kind: str) -> str | None:
    """The subtype a spectroscopic class (a TNS type) gives: SN and SLSN types, kilonova."""
    return "sn" if kind.startswith(("SN", "SLSN")) else "kilonova" if kind == "Kilonova" else None


SPEC = KindSpec(KIND, INDEX_FIELDS, rows=RowSource(queries.PER_OBJECT, {}, transient_slot,
                                                              partial(Roster.of, SUBTYPES, labelled=True)),
                refine=refine)
