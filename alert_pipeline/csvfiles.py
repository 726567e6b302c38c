"""The daily CSV files: cell formatting safe for spreadsheets, per-layout file names,
appends that are one write and one fsync, and cutting a file back after a failed batch."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .durable import append_durably, open_no_follow, safe_name, write_atomically
from .layout import day_stem

#: A text cell starting with one of these is a formula to a spreadsheet (OWASP "CSV
#: injection"); it is written with a leading apostrophe. Numbers are never touched.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = (",", '"', "\r", "\n")


def format_cell(value: Any) -> str:
    """One CSV cell's text: empty for missing values, repr precision for floats, JSON for
    containers, and formula-like text neutralised (see FORMULA_STARTS)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value, sort_keys=True, default=str, allow_nan=False)
        except (ValueError, TypeError, RecursionError):  # NaN inside, mixed keys, a cycle
            text = ""
    elif isinstance(value, bytes):
        text = value.hex()
    else:
        text = str(value)
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        text = "'" + text
    return text


def unescape_cell(text: str) -> str:
    """A text cell as the alert had it: the apostrophe ``format_cell`` put before a
    formula-like text removed (a reader that is not a spreadsheet wants the value)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) and not _is_number(text[1:]):
        return text[1:]
    return text


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def quote(text: str) -> str:
    """RFC 4180 quoting, applied to every cell holding a comma, a quote, a CR or an LF
    (Python's csv module leaves a lone CR unquoted when the line ends with LF)."""
    if any(mark in text for mark in _NEEDS_QUOTES):
        return '"' + text.replace('"', '""') + '"'
    return text


def line(cells: Iterable[str]) -> str:
    return ",".join(quote(cell) for cell in cells) + "\n"


def header_line(columns: Sequence[str]) -> bytes:
    """The header exactly as written, so a reread header compares equal byte for byte."""
    return line(format_cell(column) for column in columns).encode("utf-8")


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], header: bool) -> bytes:
    body = "".join(line(format_cell(row.get(column)) for column in columns) for row in rows).encode("utf-8")
    return (header_line(columns) if header else b"") + body


def _first_line(path: str) -> bytes:
    with os.fdopen(open_no_follow(path, os.O_RDONLY), "rb") as handle:
        return handle.readline()


class DayFiles:
    """The day's CSV for each column layout: the plain name for the first layout of the
    day, then ``_2``, ``_3`` … for each different layout (e.g. after a ``process_alert``
    change), so a file's header always matches its rows."""

    def __init__(self, data_dir: str, instance: str = "") -> None:
        self.data_dir = data_dir
        self.instance = instance
        self._paths: dict[tuple[str, tuple[str, ...]], str] = {}

    def path(self, day: dt.date, columns: tuple[str, ...]) -> str:
        cache_key = (f"{day:%Y%m%d}", columns)
        if cache_key not in self._paths:
            stem = day_stem(f"{day:%Y%m%d}", safe_name(self.instance) if self.instance else "")
            header = header_line(columns)
            number = 1
            while True:
                path = os.path.join(self.data_dir, f"{stem}{'' if number == 1 else f'_{number}'}.csv")
                if not os.path.exists(path) or _first_line(path) == header:
                    break
                number += 1
            self._paths[cache_key] = path
        return self._paths[cache_key]


def append_rows(path: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows appended in one write and fsynced; a new file is written whole and renamed."""
    if not os.path.exists(path):
        write_atomically(path, csv_bytes(columns, rows, header=True))
    else:
        append_durably(path, csv_bytes(columns, rows, header=False))


def restore_size(path: str, size: int | None) -> None:
    """Cut a CSV back to its size before a batch (delete it if the batch created it)."""
    try:
        if size is None:
            os.unlink(path)
        elif os.path.getsize(path) > size:
            fd = open_no_follow(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
    except FileNotFoundError:
        pass
