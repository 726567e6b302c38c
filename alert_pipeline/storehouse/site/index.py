"""``index.html``: the events of every messenger kind (newest first, their candidates and
best chance number), the transients with a coincidence or a TNS class (sortable and
filterable by class, kind and date), the rosters, and when and from what the site was made.

``body`` is everything but the time it was made, so ``build`` rewrites the index only
when what it shows changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alert_pipeline.storehouse.site.markup import MISSING, finite, generic, link, number, row, table, text, values, when
from alert_pipeline.storehouse.site.summaries import ALERT_KINDS, TRANSIENT

#: Per kind, how many events the index lists (newest first); the rest are counted.
MOST_EVENTS = 2000
#: Event tables longer than this scroll inside a box of their own.
TALL = 15
#: How many transients the index lists (those with a coincidence first by chance number).
MOST_TRANSIENTS = 5000




def _href(kind: str, summary: Mapping[str, Any]) -> str:
    return f"{kind}/{summary['stem']}.html"


def best_chances(transients: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """The smallest n_chance of each event's coincidences, from the transients' summaries."""
    best: dict[tuple[str, str], float] = {}
    for summary in transients.values():
        for item in summary.get("mm", []):
            chance = item.get("n_chance")
            if isinstance(chance, int | float):
                key = (item["kind"], item["event"])
                best[key] = min(best.get(key, chance), chance)
    return best


def _events(kind: str, events: Mapping[str, Mapping[str, Any]], best: Mapping[tuple[str, str], float]) -> str:
    ordered = sorted(events.values(), key=lambda s: (s.get("mjd") or -1e9, s["id"]), reverse=True)
    rows = [row([link(_href(kind, s), text(s["id"])), when(s.get("time")), text(s.get("headline")),
                 str(len(s.get("transients", []))), number(best.get((kind, s["id"])), 3),
                 "retracted" if s.get("retracted") else ""], {"data-slot": s["id"]})
            for s in ordered[:MOST_EVENTS]]
    more = f'<p class="muted">{len(ordered) - MOST_EVENTS} older events not listed.</p>' \
        if len(ordered) > MOST_EVENTS else ""
    listed = table(["event", "time (UTC)", "summary", "candidates", "best n_chance", "status"], rows,
                   "sortable events")
    if len(rows) > TALL:
        listed = f'<div class="tall">{listed}</div>'
    count = f"{len(ordered)} event{'' if len(ordered) == 1 else 's'}"
    return f"<h3 id=\"{text(kind)}\">{text(kind)} <span class=\"muted\">{count}</span></h3>" + listed + more


def _transients(transients: Mapping[str, Mapping[str, Any]], stems: Mapping[tuple[str, str], str]) -> str:
    chosen = [s for s in transients.values() if s.get("mm") or s.get("tns_type")]
    chosen.sort(key=lambda s: (min((i["n_chance"] for i in s.get("mm", []) if finite(i.get("n_chance"))),
                                   default=1e9), s["id"]))
    rows, classes, kinds = [], set(), set()
    for s in chosen[:MOST_TRANSIENTS]:
        shown_class = s.get("tns_type") or s.get("class") or ""
        its_kinds = sorted({item["kind"] for item in s.get("mm", [])})
        classes.add(shown_class)
        kinds.update(its_kinds)
        best = min((i.get("n_chance") for i in s.get("mm", []) if finite(i.get("n_chance"))),
                   default=None)
        events = ", ".join(link(f"{i['kind']}/{stems[(i['kind'], i['event'])]}.html", text(i["event"]))
                           if (i["kind"], i["event"]) in stems else text(i["event"]) for i in s.get("mm", []))
        rows.append(row([link(_href(TRANSIENT, s), text(s["id"])), text(s.get("class")), text(s.get("tns_type")),
                         text(s.get("tns_name")), text(" ".join(its_kinds)), text((s.get("first") or "")[:10]),
                         number(best, 3), events or MISSING],
                        {"data-slot": s["id"], "data-class": shown_class, "data-kinds": " ".join(its_kinds),
                         "data-date": (s.get("first") or "")[:10]}))
    options = "".join(f'<option value="{text(c)}">{text(c)}</option>' for c in sorted(classes))
    kind_options = "".join(f'<option value="{text(k)}">{text(k)}</option>' for k in sorted(kinds))
    filters = (f'<div class="filters"><label>class <select data-filter="class"><option value="">any</option>{options}'
               f'</select></label><label>kind <select data-filter="kind"><option value="">any</option>{kind_options}'
               '</select></label><label>first seen from <input type="date" data-filter="from"></label>'
               '<label>to <input type="date" data-filter="to"></label></div>')
    more = f'<p class="muted">{len(chosen) - MOST_TRANSIENTS} more not listed.</p>' if len(chosen) > MOST_TRANSIENTS \
        else ""
    return (f"<h2 id=\"transients\">Transients with a coincidence or a TNS class <span class=\"muted\">{len(chosen)}</span></h2>"
            + filters + table(["transient", "Fink class", "TNS class", "TNS name", "kinds", "first seen",
                               "best n_chance", "events"], rows, "sortable transients") + more)


def _rosters(rosters: Mapping[str, Any]) -> str:
    parts = []
    for kind, roster in rosters.items():
        if isinstance(roster, Mapping):
            pairs = [(str(key), generic(value)) for key, value in roster.items()
                     if key not in ("multimessenger",) and not isinstance(value, list)]
            parts.append(f"<h3>{text(kind)}</h3>{values(pairs)}")
    return "<h2 id=\"rosters\">Rosters</h2>" + "".join(parts) if parts else ""


def body(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]], rosters: Mapping[str, Any],
         provenance: Mapping[str, Any]) -> str:
    """The index without its date."""
    transients = summaries.get(TRANSIENT, {})
    stems = {(kind, s["id"]): s["stem"] for kind, found in summaries.items() for s in found.values()}
    best = best_chances(transients)
    events = "".join(_events(kind, found, best) for kind, found in summaries.items() if kind not in ALERT_KINDS)
    counts = ", ".join(f"{len(found)} {text(kind)}" for kind, found in summaries.items())
    made_from = generic(dict(provenance))
    contents = " · ".join(link(f"#{text(kind)}", text(kind)) for kind in summaries if kind not in ALERT_KINDS)
    return (f"<h1>Event storehouse</h1><p>{counts}</p><p class=\"links\">{contents} · "
            f'<a href="#transients">transients</a> · <a href="#rosters">rosters</a></p>'
            f"<h2>Events</h2>{events or '<p>No event.</p>'}"
            f"{_transients(transients, stems)}{_rosters(rosters)}<h2>Made from</h2><p>{made_from}</p>")


def render(body_markup: str, made_at: str) -> bytes:
    from alert_pipeline.storehouse.site.markup import page

    return page("Event storehouse", f"{body_markup}<p class=\"muted\">Site made {text(made_at)}.</p>", 0)
