"""The day's rows as Parquet, beside the CSV (``--parquet``): typed columns, one file per
day and instance, ``data/lsst_alerts_YYYYMMDD[_INSTANCE].parquet``.

The CSV stays the record (it is what the exactly-once batch protocol appends to); the
Parquet file is made from it after the run, for every day whose CSV is newer than its
Parquet file, and replaced atomically (written whole, fsynced, renamed), so a reader sees
the old file or the new one, never a torn one, and a run that stops before it leaves the
next run to make it. Ids are int64 with nulls (no float64 round trip), times are UTC
timestamps, every column the consumer or ``process_alert`` added that is not typed here
is text. The schema carries pandas metadata naming the id columns pandas' nullable
``Int64``: without it ``pd.read_parquet`` turns an int64 column with nulls into float64,
which changes 18-digit ids.

A day whose CSV cannot be read as the consumer wrote it gets no Parquet file: bytes that
are not UTF-8, a cell longer than the csv module's field limit, a row longer than
``csvfiles.MAX_ROW_BYTES`` (a file of NUL bytes left by a crash is refused after reading
that many bytes), a name that is not a regular file (a FIFO, a directory, a link: never
opened for reading). Every other day still gets its own, and ``refresh_parquet`` then
raises ``ParquetDaysError`` naming the days left out and why (the consumer exits 4; the
CSV rows are untouched). A column a header names twice is kept as ``name.1``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

from alert_pipeline.consumer.csvfiles import DayRows, UnreadableRow, unescape_cell
from alert_pipeline.consumer.layout import CSV_PREFIX, OutputLayout, day_stem
from alert_pipeline.consumer.records import COLUMNS
from alert_pipeline.durable import open_regular, safe_name, write_atomically

log = logging.getLogger("lsst_alert_consumer")

INTEGER_COLUMNS = ("alertId", "diaSourceId", "diaObjectId", "ssObjectId")
FLOAT_COLUMNS = ("ra", "dec", "mjd", "psFlux", "psFluxErr", "extendednessMedian", "extendednessMin",
                 "extendednessMax")
TIME_COLUMNS = ("timestamp",)
#: How pandas is told to read each kind of column (``pandas_type``, ``numpy_type``):
#: ``Int64`` is pandas' nullable integer, which holds every id exactly.
PANDAS_TYPES = {"int64": ("int64", "Int64"), "double": ("float64", "float64"),
                "timestamp[ms, tz=UTC]": ("datetimetz", "datetime64[ms]"), "string": ("unicode", "object")}


class ParquetDaysError(OSError):
    """Some days' CSV files could not be read whole: those days got no Parquet file (the
    others did). An ``OSError``, as any other failure to write the Parquet copy: the CSV
    batches are committed and the consumer exits 4 (``EXIT_OUTPUT``)."""


class UnreadableDay(ValueError):
    """One day's CSV is not what the consumer writes (named: file, line, reason)."""


def day_files_of_instance(data_dir: Path, instance: str) -> dict[str, list[Path]]:
    """{YYYYMMDD: this instance's CSV files of that day (every layout), oldest layout first}."""
    tag = f"_{re.escape(safe_name(instance))}" if instance else ""
    pattern = re.compile(rf"^{CSV_PREFIX}(\d{{8}}){tag}(?:_(\d+))?\.csv$")
    days: dict[str, list[tuple[int, Path]]] = {}
    for name in os.listdir(data_dir) if data_dir.is_dir() else []:
        if match := pattern.match(name):
            days.setdefault(match.group(1), []).append((int(match.group(2) or 1), data_dir / name))
    return {day: [path for _, path in sorted(files)] for day, files in sorted(days.items())}


def parquet_path(data_dir: Path, day: str, instance: str) -> Path:
    return data_dir / f"{day_stem(day, safe_name(instance) if instance else '')}.parquet"


def refresh_parquet(output_dir: str, instance: str = "") -> list[Path]:
    """Make the Parquet file of every day whose CSV files are newer than it; the paths made."""
    data_dir = Path(OutputLayout.at(output_dir).data)
    made, unreadable = [], []
    for day, csv_paths in day_files_of_instance(data_dir, instance).items():
        target = parquet_path(data_dir, day, instance)
        newest = max(os.stat(path, follow_symlinks=False).st_mtime_ns for path in csv_paths)
        if target.exists() and target.stat().st_mtime_ns >= newest:
            continue
        try:
            data = parquet_bytes(csv_paths)
        except UnreadableDay as exc:
            log.error("parquet: day %s has no Parquet file: %s (its CSV rows are kept as they are)", day, exc)
            unreadable.append(f"{day} ({exc})")
            continue
        write_atomically(str(target), data)
        made.append(target)
    if unreadable:
        if made:
            log.info("parquet: wrote %s", ", ".join(path.name for path in made))
        raise ParquetDaysError(f"{len(unreadable)} day(s) could not be read from their CSV: {'; '.join(unreadable)}")
    return made


