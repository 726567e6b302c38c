"""``load-fink``: Fink API output (the JSON list of ``/api/v1/latests``, JSON Lines, or
CSV) into the events table, exactly as the live fetcher stores it.

Valid records are loaded; every other one is skipped and counted under a reason (the
report's ``skipped``), so one bad record never costs the file. Nothing is stored that
PostgreSQL's jsonb cannot read (non-finite numbers become null, NUL characters are
refused).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from alert_pipeline.storehouse.fink.db import (
    DEFAULT_SOURCE,
    DEFAULT_TABLE,
    connect,
    jd_to_datetime,
    json_guard,
    table_identifier,
)
from alert_pipeline.storehouse.fink.queries import JD_RANGE

#: The events table's DDL, shipped inside the package (``importlib.resources``).
DDL_FILE = resources.files(__package__) / "events.sql"


@dataclass
class LoadReport:
    read: int = 0
    inserted: int = 0
    already_present: int = 0
    skipped: Counter = field(default_factory=Counter)


class Skip(ValueError):
    """A record that is not loaded; ``reason`` names why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def create_table(connection: psycopg.Connection, table: str) -> None:
    """alert_pipeline/storehouse/fink/events.sql for ``table`` (``name`` or ``schema.name``), identifiers composed by
    psycopg, never by rewriting the text."""
    identifier = table_identifier(table)
    index = sql.Identifier(f"{table.split('.')[-1]}_source_idx")  # an index lives in its table's schema
    text = "\n".join(line for line in DDL_FILE.read_text().splitlines() if not line.lstrip().startswith("--"))
    connection.execute(sql.SQL(text).format(table=identifier, index=index))


def records_from_file(path: str) -> Iterator[Any]:
    """The records of one file; an unreadable record is yielded as a ``Skip``."""
    data = Path(path).read_bytes()
    if path.endswith(".csv"):
        yield from _csv_records(data)
        return
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        yield from _json_lines(data)  # JSON Lines, or a damaged file: record by record
        return
    if isinstance(parsed, list):
        yield from parsed
    else:
        yield Skip("not_a_list")


def _json_lines(data: bytes) -> Iterator[Any]:
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line.decode("utf-8-sig"))
        except UnicodeDecodeError:
            yield Skip("not_utf8")
        except (ValueError, RecursionError):
            yield Skip("invalid_json")


def _csv_records(data: bytes) -> Iterator[Any]:
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is not part of the first column's name
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="surrogateescape")
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if any("\udc80" <= char <= "\udcff" for value in row.values() if isinstance(value, str) for char in value):
            yield Skip("not_utf8")
        else:
            yield {key: _number_or_text(value) for key, value in row.items()}


def _number_or_text(value: str | None) -> Any:
    """A CSV cell as the JSON API would have typed it (ids stay exact integers)."""
    if value in ("", None):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite numbers as null (JSON has no NaN; jsonb refuses it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def event_from_fink(row: Any, source: str) -> tuple:
    """One Fink API row → an events row, exactly as the live fetcher stores it; raises
    ``Skip`` for a record that cannot be stored."""
    if not isinstance(row, Mapping):
        raise Skip("not_an_object")
    object_id, candid, classification = row.get("i:objectId"), row.get("i:candid"), row.get("v:classification")
    if not isinstance(object_id, str) or candid is None or not isinstance(classification, str):
        raise Skip("missing_keys")
    jd = _finite_number(row.get("i:jd"))
    if jd is None or not JD_RANGE[0] <= jd <= JD_RANGE[1]:
        raise Skip("bad_jd")
    ra, dec = _finite_number(row.get("i:ra")), _finite_number(row.get("i:dec"))
    if ra is None or dec is None or not (0 <= ra <= 360 and -90 <= dec <= 90):
        raise Skip("bad_coordinates")
    try:
        fink = _json_safe(dict(row))
        extra = {
            "object_id": object_id, "candid": str(candid), "classification": classification,
            "filter_id": row.get("i:fid"), "n_detections": row.get("i:ndethist"), "jd": jd,
            "magpsf": _finite_number(row.get("i:magpsf")), "sigmapsf": _finite_number(row.get("i:sigmapsf")),
            "fink": fink,
        }
        text = json.dumps(_json_safe(extra), allow_nan=False)
    except (RecursionError, ValueError, TypeError):
        raise Skip("too_deep_or_unserialisable") from None
    if "\\u0000" in text:
        raise Skip("nul_character")
    return (source, jd_to_datetime(jd), dec, ra, _finite_number(row.get("i:magpsf")), text)


def load_fink(dsn: str, paths: Iterable[str], table: str = DEFAULT_TABLE, source: str = DEFAULT_SOURCE,
              create: bool = True) -> LoadReport:
    """Insert Fink alerts not yet in the table (identified by candid)."""
    report = LoadReport()
    table_sql = table_identifier(table)
    with connect(dsn) as connection:
        if create:
            create_table(connection, table)
        valid = json_guard(connection, sql.SQL("extra_json"))
        present = {candid for (candid,) in connection.execute(sql.SQL(
            "SELECT CASE WHEN {valid} THEN extra_json::jsonb->>'candid' END FROM {table} WHERE source = %s"
        ).format(table=table_sql, valid=valid), (source,))}
        new_rows = []
        for path in paths:
            for record in records_from_file(path):
                report.read += 1
                try:
                    if isinstance(record, Skip):
                        raise record
                    event = event_from_fink(record, source)
                except Skip as skip:
                    report.skipped[skip.reason] += 1
                    continue
                candid = str(record["i:candid"])
                if candid in present:
                    report.already_present += 1
                    continue
                present.add(candid)
                new_rows.append(event)
        with connection.cursor() as cursor:
            cursor.executemany(sql.SQL(
                "INSERT INTO {table} (source, event_time, latitude, longitude, magnitude, extra_json) "
                "VALUES (%s, %s, %s, %s, %s, %s)").format(table=table_sql), new_rows)
        report.inserted = len(new_rows)
    return report
