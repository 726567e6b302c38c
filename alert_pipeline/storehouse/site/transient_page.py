"""The page of a transient: light curve, position, Fink class, TNS record, host and
distance, its coincidences (each linking the event's page), links to the brokers."""

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
    when,
)
from alert_pipeline.storehouse.site.summaries import coincidences, tns_record

#: The object's page at each broker and at TNS (plain links; nothing is fetched).
BROKERS = (("Fink", "https://fink-portal.org/{id}"), ("ALeRCE", "https://alerce.online/object/{id}"),
           ("Lasair", "https://lasair-ztf.lsst.ac.uk/objects/{id}/"))
TNS_OBJECT = "https://www.wis-tns.org/object/{name}"
TNS_CONE = "https://www.wis-tns.org/search?ra={ra}&decl={dec}&radius=5&coords_unit=arcsec"
#: Fields added by other steps shown generically when present (host galaxy, distance).
ENRICHED = ("host", "distance")
#: A coincidence's fields with a column of their own; any other field gets one after them.
KNOWN_MATCH_FIELDS = ("kind", "event", "dt_days", "n_chance")


def tns_name_path(name: str) -> str:
    """A TNS name without its prefix (``AT 2019dsg`` → ``2019dsg``), as TNS's object URLs want."""
    parts = name.split()
    return parts[-1] if len(parts) > 1 else name


def outside_links(slot: Mapping[str, Any]) -> str:
    slot_id = str(slot.get("slot_id", ""))
    found = [link(pattern.format(id=quoted(slot_id)), text(name), external=True) for name, pattern in BROKERS]
    record = tns_record(slot)
    if record.get("name"):
        found.append(link(TNS_OBJECT.format(name=quoted(tns_name_path(str(record["name"])))), "TNS", external=True))
    elif isinstance(slot.get("ra_deg"), float) and isinstance(slot.get("dec_deg"), float):
        found.append(link(TNS_CONE.format(ra=slot["ra_deg"], dec=slot["dec_deg"]), "TNS (cone search)", external=True))
    return '<p class="links">' + "".join(found) + "</p>"


def _coincidence_table(slot: Mapping[str, Any], context: PageContext) -> str:
    found = coincidences(slot)
    if not found:
        return "<p>No coincidence with any event.</p>"
    extra = sorted({key for item in found for key in item if key not in KNOWN_MATCH_FIELDS})
    rows = []
    for item in found:
        event = context.linked.get((item["kind"], item["event"]), {})
        rows.append(row([context.slot_link(item["kind"], item["event"]), text(item["kind"]), when(event.get("time")),
                         text(event.get("headline")), fixed(item.get("dt_days"), 2), number(item.get("n_chance"), 3),
                         *(number(item.get(key), 3) if isinstance(item.get(key), float) else generic(item.get(key))
                           for key in extra)],
                        {"data-slot": item["event"], "data-kind": item["kind"]}))
    return table(["event", "kind", "time (UTC)", "summary", "dt (days)", "n_chance",
                  *(name.replace("_", " ") for name in extra)], rows,
                 "sortable coincidences")


def _tns_values(slot: Mapping[str, Any]) -> str:
    record = tns_record(slot)
    if not record:
        return MISSING
    return "<br>".join(f"{text(key)}: {generic(value)}" for key, value in record.items())


def render(slot: Mapping[str, Any], context: PageContext) -> bytes:
    """The transient's page."""
    slot_id = slot.get("slot_id")
    shown = [("Fink class", text(slot.get("fink_classification"))), ("subtype", text(slot.get("subtype"))),
             ("TNS", _tns_values(slot)), ("spectroscopic class", text(slot.get("spectroscopic_class"))),
             ("RA, Dec (deg, J2000)", f"{fixed(slot.get('ra_deg'), 6)}, {fixed(slot.get('dec_deg'), 6)}"),
             ("first detection (UTC)", text(slot.get("first_detection"))),
             ("last detection (UTC)", text(slot.get("last_detection"))),
             ("alerts", text(slot.get("n_alerts"))), ("bands", generic(slot.get("bands"))),
             ("magnitude brightest / latest", f"{number(slot.get('mag_brightest'))} / {number(slot.get('mag_latest'))}")]
    shown += [(name, generic(slot[name])) for name in ENRICHED if slot.get(name) is not None]
    curve = plots.light_curve(slot) or "<p>No light-curve point.</p>"
    fields = slot.get("source_fields")
    fink_rows = [row([text(key), generic(value)]) for key, value in fields.items()] if isinstance(fields, dict) else []
    body = (f"<h1>{text(slot_id)} <span class=\"muted\">transient</span></h1>{outside_links(slot)}"
            f"{values(shown)}<h2>Light curve</h2>{curve}<h2>Coincidences</h2>{_coincidence_table(slot, context)}"
            f"<h2>Fink fields of the latest alert</h2>{table(['field', 'value'], fink_rows) if fink_rows else MISSING}")
    return page(f"{slot_id} · transient", body, 1)