def parquet_bytes(csv_paths: list[Path]) -> bytes:
    """One Parquet file of the rows of these CSV files (their columns united, in order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[str] = []
    rows: list[dict[str, str]] = []
    for path in csv_paths:
        for name in _read_rows(path, rows):
            if name not in columns:
                columns.append(name)
    columns = [name for name in COLUMNS if name in columns] + [name for name in columns if name not in COLUMNS]
    arrays, fields = [], []
    for name in columns:
        kind, values = _typed(name, [row.get(name) or "" for row in rows])
        arrays.append(pa.array(values, type=kind))
        fields.append(pa.field(name, kind))
    schema = pa.schema(fields, metadata={b"pandas": pandas_metadata(fields)})
    table = pa.Table.from_arrays(arrays, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _read_rows(path: Path, rows: list[dict[str, str]]) -> list[str]:
    """Append the rows of one CSV file to ``rows``; its header, each name once (see
    ``unique_names``). ``UnreadableDay`` names the file, and the line, when it is not a
    regular file or not the consumer's UTF-8 CSV (a row longer than
    ``csvfiles.MAX_ROW_BYTES`` is refused after reading that many bytes)."""
    try:
        handle = open_regular(str(path))
    except OSError as exc:  # NotRegularFile says what it is: a FIFO, a directory, a link
        raise UnreadableDay(f"{path.name}: {exc.strerror or exc}") from None
    with handle:
        reader = DayRows(handle)
        try:
            header = unique_names(next(iter(reader), []), path.name)
            rows.extend(dict(zip(header, cells, strict=False)) for cells in reader)
        except UnreadableRow as exc:
            raise UnreadableDay(f"{path.name} {exc}") from None
    return header


def unique_names(header: list[str], file_name: str) -> list[str]:
    """``header`` with a name given again renamed ``name.1``, ``name.2`` … (pandas'
    ``read_csv`` convention), logged: a Parquet file with two fields of one name cannot be
    read by ``pd.read_parquet`` ("Multiple matches for FieldRef"), and no cell is dropped."""
    names: list[str] = []
    for name in header:
        unique, number = name, 0
        while unique in names:
            number += 1
            unique = f"{name}.{number}"
        if unique != name:
            log.warning("parquet: %s names column %r more than once; the Parquet file calls this one %r",
                        file_name, name, unique)
        names.append(unique)
    return names


def pandas_metadata(fields: list) -> bytes:
    """The schema metadata ``pd.read_parquet`` reads the column types from (the format
    pyarrow writes for a DataFrame): ids as nullable ``Int64``, so they stay exact."""
    columns = []
    for item in fields:
        pandas_type, numpy_type = PANDAS_TYPES[str(item.type)]
        timezone = {"timezone": "UTC"} if pandas_type == "datetimetz" else None
        columns.append({"name": item.name, "field_name": item.name, "pandas_type": pandas_type,
                        "numpy_type": numpy_type, "metadata": timezone})
    return json.dumps({"index_columns": [], "column_indexes": [], "columns": columns, "attributes": {},
                       "creator": {"library": "alert_pipeline"}}).encode()


def _typed(name: str, cells: list[str]) -> tuple[object, list]:
    """(Arrow type, values) of one column; a cell that does not parse is null (logged)."""
    import datetime as dt

    import pyarrow as pa

    if name in INTEGER_COLUMNS:
        kind, parse = pa.int64(), int
    elif name in FLOAT_COLUMNS:
        kind, parse = pa.float64(), float
    elif name in TIME_COLUMNS:
        kind = pa.timestamp("ms", tz="UTC")  # Parquet has no second unit
        def parse(text: str) -> dt.datetime:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    else:
        return pa.string(), [unescape_cell(cell) if cell else None for cell in cells]
    values, bad = [], 0
    for cell in cells:
        try:
            values.append(parse(cell) if cell else None)
        except (ValueError, OverflowError):
            values.append(None)
            bad += 1
    if bad:
        log.warning("parquet: %d cells of column %s are not numbers or times; they are null in the Parquet file",
                    bad, name)
    if name in INTEGER_COLUMNS:
        values = [value if value is None or -(2**63) <= value < 2**63 else None for value in values]
    return kind, values
