"""The report's HTML: a summary, the plots, and the alerts table, paginated.

Plain HTML and CSS, relative links only, no scripts: the ``reports/`` folder can be
copied anywhere or served as it is, and opens offline.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .night import CUTOUT_KINDS, Night
from .plots import BAND_ORDER

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: middle; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.thumb { padding: 2px; text-align: center; width: 100px; height: 100px; }
td.thumb img { width: 96px; height: 96px; image-rendering: pixelated; display: block; }
td.unreadable { background: #fdd; color: #900; font-weight: bold; }
.summary td, .summary th { text-align: left; }
.plots img { margin-right: 1em; vertical-align: top; }
nav a, nav span { margin-right: 0.6em; }
"""


@dataclass
class AlertCells:
    """One table row: the CSV row and, per cutout kind, (status, thumbnail, FITS link)."""

    row: Mapping[str, str]
    thumbs: dict[str, tuple[str, str | None, str | None]]


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
        image = f'<img src="{_escape(thumb)}" alt="{kind}" title="{kind}">'
        return f'<td class="thumb"><a href="{_escape(link or thumb)}">{image}</a></td>'
    if status == "unreadable":
        target = f' <a href="{_escape(link)}">FITS</a>' if link else ""
        return f'<td class="thumb unreadable" title="the {kind} cutout is not a readable FITS image">unreadable{target}</td>'
    return '<td class="thumb"></td>'


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
           "ext. median", "ext. min", "ext. max", "science", "template", "difference")


def render_page(night: Night, stem: str, number: int, pages: int, cells: Sequence[AlertCells],
                plots: Mapping[str, str], first_index: int) -> str:
    """One page of the report; page 1 also holds the summary and the plots."""
    day = f"{night.day[:4]}-{night.day[4:6]}-{night.day[6:]}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>LSST alerts {day}{f' (page {number})' if number > 1 else ''}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>LSST alerts of {day} (UTC processing day)</h1>"]
    if number == 1:
        parts += ["<h2>Summary</h2>", _summary(night), '<h2>Plots</h2><div class="plots">']
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
    else:
        parts.append("<p>No alerts were written on this day.</p>")
    parts += [_navigation(stem, number, pages), "</body></html>"]
    return "\n".join(parts)
