"""The pages of messenger events: gw (the Mollweide sky map, written beside the page as
``<stem>.png``) and every kind with a position and an error region (neutrino, grb,
uhecr and any later one: a zoomed sky plot inline). Each lists its candidate transients
in the slot's own order, every row carrying ``data-slot``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from alert_pipeline.storehouse.messengers.gw import DISTANCE_MEAN_FIELD, DISTANCE_STD_FIELD
from alert_pipeline.storehouse.site import plots
from alert_pipeline.storehouse.site.context import PageContext
from alert_pipeline.storehouse.site.markup import (
    MISSING,
    finite,
    fixed,
    generic,
    number,
    page,
    row,
    table,
    text,
    values,
)
from alert_pipeline.storehouse.site.summaries import transient_ids

#: Fields never listed among an event's values (shown elsewhere on the page, or internal).
NOT_VALUES = {"transients", "host_candidates", "slot_id", "kind", "lat", "lon"}
#: The candidate columns every event kind shows, then the kind's own match fields.
FIRST_COLUMNS = ("rank", "slot", "dt (days)")
LAST_COLUMNS = ("n_chance", "Fink class", "TNS class")
#: Match fields shown per kind, in this order (any other one the cross-match records follows).
MATCH_COLUMNS = {"gw": ("credible_level", "volume_level", "distance_sigma"),
                 "neutrino": ("separation_deg", "ellipse_r"), "uhecr": ("separation_deg",)}
SKIPPED_MATCH_FIELDS = {"kind", "event", "dt_days", "n_chance"}
#: Error-radius fields (degrees) of an event kind with a circular error region.
RADIUS_FIELDS = ("error_radius_deg", "err_radius_deg", "radius_deg", "error_deg")
#: The transient cross-match rule's radius for kinds matched within a fixed radius.
RULE_RADIUS = {"uhecr": "uhecr_radius_deg"}


def _match_of(summary: Mapping[str, Any], kind: str, event_id: str) -> dict[str, Any]:
    return next((item for item in summary.get("mm", []) if item["kind"] == kind and item["event"] == event_id), {})


def candidate_table(kind: str, slot: Mapping[str, Any], context: PageContext) -> str:
    """The candidates in the slot's order: rank, link, dt, the kind's match fields, n_chance, classes."""
    event_id = str(slot.get("slot_id"))
    ids = transient_ids(slot)
    if not ids:
        return "<p>No candidate transient.</p>"
    matches = {slot_id: _match_of(context.linked.get(("transient", slot_id), {}), kind, event_id) for slot_id in ids}
    declared = MATCH_COLUMNS.get(kind, ())
    extra = sorted({key for match in matches.values() for key in match
                    if key not in SKIPPED_MATCH_FIELDS and key not in declared})
    columns = (*declared, *extra)
    rows = []
    for rank, slot_id in enumerate(ids, 1):
        summary, match = context.linked.get(("transient", slot_id), {}), matches[slot_id]
        tns = text(summary.get("tns_type")) + (f" ({text(summary['tns_name'])})" if summary.get("tns_name") else "")
        rows.append(row([str(rank), context.slot_link("transient", slot_id), fixed(match.get("dt_days"), 2),
                         *(number(match.get(name), 3) if isinstance(match.get(name), float) else generic(match.get(name))
                           for name in columns),
                         number(match.get("n_chance"), 3), text(summary.get("class")), tns],
                        {"data-slot": slot_id}))
    return table([*FIRST_COLUMNS, *(name.replace("_", " ") for name in columns), *LAST_COLUMNS], rows,
                 "sortable candidates")


def host_table(slot: Mapping[str, Any]) -> str:
    """The host-galaxy candidates, every field they carry, in their order."""
    hosts = [host for host in slot.get("host_candidates") or [] if isinstance(host, Mapping)] \
        if isinstance(slot.get("host_candidates"), list) else []
    if not hosts:
        return ""
    columns: list[str] = []
    for host in hosts:
        columns += [str(key) for key in host if str(key) not in columns]
    rows = [row([generic(host.get(key)) for key in columns]) for host in hosts]
    return f"<h2>Host-galaxy candidates</h2>{table(columns, rows, 'sortable hosts')}"


def _value(value: Any) -> str:
    return generic(value)


def event_values(slot: Mapping[str, Any], first: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """The event's own values: ``first`` (field, label) in order, and every other field."""
    shown = [(label, generic(slot.get(name), 8 if name.endswith("_deg") else 4)) for name, label in first
             if name in slot]  # positions to the published precision, the rest to 4 digits
    taken = {name for name, _ in first} | NOT_VALUES
    rest = [(name.replace("_", " "), _value(value)) for name, value in slot.items() if name not in taken]
    return values(shown), f"<h2>Every field of the slot</h2>{values(rest)}" if rest else ""


