"""The report's HTML: a summary, the plots, and the alerts table, paginated.

Plain HTML and CSS, relative links only, no scripts: the ``reports/`` folder can be
copied anywhere or served as it is, and opens offline.
"""

from __future__ import annotations

import html
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..layout import DAY_CSV
from .night import CUTOUT_KINDS, Night
from .plots import BAND_ORDER
from .thumbnails import NORTH_UP

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: middle; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.thumb { padding: 2px; text-align: center; width: 100px; height: 100px; }
td.thumb img { width: 96px; height: 96px; image-rendering: pixelated; display: block; }
td.thumb .cut { position: relative; width: 96px; margin: auto; }
td.thumb svg.compass { position: absolute; top: 1px; right: 1px; width: 22px; height: 22px; pointer-events: none; }
td.thumb .orientation { font-size: 0.75em; color: #a60; }
td.lc img { width: 150px; height: 48px; display: block; }
td.links a { margin-right: 0.3em; }
td.unreadable { background: #fdd; color: #900; font-weight: bold; }
p.nights { margin-top: -0.5em; color: #444; }
table.quarantine td { text-align: left; max-width: 60em; overflow-wrap: anywhere; }
.summary td, .summary th { text-align: left; }
.plots img { margin-right: 1em; vertical-align: top; }
nav a, nav span { margin-right: 0.6em; }
"""


#: The N/E compass drawn over each thumbnail (an inline SVG symbol, defined once per page):
#: solid for a cutout turned north up, dashed and marked "?" where the orientation is unknown.
COMPASS = """<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>
<symbol id="compass" viewBox="0 0 24 24"><g stroke="#ff0" stroke-width="1.6" fill="none">
<path d="M19 20V5M19 5l-2.5 3.5M19 5l2.5 3.5M19 20H5M5 20l3.5-2.5M5 20l3.5 2.5"/></g>
<text x="11" y="8" font-size="8" fill="#ff0" font-family="sans-serif">N</text>
<text x="2" y="16" font-size="8" fill="#ff0" font-family="sans-serif">E</text></symbol>
<symbol id="compass-unknown" viewBox="0 0 24 24"><g stroke="#f80" stroke-width="1.4" fill="none"
stroke-dasharray="2 1.5"><path d="M19 20V5M19 20H5"/></g>
<text x="9" y="10" font-size="10" fill="#f80" font-family="sans-serif">?</text></symbol></defs></svg>"""
#: Each object's page at the brokers (plain links; nothing is fetched).
BROKER_LINKS = (("Fink", "https://lsst.fink-portal.org/{id}"),
                ("ALeRCE", "https://lsst.alerce.online/object/{id}?survey=lsst"),
                ("Lasair", "https://lasair.lsst.ac.uk/objects/{id}/"),
                ("ANTARES", "https://antares.noirlab.edu/loci?search={id}"))
MPC_LINK = "https://minorplanetcenter.net/db_search/show_object?object_id={designation}"


@dataclass
class AlertCells:
    """One table row: the CSV row; per cutout kind (status, thumbnail, FITS link); the
    light curve's (status, sparkline, FITS link)."""

    row: Mapping[str, str]
    thumbs: dict[str, tuple[str, str | None, str | None]]
    lightcurve: tuple[str, str | None, str | None] = ("missing", None, None)


_NOT_IN_HTML = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _escape(text: str) -> str:
    """``text`` for HTML: escaped, and without the control characters HTML may not
    hold (a NUL in a CSV cell is dropped, not passed on)."""
    return html.escape(_NOT_IN_HTML.sub("", text))


def page_name(stem: str, number: int) -> str:
    return f"{stem}.html" if number == 1 else f"{stem}_p{number}.html"


def _cell(text: str | None) -> str:
    return f"<td>{_escape(text or '')}</td>"


def _number(text: str | None, digits: int) -> str:
    try:
        value = float(text) if text else None
    except ValueError:
        return _escape(text or "")
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _thumb(kind: str, status: str, thumb: str | None, link: str | None) -> str:
    if status == "ok" and thumb:
        known = thumb.endswith(NORTH_UP)
        title = f"{kind}: north up, east left" if known else f"{kind}: orientation unknown (no WCS, no ROTPA)"
        image = f'<img src="{_escape(thumb)}" alt="{kind}" title="{title}">'
        compass = f'<svg class="compass"><use href="#{"compass" if known else "compass-unknown"}"/></svg>'
        note = "" if known else '<div class="orientation">orientation unknown</div>'
        return f'<td class="thumb"><div class="cut"><a href="{_escape(link or thumb)}">{image}</a>{compass}</div>{note}</td>'
    if status == "unreadable":
        target = f' <a href="{_escape(link)}">FITS</a>' if link else ""
        return f'<td class="thumb unreadable" title="the {kind} cutout is not a readable FITS image">unreadable{target}</td>'
    return '<td class="thumb"></td>'


def _light_curve(status: str, sparkline: str | None, link: str | None) -> str:
    if status == "ok" and sparkline:
        image = f'<img src="{_escape(sparkline)}" alt="light curve" title="psfFlux (nJy) against time, per band">'
        return f'<td class="lc"><a href="{_escape(link or sparkline)}">{image}</a></td>'
    if status == "unreadable":
        return '<td class="lc unreadable">unreadable</td>'
    return '<td class="lc"></td>'


def _links(row: Mapping[str, str]) -> str:
    """The brokers' pages of the DIAObject; the MPC's of a Solar-System object."""
    links = []
    object_id = (row.get("diaObjectId") or "").strip()
    if object_id.isdigit():
        links += [f'<a href="{html.escape(url.format(id=object_id))}">{name}</a>' for name, url in BROKER_LINKS]
    designation = (row.get("designation") or "").strip()
    if designation:
        url = MPC_LINK.format(designation=urllib.parse.quote(designation))
        links.append(f'<a href="{html.escape(url)}">MPC</a>')
    return f'<td class="links">{"".join(links)}</td>'


def _solar_system(row: Mapping[str, str]) -> str:
    parts = [part for part in (row.get("designation"), row.get("ssObjectId")) if part]
    return _cell(" / ".join(parts))


def alert_row(cells: AlertCells) -> str:
    row = cells.row
    flux = _number(row.get("psFlux"), 1)
    error = _number(row.get("psFluxErr"), 1)
    parts = [
        f'<tr id="alert-{_escape(row.get("diaSourceId") or "")}" class="alert">',
        _cell(row.get("diaSourceId")), _cell(row.get("diaObjectId")),
        f"<td>{_number(row.get('ra'), 5)}</td>", f"<td>{_number(row.get('dec'), 5)}</td>",
        f"<td>{_number(row.get('mjd'), 5)}</td>", _cell(row.get("filterName")),
        f"<td>{flux}{' ± ' + error if flux and error else ''}</td>",
        *(f"<td>{_number(row.get(name), 3)}</td>"
          for name in ("extendednessMedian", "extendednessMin", "extendednessMax")),
        *(_thumb(kind, *cells.thumbs[kind]) for kind in CUTOUT_KINDS),
        _light_curve(*cells.lightcurve), _solar_system(row), _links(row),
        "</tr>",
    ]
    return "".join(parts)


def _navigation(stem: str, number: int, pages: int) -> str:
    if pages <= 1:
        return ""
    links = [f"<span>page {number} of {pages}:</span>"]
    for other in range(1, pages + 1):
        links.append(f"<span>{other}</span>" if other == number
                     else f'<a href="{page_name(stem, other)}">{other}</a>')
    return f"<nav>{''.join(links)}</nav>"


def _summary(night: Night) -> str:
    times = night.processing_times
    quarantined = ", ".join(f"{reason}: {count}" for reason, count in sorted(night.quarantined.items())) or "none"
    order = {band: index for index, band in enumerate(BAND_ORDER)}
    bands = ", ".join(f"{band}: {count}" for band, count in sorted(night.bands.items(),
                                                                  key=lambda item: (order.get(item[0], 99), item[0])))
    bands = bands or "none"
    rows = [("Alerts", str(len(night.alerts))), ("Cutouts", str(night.cutouts)),
            ("Quarantined messages", f"{sum(night.quarantined.values())} ({quarantined})"),
            ("First processed", times[0] if times else "-"), ("Last processed", times[1] if times else "-"),
            ("Bands", bands), ("CSV files", ", ".join(path.name for path in night.csv_files))]
    body = "".join(f"<tr><th>{_escape(name)}</th><td>{_escape(value)}</td></tr>" for name, value in rows)
    return f'<table class="summary">{body}</table>'


HEADERS = ("diaSourceId", "diaObjectId", "RA (°)", "Dec (°)", "MJD", "band", "psFlux ± err (nJy)",
           "ext. median", "ext. min", "ext. max", "science", "template", "difference", "light curve",
           "Solar System", "object pages")


def _iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def _title(night: Night) -> tuple[str, str]:
    """(the page's heading, the line under it naming the observing nights and MJD range)."""
    nights = night.observing_nights
    span = night.mjd_range
    mjd = f"MJD {span[0]:.5f}–{span[1]:.5f}" if span else "no observation times"
    if night.observing_night:
        processed = sorted({DAY_CSV.match(path.name).group(1) for path in night.csv_files
                            if DAY_CSV.match(path.name)})
        return (f"LSST alerts of the observing night {_iso(night.day)} (dayObs)",
                f"{mjd}; processed on {', '.join(_iso(day) for day in processed) or '-'} (UTC)")
    observed = ", ".join(f"{name} ({count} alerts)" for name, count in sorted(nights.items())) or "-"
    return (f"LSST alerts processed on {_iso(night.day)} (UTC)",
            f"Observing night{'s' if len(nights) > 1 else ''} (dayObs, UTC−12 h): {observed}; {mjd}")


def _quarantine_section(night: Night) -> list[str]:
    """What came in and why it was refused (the day's first QUARANTINE_LISTED messages)."""
    if not night.quarantine_samples:
        return []
    total = sum(night.quarantined.values())
    rows = []
    for sidecar in night.quarantine_samples:
        where = (f"{sidecar.get('topic')} [{sidecar.get('partition')}] @ {sidecar.get('offset')}"
                 if "topic" in sidecar else f"{sidecar.get('file', '')} #{sidecar.get('index', '')}")
        rows.append("<tr>" + "".join(_cell(str(value)) for value in (
            sidecar.get("processed_at", ""), where, sidecar.get("reason", ""), str(sidecar.get("detail", ""))[:500],
            sidecar.get("sidecar", ""))) + "</tr>")
    shown = f" (the first {len(rows)})" if total > len(rows) else ""
    head = "".join(f"<th>{name}</th>" for name in ("processed", "message", "reason", "detail", "sidecar"))
    return [f"<h2>Quarantined messages{shown}</h2>",
            "<p>Kept in <code>quarantine/</code> with their bytes; see the README's troubleshooting section.</p>",
            f'<table class="quarantine"><thead><tr>{head}</tr></thead><tbody>', *rows, "</tbody></table>"]


def render_page(night: Night, stem: str, number: int, pages: int, cells: Sequence[AlertCells],
                plots: Mapping[str, str], first_index: int) -> str:
    """One page of the report; page 1 also holds the summary, the plots and the quarantine."""
    heading, nights = _title(night)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_escape(heading)}{f' (page {number})' if number > 1 else ''}</title>",
             f"<style>{STYLE}</style></head><body>", COMPASS, f"<h1>{_escape(heading)}</h1>",
             f'<p class="nights">{_escape(nights)}</p>']
    if number == 1:
        parts += ["<h2>Summary</h2>", _summary(night)]
        if night.alerts:
            parts.append('<h2>Plots</h2><div class="plots">')
            parts += [f'<img src="{_escape(name)}" alt="{_escape(title)}">' for title, name in plots.items()]
            parts.append("</div>")
    last = first_index + len(cells)
    parts += [f"<h2>Alerts {first_index + 1 if cells else 0}–{last} of {len(night.alerts)}</h2>",
              _navigation(stem, number, pages)]
    if cells:
        parts.append("<table class=\"alerts\"><thead><tr>"
                     + "".join(f"<th>{_escape(title)}</th>" for title in HEADERS) + "</tr></thead><tbody>")
        parts += [alert_row(cell) for cell in cells]
        parts.append("</tbody></table>")
    elif night.quarantined:
        parts.append(f"<p><strong>No alert was written on this day: all {sum(night.quarantined.values())} "
                     "messages that came in were quarantined.</strong> The reasons are below.</p>")
    else:
        parts.append("<p>No alerts were written on this day.</p>")
    if number == 1:
        parts += _quarantine_section(night)
    parts += [_navigation(stem, number, pages), "</body></html>"]
    return "\n".join(parts)
