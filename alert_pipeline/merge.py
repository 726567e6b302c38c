"""Several output directories (consumers on several machines) unioned into one, each
alert once.

Kafka gives each message to one member of a group at a time, but at least once: when an
instance dies after its files are durable and before its commit, the partition's next
owner is given those messages again. Instances sharing one output directory never write
them twice (their ledger is shared); instances on machines of their own each keep their
own, so their union can hold an alert twice. ``merge`` reads every day file of each
source directory (every instance and column layout), and copies into the destination each
row whose (``alertId``, ``diaSourceId``) the destination's files of that day do not hold
yet, with the cutouts it names (the same bytes under a name already taken are reused; other
bytes get a name of their own). Rows go to the destination's ``_merged`` day files, made
durable as the consumer makes its own (cutouts synced before the rows that name them).
Merging the same directories again adds nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import csvfiles
from .durable import sync_filesystem, write_atomically
from .layout import CUTOUTS, DATA, DAY_CSV
from .records import FILE_COLUMNS

log = logging.getLogger("lsst_alert_consumer")
MERGED_INSTANCE = "merged"



@dataclass
class MergeReport:
    rows_read: int = 0
    rows_added: int = 0
    duplicates: int = 0
    cutouts_copied: int = 0
    missing_cutouts: int = 0
    days: Counter = field(default_factory=Counter)

    def line(self) -> str:
        return (f"read={self.rows_read} added={self.rows_added} duplicates_skipped={self.duplicates} "
                f"cutouts_copied={self.cutouts_copied} missing_cutouts={self.missing_cutouts} "
                f"days={','.join(sorted(self.days)) or '-'}")


def day_files(output_dir: str) -> dict[str, list[str]]:
    """The day CSVs of an output directory, by day (YYYYMMDD), in name order."""
    found: dict[str, list[str]] = defaultdict(list)
    data = os.path.join(output_dir, DATA)
    for name in sorted(os.listdir(data)) if os.path.isdir(data) else ():
        match = DAY_CSV.match(name)
        if match:
            found[match.group(1)].append(os.path.join(data, name))
    return found


def _rows(path: str) -> Iterable[dict[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        yield from csv.DictReader(handle)


def _key(row: dict[str, str]) -> tuple[str, str]:
    return row.get("alertId") or "", row.get("diaSourceId") or ""


def merge(sources: list[str], destination: str) -> MergeReport:
    """Union ``sources`` into ``destination`` (see the module docstring)."""
    report = MergeReport()
    destination = os.path.abspath(destination)
    for name in (DATA, CUTOUTS):
        os.makedirs(os.path.join(destination, name), exist_ok=True)
    wanted = defaultdict(list)
    for source in sources:
        if os.path.abspath(source) == destination:
            raise ValueError(f"{source} is the destination itself")
        if not os.path.isdir(os.path.join(source, DATA)):
            raise ValueError(f"{source} has no data/ directory: not a consumer output directory")
        for day, paths in day_files(source).items():
            wanted[day].append((source, paths))
    files = csvfiles.DayFiles(os.path.join(destination, DATA), MERGED_INSTANCE)
    for day in sorted(wanted):
        seen = {_key(row) for path in day_files(destination).get(day, []) for row in _rows(path)}
        by_columns: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
        for source, paths in wanted[day]:
            for path in paths:
                for row in _rows(path):
                    report.rows_read += 1
                    if _key(row) in seen:
                        report.duplicates += 1
                        continue
                    seen.add(_key(row))
                    _copy_cutouts(row, source, destination, report)
                    by_columns[tuple(row)].append(row)
        if not by_columns:
            continue
        sync_filesystem(os.path.join(destination, CUTOUTS))  # the cutouts before the rows naming them
        when = dt.datetime.strptime(day, "%Y%m%d").date()
        for columns, rows in by_columns.items():
            csvfiles.append_rows(files.path(when, columns), columns, rows)
            report.rows_added += len(rows)
        report.days[day] += 1
    return report


def _copy_cutouts(row: dict[str, str], source: str, destination: str, report: MergeReport) -> None:
    for column in FILE_COLUMNS:
        relative = row.get(column) or ""
        if not relative:
            continue
        name = os.path.basename(relative)
        try:
            with open(os.path.join(source, CUTOUTS, name), "rb") as handle:
                data = handle.read()
        except OSError:
            report.missing_cutouts += 1
            log.warning("merge: %s names %s, which %s does not hold; the path is kept", row.get("alertId"),
                        relative, source)
            continue
        stem, suffix = os.path.splitext(name)
        target, number = name, 1
        while True:
            path = os.path.join(destination, CUTOUTS, target)
            if not os.path.exists(path):
                write_atomically(path, data, durable=False)
                report.cutouts_copied += 1
                break
            with open(path, "rb") as handle:
                if handle.read() == data:
                    break  # already here (an earlier merge, or the same alert)
            number += 1
            target = f"{stem}_m{number}{suffix}"
        row[column] = f"cutouts/{target}"
