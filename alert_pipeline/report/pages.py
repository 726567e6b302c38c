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

from alert_pipeline.consumer.layout import DAY_CSV
from alert_pipeline.report.night import CUTOUT_KINDS, Night, iso_day, utc_text
from alert_pipeline.report.plots import BAND_ORDER
from alert_pipeline.report.sparkline import GAP_DAYS, Scale
from alert_pipeline.report.thumbnails import NORTH_UP

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 5px; text-align: right; vertical-align: middle; }
th { background: #f0f0f0; position: sticky; top: 0; }
table.alerts th { font-weight: 600; font-size: 0.95em; }
td.ids, td.links { text-align: left; white-space: nowrap; }
td .second { color: #555; }
td.thumb { padding: 2px; text-align: center; width: 100px; height: 100px; }
td.thumb img { width: 96px; height: 96px; image-rendering: pixelated; display: block; }
td.thumb .cut { position: relative; width: 96px; margin: auto; }
td.thumb svg.compass { position: absolute; top: 1px; right: 1px; width: 22px; height: 22px; pointer-events: none; }
td.thumb .orientation { font-size: 0.75em; color: #a60; }
td.lc { padding: 2px 4px; }
td.lc .spark { display: grid; grid-template-columns: auto 150px; grid-template-rows: 24px 24px auto;
  column-gap: 3px; align-items: start; font-size: 0.85em; }
td.lc .spark a { grid-column: 2; grid-row: 1 / 3; }
td.lc .spark img { width: 150px; height: 48px; display: block; }
td.lc .bright { grid-column: 1; grid-row: 1; }
td.lc .faint { grid-column: 1; grid-row: 2; align-self: end; }
td.lc .span { grid-column: 2; grid-row: 3; text-align: center; color: #555; }
td.links a { display: block; }
td.unreadable { background: #fdd; color: #900; font-weight: bold; }
p.nights { margin-top: -0.5em; color: #444; }
table.quarantine td { text-align: left; max-width: 60em; overflow-wrap: anywhere; }
.summary td, .summary th { text-align: left; }
.plots img { margin-right: 1em; vertical-align: top; max-width: 100%; }
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
    light curve's (status, sparkline, FITS link) and the scale it was drawn with."""

    row: Mapping[str, str]
    thumbs: dict[str, tuple[str, str | None, str | None]]
    lightcurve: tuple[str, str | None, str | None] = ("missing", None, None)
    scale: Scale | None = None


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


def _light_curve(status: str, sparkline: str | None, link: str | None, scale: Scale | None) -> str:
    """The sparkline with its magnitude range beside it (brighter up) and its time span under it."""
    if status == "ok" and sparkline:
        image = f'<img src="{_escape(sparkline)}" alt="light curve" title="{_escape(_scale_title(scale))}">'
        labels = ""
        if scale is not None:
            bright = f"{scale.bright:.2f}" if scale.bright is not None else ""
            faint = f"{scale.faint:.2f}" if scale.faint is not None else "flux ≤ 0"
            labels = (f'<span class="bright" title="brightest, AB mag">{bright}</span>'
                      f'<span class="faint" title="faintest, AB mag">{faint}</span>'
                      f'<span class="span">{_escape(_span_text(scale))}</span>')
        return f'<td class="lc"><div class="spark"><a href="{_escape(link or sparkline)}">{image}</a>{labels}</div></td>'
    if status == "unreadable":
        return '<td class="lc unreadable">unreadable</td>'
    return '<td class="lc"></td>'


def _span_text(scale: Scale) -> str:
    """The time the sparkline covers, e.g. "412 d, 2 gaps cut", "5.3 h", "1 point"."""
    if scale.points <= 1 or scale.first_mjd is None or scale.last_mjd is None:
        return f"{scale.points} point{'' if scale.points == 1 else 's'}"
    days = scale.last_mjd - scale.first_mjd
    span = f"{days:.0f} d" if days >= 2 else f"{days * 24:.1f} h" if days * 24 >= 1 else f"{days * 1440:.0f} min"
    cut = f", {scale.cut_gaps} gap{'' if scale.cut_gaps == 1 else 's'} cut" if scale.cut_gaps else ""
    return f"{span}{cut}"


def _scale_title(scale: Scale | None) -> str:
    """The sparkline's tooltip: what it shows, in full."""
    if scale is None:
        return "psfFlux as AB magnitude (brighter up) against time, per band"
    parts = [f"{scale.points} detections, AB magnitude from psfFlux (brighter up)"]
    if scale.bright is not None and scale.faint is not None:
        parts.append(f"{scale.bright:.2f} to {scale.faint:.2f} mag")
    if scale.first_mjd is not None and scale.last_mjd is not None:
        parts.append(f"MJD {scale.first_mjd:.3f} to {scale.last_mjd:.3f}")
    if scale.cut_gaps:
        parts.append(f"{scale.cut_gaps} gaps longer than {GAP_DAYS:.0f} d cut (dotted lines)")
    if scale.non_positive:
        parts.append(f"{scale.non_positive} with psfFlux ≤ 0 drawn as dashes along the bottom")
    return "; ".join(parts)


def _links(row: Mapping[str, str]) -> str:
    """The Solar-System object's name; the brokers' pages of the DIAObject; the MPC's of a
    Solar-System object. One per line: the column stays narrow."""
    links = []
    solar_system = "<br>".join(_escape(part) for part in (row.get("designation"), row.get("ssObjectId")) if part)
    object_id = (row.get("diaObjectId") or "").strip()
    if object_id.isdigit():
        links += [f'<a href="{html.escape(url.format(id=object_id))}">{name}</a>' for name, url in BROKER_LINKS]
    designation = (row.get("designation") or "").strip()
    if designation:
        url = MPC_LINK.format(designation=urllib.parse.quote(designation))
        links.append(f'<a href="{html.escape(url)}">MPC</a>')
    name = f'<div class="ss" title="Solar-System object">{solar_system}</div>' if solar_system else ""
    return f'<td class="links">{name}{"".join(links)}</td>'


def _two(first: str, second: str, css: str = "") -> str:
    """A cell of two lines (the table stays within a 1280-pixel window)."""
    css_class = f' class="{css}"' if css else ""
    return f'<td{css_class}>{first}<br><span class="second">{second}</span></td>'


def alert_row(cells: AlertCells) -> str:
    row = cells.row
    flux = _number(row.get("psFlux"), 1)
    error = _number(row.get("psFluxErr"), 1)
    median, low, high = (_number(row.get(name), 3)
                         for name in ("extendednessMedian", "extendednessMin", "extendednessMax"))
    parts = [
        f'<tr id="alert-{_escape(row.get("diaSourceId") or "")}" class="alert">',
        _two(_escape(row.get("diaSourceId") or ""), _escape(row.get("diaObjectId") or ""), "ids"),
        _two(_number(row.get("ra"), 5), _number(row.get("dec"), 5)),
        _two(_number(row.get("mjd"), 5), _escape(row.get("filterName") or "")),
        _two(flux, f"± {error}" if flux and error else ""),
        _two(median, f"{low}–{high}" if low or high else ""),
        *(_thumb(kind, *cells.thumbs[kind]) for kind in CUTOUT_KINDS),
        _light_curve(*cells.lightcurve, cells.scale), _links(row),
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
            ("First processed", utc_text(times[0]) if times else "-"),
            ("Last processed", utc_text(times[1]) if times else "-"),
            ("Bands", bands), ("CSV files", ", ".join(path.name for path in night.csv_files))]
    body = "".join(f"<tr><th>{_escape(name)}</th><td>{_escape(value)}</td></tr>" for name, value in rows)
    return f'<table class="summary">{body}</table>'


#: The alert table's columns; most hold two lines (the second in grey), so that the table,
#: thumbnails and broker links included, fits a 1280-pixel-wide window.
HEADERS = (("diaSourceId", "diaObjectId"), ("RA (°)", "Dec (°)"), ("MJD (TAI)", "band"), ("psFlux (nJy)", "± err"),
           ("extendedness", "min–max"), ("science",), ("template",), ("difference",),
           ("light curve", "AB mag, time"), ("Solar System", "object pages"))


def _header_cell(lines: tuple[str, ...]) -> str:
    return "<th>" + "<br>".join(_escape(line) for line in lines) + "</th>"


def _title(night: Night) -> tuple[str, str]:
    """(the page's heading, the line under it naming the observing nights and MJD range)."""
    nights = night.observing_nights
    span = night.mjd_range
    mjd = f"MJD {span[0]:.5f}–{span[1]:.5f}" if span else "no observation times"
    if night.observing_night:
        processed = sorted({DAY_CSV.match(path.name).group(1) for path in night.csv_files
                            if DAY_CSV.match(path.name)})
        return (f"LSST alerts of the observing night {iso_day(night.day)} (dayObs)",
                f"{mjd}; processed on {', '.join(iso_day(day) for day in processed) or '-'} (UTC)")
    observed = ", ".join(f"{name} ({count} alerts)" for name, count in sorted(nights.items())) or "-"
    return (f"LSST alerts processed on {iso_day(night.day)} (UTC)",
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
            utc_text(sidecar.get("processed_at", "")), where, sidecar.get("reason", ""), str(sidecar.get("detail", ""))[:500],
            sidecar.get("sidecar", ""))) + "</tr>")
    shown = f" (the first {len(rows)})" if total > len(rows) else ""
    head = "".join(f"<th>{name}</th>" for name in ("processed (UTC)", "message", "reason", "detail", "sidecar"))
    return [f"<h2>Quarantined messages{shown}</h2>",
            "<p>Kept in <code>quarantine/</code> with their bytes; see the README's troubleshooting section.</p>",
            f'<table class="quarantine"><thead><tr>{head}</tr></thead><tbody>', *rows, "</tbody></table>"]


def render_page(night: Night, stem: str, number: int, pages: int, cells: Sequence[AlertCells],
                plots: Mapping[str, str], first_index: int, site_link: str | None = None) -> str:
    """One page of the report; page 1 also holds the summary, the plots and the quarantine.
    ``site_link``: the relative link to the event storehouse's site, when there is one."""
    heading, nights = _title(night)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_escape(heading)}{f' (page {number})' if number > 1 else ''}</title>",
             f"<style>{STYLE}</style></head><body>", COMPASS, f"<h1>{_escape(heading)}</h1>",
             f'<p class="nights">{_escape(nights)}</p>']
    if site_link:
        parts.append(f'<p class="site"><a href="{_escape(site_link)}">The event storehouse: events, candidates '
                     "and light curves</a></p>")
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
                     + "".join(_header_cell(lines) for lines in HEADERS) + "</tr></thead><tbody>")
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
