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

Only regular files inside a source are read, the rule retention keeps for what it deletes:
``data/`` and ``cutouts/`` may themselves be links (a bigger disk), but a symbolic link,
FIFO or device *inside* them is skipped, named in the log and counted (``skipped_files``):
a link could make the merge copy a private file into the merged directory, read
``/dev/zero`` until memory runs out, or wait forever on a FIFO. Cutouts are copied in
chunks, so a file costs its size on disk, never its size in memory.

Only the consumer's day files are merged: a source file whose header does not begin with
the consumer's first columns (``csvfiles.FIRST_COLUMNS``; every version's files do), or
names a column twice or not at all, is skipped and counted (``skipped_files``), and so is
a row with more or fewer fields than its header (``skipped_rows``). Lines are read with a
bound (``csvfiles.MAX_ROW_BYTES``): a day file that is one line of gigabytes (NUL bytes
left by a crash) is read up to the bound, named and counted, and the other days merge.
A day whose file in the destination cannot be read to its end is not merged (its keys
would be missing, so its rows would be written twice), named and counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from alert_pipeline.consumer import csvfiles
from alert_pipeline.consumer.layout import CUTOUTS, DATA, DAY_CSV
from alert_pipeline.consumer.records import FILE_COLUMNS
from alert_pipeline.durable import open_regular, sync_filesystem

log = logging.getLogger("lsst_alert_consumer")
MERGED_INSTANCE = "merged"
_COPY_CHUNK = 1 << 20


@dataclass
class MergeReport:
    rows_read: int = 0
    rows_added: int = 0
    duplicates: int = 0
    cutouts_copied: int = 0
    missing_cutouts: int = 0
    #: Files of a source that were not read, or not to their end (a link, a FIFO, a device;
    #: a CSV that is not the consumer's; a row too long to read), each named in the log.
    skipped_files: int = 0
    #: Rows of a source's day file that were not merged (more or fewer fields than the
    #: header), each named in the log with its line.
    skipped_rows: int = 0
    days: Counter = field(default_factory=Counter)

    def line(self) -> str:
        return (f"read={self.rows_read} added={self.rows_added} duplicates_skipped={self.duplicates} "
                f"cutouts_copied={self.cutouts_copied} missing_cutouts={self.missing_cutouts} "
                f"skipped_files={self.skipped_files} skipped_rows={self.skipped_rows} "
                f"days={','.join(sorted(self.days)) or '-'}")

    def skip(self, path: str, reason: str) -> None:
        self.skipped_files += 1
        log.warning("merge: skipped %s: %s", path, reason)

    def skip_row(self, path: str, line_number: int, reason: str) -> None:
        self.skipped_rows += 1
        log.warning("merge: skipped %s line %d: %s", path, line_number, reason)


def day_files(output_dir: str) -> dict[str, list[str]]:
    """The day CSVs of an output directory, by day (YYYYMMDD), in name order."""
    found: dict[str, list[str]] = defaultdict(list)
    data = os.path.join(output_dir, DATA)
    for name in sorted(os.listdir(data)) if os.path.isdir(data) else ():
        match = DAY_CSV.match(name)
        if match:
            found[match.group(1)].append(os.path.join(data, name))
    return found


def _destination_keys(destination: str, day: str) -> set[tuple[str, str]]:
    """The keys of the rows the destination's own day files of ``day`` hold. ``OSError``
    when one cannot be read to its end: without its keys the merge would write its rows a
    second time, so that day is not merged."""
    keys = set()
    for path in day_files(destination).get(day, []):
        with open_regular(path) as handle:
            rows = csvfiles.DayRows(handle, errors="replace")
            try:
                header = next(iter(rows), [])
                keys.update(_key(dict(zip(header, cells, strict=False))) for cells in rows)
            except csvfiles.UnreadableRow as exc:
                raise OSError(errno.EINVAL, str(exc), path) from None
    return keys