GW_FIRST = (("time", "time (UTC)"), ("alert_type", "alert type"), ("retracted", "retracted"),
            ("classification", "classification"), ("properties", "properties"), ("far_hz", "FAR (Hz)"),
            ("area_50_deg2", "50 % area (deg²)"), ("area_90_deg2", "90 % area (deg²)"),
            (DISTANCE_MEAN_FIELD, "distance mean (Mpc)"), (DISTANCE_STD_FIELD, "distance σ (Mpc)"))


def _far_per_year(slot: Mapping[str, Any]) -> str:
    far = slot.get("far_hz")
    return f"<p>FAR: {number(far * 3.15576e7, 3)} per year</p>" if isinstance(far, float) else ""


def render_gw(slot: Mapping[str, Any], context: PageContext, image: str | None) -> bytes:
    """The gw page; ``image`` is the sky map's file name beside the page (None: no readable map)."""
    slot_id = slot.get("slot_id")
    figure = (f'<img class="plot" src="{text(image)}" width="900" height="520" '
              f'alt="sky map of {text(slot_id)}">' if image else "<p>No readable sky map.</p>")
    main, rest = event_values(slot, GW_FIRST)
    body = (f"<h1>{text(slot_id)} <span class=\"muted\">gravitational waves</span></h1>{figure}"
            f"{_far_per_year(slot)}{main}<h2>Candidates</h2>{candidate_table('gw', slot, context)}{host_table(slot)}"
            f"{rest}")
    return page(f"{slot_id} · gw", body, 1)


def region(kind: str, slot: Mapping[str, Any], rules: Mapping[str, Any]) -> tuple[dict[str, float] | None, str]:
    """The event's error region on the sky (degrees) and its legend label."""
    dec = slot.get("dec_deg")
    errors = [slot.get(f"{axis}_err_{side}_deg") for axis in ("ra", "dec") for side in ("plus", "minus")]
    if finite(dec) and all(finite(e) and e >= 0 for e in errors):
        scale = math.cos(math.radians(dec))
        return ({"east": errors[0] * scale, "west": errors[1] * scale, "north": errors[2], "south": errors[3]},
                "error region (as published)")
    for name in RADIUS_FIELDS:
        if finite(slot.get(name)) and slot[name] > 0:
            return {"radius_deg": float(slot[name])}, "error circle"
    radius = rules.get(RULE_RADIUS.get(kind, ""))
    if isinstance(radius, int | float) and radius > 0:
        return {"radius_deg": float(radius)}, f"match radius {radius:g}°"
    return None, ""


POINT_FIRST = (("time", "time (UTC)"), ("ra_deg", "RA (deg)"), ("dec_deg", "Dec (deg)"))


def render_point(kind: str, slot: Mapping[str, Any], context: PageContext) -> bytes:
    """The page of an event with a position (neutrino, grb, uhecr …)."""
    slot_id = str(slot.get("slot_id"))
    ra, dec = slot.get("ra_deg"), slot.get("dec_deg")
    plot = MISSING
    if finite(ra) and finite(dec):
        shape, label = region(kind, slot, context.rules)
        candidates = []
        for slot_id_ in transient_ids(slot):
            summary = context.linked.get(("transient", slot_id_), {})
            if isinstance(summary.get("ra"), float) and isinstance(summary.get("dec"), float):
                candidates.append((slot_id_, summary["ra"], summary["dec"]))
        plot = plots.sky_zoom(slot_id, float(ra), float(dec), shape, candidates, label)
    main, rest = event_values(slot, POINT_FIRST)
    body = (f"<h1>{text(slot_id)} <span class=\"muted\">{text(kind)}</span></h1>{plot}{main}"
            f"<h2>Candidates</h2>{candidate_table(kind, slot, context)}{rest}")
    return page(f"{slot_id} · {kind}", body, 1)
