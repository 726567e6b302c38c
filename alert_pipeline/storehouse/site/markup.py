"""HTML pieces: everything from a slot is escaped here, numbers are formatted once.

Every value a slot holds (a name, a TNS type, a Fink field) passes through ``text`` or
``attr`` before it reaches a page: a slot cannot put markup or script into the site.
"""

from __future__ import annotations

import html
import math
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: What a missing value shows.
MISSING = "—"


def text(value: Any) -> str:
    """Any value as escaped text (None: ``MISSING``)."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return number(value)
    shown = value if type(value) is str else str(value)
    if "&" in shown or "<" in shown or ">" in shown or '"' in shown or "'" in shown:
        return html.escape(shown, quote=True)
    return shown  # nothing to escape (most values): no copy made


attr = text


def number(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (general format), or MISSING."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING if value is None else text(str(value))
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a bool; a 400-digit integer, which no float
    holds, is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def fixed(value: Any, decimals: int) -> str:
    """A number with a fixed count of decimals, or MISSING."""
    if not finite(value):
        return MISSING
    return f"{value:.{decimals}f}"


def link(href: str, label: str, external: bool = False) -> str:
    """``<a>``: ``href`` is escaped as an attribute, ``label`` must already be markup."""
    extra = ' rel="noopener noreferrer"' if external else ""
    return f'<a href="{html.escape(href, quote=True)}"{extra}>{label}</a>'


def quoted(value: str) -> str:
    """A path segment (a slot id in an outside site's URL)."""
    if value.isascii() and value.isalnum():  # a ZTF id: nothing to quote (letters and digits are unreserved)
        return value
    return urllib.parse.quote(value, safe="")


def table(headers: Sequence[str], rows: Iterable[str], css: str = "") -> str:
    """A table of already-made ``<tr>`` rows; headers are plain words (escaped)."""
    head = "".join(f"<th>{text(name)}</th>" for name in headers)
    body = "".join(rows)
    return (f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def row(cells: Sequence[str], attrs: Mapping[str, str] | None = None) -> str:
    """A ``<tr>`` of already-made cells; ``attrs`` values are escaped."""
    extra = "".join(f' {name}="{attr(value)}"' for name, value in (attrs or {}).items())
    return f"<tr{extra}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def values(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (label, already-made markup)."""
    return '<dl class="values">' + "".join(f"<dt>{text(label)}</dt><dd>{value}</dd>" for label, value in pairs) + "</dl>"


def page(title: str, body: str, depth: int) -> bytes:
    """A whole page: ``depth`` is how far below the site's root it is (for relative links)."""
    up = "../" * depth
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{text(title)}</title>"
            f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{up}site.css"></head>'
            f'<body><nav><a href="{up}index.html">Storehouse</a></nav>\n{body}\n'
            f'<script src="{up}site.js"></script></body></html>\n').encode()


def generic(value: Any, digits: int = 12) -> str:
    """A value of unknown shape (a field another step adds) as escaped text: mappings as
    ``key: value`` lines, lists joined, numbers with ``digits`` significant digits."""
    if isinstance(value, Mapping):
        return "<br>".join(f"{text(key)}: {generic(item, digits)}" for key, item in value.items()) or MISSING
    if isinstance(value, list | tuple):
        if any(isinstance(item, Mapping) for item in value):  # records: one per line, each readable
            return "<ul class=\"records\">" + "".join(f"<li>{generic(item, digits)}</li>" for item in value) + "</ul>"
        return ", ".join(generic(item, digits) for item in value) or MISSING
    if isinstance(value, float):
        return number(value, digits)
    return text(value)


def when(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (escaped; anything else as it is)."""
    shown = str(value) if value is not None else ""
    if len(shown) >= 19 and shown[10] == "T":
        return text(shown[:10] + " " + shown[11:19])
    return text(value)