def _source_rows(path: str, report: MergeReport) -> Iterable[dict[str, str]]:
    """The rows of a source's day file. A file that is not a regular file, or whose header
    is not the consumer's, is skipped and counted; a row with another number of fields
    than the header is skipped and counted; a file that stops being readable (a row longer
    than ``csvfiles.MAX_ROW_BYTES``, a csv error) is read up to there and counted."""
    try:
        handle = open_regular(path)
    except OSError as exc:
        report.skip(path, exc.strerror or str(exc))
        return
    with handle:
        rows = csvfiles.DayRows(handle, errors="replace")
        try:
            header = next(iter(rows), None)
            problem = csvfiles.day_header_problem(header)
            if problem:
                report.skip(path, f"header: {problem}")
                return
            for cells in rows:
                if len(cells) != len(header):
                    report.skip_row(path, rows.line_number, f"{len(cells)} fields, the header has {len(header)}")
                    continue
                yield dict(zip(header, cells, strict=True))
        except csvfiles.UnreadableRow as exc:
            report.skip(path, f"{exc}; the rows after it are not merged")


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
        try:
            seen = _destination_keys(destination, day)
        except OSError as exc:
            report.skip(str(getattr(exc, "filename", None) or destination),
                        f"{exc.strerror or exc}; day {day} is not merged until the destination's file is "
                        "repaired (e.g. cut back to its last whole row)")
            continue
        by_columns: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
        for source, paths in wanted[day]:
            for path in paths:
                for row in _source_rows(path, report):
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
    """Copy the files a row names into the destination's cutouts/ and point the row at
    them; a file the source does not hold as a regular file keeps its path and is counted."""
    for column in FILE_COLUMNS:
        relative = row.get(column) or ""
        if not relative:
            continue
        name = os.path.basename(relative)
        path = os.path.join(source, CUTOUTS, name)
        try:
            handle = open_regular(path)
        except FileNotFoundError:
            report.missing_cutouts += 1
            log.warning("merge: %s names %s, which %s does not hold; the path is kept", row.get("alertId"),
                        relative, source)
            continue
        except OSError as exc:  # a link, a FIFO, a device; no permission to read it
            report.skip(path, f"{exc.strerror or exc}; {row.get('alertId')} keeps the path {relative}")
            continue
        with handle:
            row[column] = f"cutouts/{_place(handle, name, os.path.join(destination, CUTOUTS), report)}"


def _place(handle: BinaryIO, name: str, directory: str, report: MergeReport) -> str:
    """The name under which ``handle``'s bytes are in ``directory``: ``name`` if free or
    already holding the same bytes, else ``stem_mN.suffix``."""
    stem, suffix = os.path.splitext(name)
    target, number = name, 1
    while True:
        path = os.path.join(directory, target)
        if not os.path.lexists(path):
            _copy_to(handle, path)
            report.cutouts_copied += 1
            return target
        if _same_bytes(handle, path):
            return target  # already here (an earlier merge, or the same alert)
        number += 1
        target = f"{stem}_m{number}{suffix}"


def _same_bytes(handle: BinaryIO, path: str) -> bool:
    """Whether the regular file ``path`` holds exactly ``handle``'s bytes (read in chunks)."""
    try:
        other = open_regular(path)
    except OSError:
        return False  # a name taken by something else: use another
    with other:
        if os.fstat(other.fileno()).st_size != os.fstat(handle.fileno()).st_size:
            return False
        handle.seek(0)
        while True:
            mine, theirs = handle.read(_COPY_CHUNK), other.read(_COPY_CHUNK)
            if mine != theirs:
                return False
            if not mine:
                return True


def _copy_to(handle: BinaryIO, path: str) -> None:
    """``handle``'s bytes into a new file ``path`` via a temp file and a rename (made
    durable with the batch's ``syncfs``)."""
    temp = f"{path}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)
    try:
        with open(temp, "xb") as out:
            handle.seek(0)
            shutil.copyfileobj(handle, out, _COPY_CHUNK)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
