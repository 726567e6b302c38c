"""The daily CSV files: cell formatting safe for spreadsheets, per-layout file names,
appends that are one write and one fsync, cutting a file back after a failed batch, and
reading a day file back (``DayRows``) in bounded memory, with the header the consumer
writes (``day_header_problem``)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from alert_pipeline.consumer.layout import day_stem
from alert_pipeline.consumer.records import COLUMNS
from alert_pipeline.durable import append_durably, open_no_follow, safe_name, write_atomically

#: A text cell starting with one of these is a formula to a spreadsheet (OWASP "CSV
#: injection"); it is written with a leading apostrophe. Numbers are never touched.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = (",", '"', "\r", "\n")

#: The longest cell a day file is read back with, in characters: the csv module's field
#: limit (128 Ki characters), which ``DayRows`` keeps as it is.
MAX_CELL_CHARS = csv.field_size_limit()
#: The longest row (all the lines of one CSV record, in bytes) a day file is read back
#: with: room for several cells at ``MAX_CELL_CHARS`` of 4-byte UTF-8 characters, while a
#: consumer row is a few hundred bytes. A longer row (a file of NUL bytes left by a crash,
#: one line of gigabytes) is refused after reading at most this many bytes of it.
MAX_ROW_BYTES = 8 * MAX_CELL_CHARS
#: The columns of the consumer's first day files: every day file begins with them (the
#: columns appended since, and ``process_alert``'s, follow).
FIRST_COLUMNS = COLUMNS[:16]


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


def _first_line(path: str, limit: int) -> bytes:
    """At most ``limit`` bytes of the first line of ``path``: a file of one line of
    gigabytes costs ``limit``, and a FIFO under the name is not waited for."""
    with os.fdopen(open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        return handle.readline(limit)


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
                if not os.path.exists(path) or _first_line(path, len(header) + 1) == header:
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


class UnreadableRow(ValueError):
    """A day file stops being a CSV the consumer wrote (``line N: why``)."""


class DayRows:
    """The records of a day file opened in binary, each a list of cells, blank lines
    skipped. Lines are read with a bound, so no row costs more than ``MAX_ROW_BYTES``
    however long the file's line (the csv module's own field limit applies only after a
    whole line is in memory). ``UnreadableRow`` names the line where the file stops being
    readable: a row too long, a csv error, bytes that are not UTF-8 (with
    ``errors="strict"``; ``"replace"`` reads them as U+FFFD)."""

    def __init__(self, handle: BinaryIO, errors: str = "strict", max_row_bytes: int = MAX_ROW_BYTES) -> None:
        self._handle, self._errors, self._max_row_bytes = handle, errors, max_row_bytes
        #: The number of the last line read (1-based).
        self.line_number = 0
        self._row_bytes = 0
        self._reader = csv.reader(self._lines())

    def _lines(self) -> Iterator[str]:
        while True:
            line = self._handle.readline(self._max_row_bytes + 1 - self._row_bytes)
            if not line:
                return
            self.line_number += 1
            self._row_bytes += len(line)
            if self._row_bytes > self._max_row_bytes:
                raise UnreadableRow(f"line {self.line_number}: a row longer than {self._max_row_bytes} bytes "
                                    "(MAX_ROW_BYTES)")
            try:
                yield line.decode("utf-8", self._errors)
            except UnicodeDecodeError:
                raise UnreadableRow(f"line {self.line_number}: bytes that are not UTF-8") from None

    def __iter__(self) -> Iterator[list[str]]:
        while True:
            self._row_bytes = 0
            try:
                cells = next(self._reader, None)
            except csv.Error as exc:
                raise UnreadableRow(f"line {self.line_number}: {exc}") from None
            if cells is None:
                return
            if cells:
                yield cells


def day_header_problem(header: Sequence[str] | None) -> str:
    """Why ``header`` is not one the consumer writes ('' when it is): it begins with
    ``FIRST_COLUMNS`` (files of every version), and every name is given once."""
    if not header:
        return "empty: no header line"
    if tuple(header[:len(FIRST_COLUMNS)]) != FIRST_COLUMNS:
        return f"not a day file of the consumer: its header does not begin with {','.join(FIRST_COLUMNS[:3])},…"
    if "" in header:
        return f"column {header.index('') + 1} of the header has no name"
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        return f"the header names {', '.join(repeated)} more than once"
    return ""
