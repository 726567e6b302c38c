"""The page of a minor body: its designation (linked to the Minor Planet Center), motion
and detections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alert_pipeline.storehouse.site import plots
from alert_pipeline.storehouse.site.context import PageContext
from alert_pipeline.storehouse.site.markup import (
    MISSING,
    fixed,
    generic,
    link,
    number,
    page,
    quoted,
    row,
    table,
    text,
    values,
)

MPC_LINK = "https://minorplanetcenter.net/db_search/show_object?object_id={designation}"


def detections(slot: Mapping[str, Any]) -> list[tuple[float, str, Any, Any, Any]]:
    """(mjd, band, magnitude, error, candid) of every detection, in time order."""
    curve = slot.get("light_curve")
    found = []
    for band, data in (curve.items() if isinstance(curve, Mapping) else ()):
        if not isinstance(data, Mapping):
            continue
        columns = [value if isinstance(value := data.get(name), list | tuple) else []  # an odd value: none
                   for name in ("mjd", "mag", "mag_err", "candid")]
        for index, when in enumerate(columns[0]):
            if isinstance(when, int | float):
                found.append((float(when), str(band), *(col[index] if index < len(col) else None
                                                        for col in columns[1:])))
    return sorted(found, key=lambda item: item[0])


def render(slot: Mapping[str, Any], context: PageContext) -> bytes:
    designation = slot.get("designation")
    mpc = link(MPC_LINK.format(designation=quoted(str(designation))), text(designation), external=True) \
        if designation else MISSING
    shown = [("designation", mpc), ("subtype", text(slot.get("subtype"))),
             ("first / last detection (UTC)", f"{text(slot.get('first_detection'))} / {text(slot.get('last_detection'))}"),
             ("nights", text(slot.get("n_nights"))), ("alerts", text(slot.get("n_alerts"))),
             ("motion (arcsec/hour)", number(slot.get("motion_arcsec_per_hour"))),
             ("first position RA, Dec (deg)", f"{fixed(slot.get('ra_deg_first'), 5)}, {fixed(slot.get('dec_deg_first'), 5)}"),
             ("last position RA, Dec (deg)", f"{fixed(slot.get('ra_deg_last'), 5)}, {fixed(slot.get('dec_deg_last'), 5)}"),
             ("ZTF object ids", generic(slot.get("ztf_object_ids")))]
    rows = [row([fixed(when, 5), text(band), number(mag), number(error), text(candid)])
            for when, band, mag, error, candid in detections(slot)]
    body = (f"<h1>{text(slot.get('slot_id'))} <span class=\"muted\">minor body</span></h1>{values(shown)}"
            f"<h2>Light curve</h2>{plots.light_curve(slot) or MISSING}"
            f"<h2>Detections</h2>{table(['MJD', 'band', 'magnitude', 'error', 'candid'], rows, 'sortable')}")
    return page(f"{slot.get('slot_id')} · minor body", body, 1)
