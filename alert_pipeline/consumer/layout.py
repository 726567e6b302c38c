"""The consumer's output directory: every directory, file name and pattern under it,
declared once and read by every writer and reader (store, history, report, merge,
Parquet, retention)::

    data/lsst_alerts_YYYYMMDD[_INSTANCE][_N].csv       one per UTC processing day and layout
    data/lsst_alerts_YYYYMMDD[_INSTANCE].parquet       --parquet
    cutouts/<diaSourceId>_<kind>_<YYYYMMDD>_<HHMMSS>[_N].fits   cutouts and light curves
    quarantine/<stem>.bin + <stem>.json                messages that could not be used
    state/runs.jsonl, state/ledger/YYYYMMDD.jsonl, state/<instance>.journal.json …
    reports/lsst_alerts_YYYYMMDD[_pN].html / .json / _*.png, reports/thumbs/*.png
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DATA, CUTOUTS, QUARANTINE, STATE, REPORTS = "data", "cutouts", "quarantine", "state", "reports"
THUMBS = os.path.join(REPORTS, "thumbs")
LEDGER = os.path.join(STATE, "ledger")
HISTORY_FILE = os.path.join(STATE, "runs.jsonl")

CSV_PREFIX = "lsst_alerts_"
#: lsst_alerts_YYYYMMDD[_INSTANCE][_N].csv: every instance and column-layout file of a day
#: (group 1: the day).
DAY_CSV = re.compile(rf"^{CSV_PREFIX}(\d{{8}})(?:_[A-Za-z0-9._-]+)?\.csv$")

#: What retention removes once older than ``retention_days``: (directory, file-name
#: pattern). Regular files only, anywhere below the directory, never through a link inside
#: it (the directory itself may be a link: the consumer writes through it). ``state/`` is
#: not here: the ledger prunes itself to ``ledger_window_days``.
RETAINED: tuple[tuple[str, str], ...] = (
    (DATA, f"{CSV_PREFIX}*.csv"),
    (DATA, f"{CSV_PREFIX}*.parquet"),
    (CUTOUTS, "*.fits"),
    (QUARANTINE, "*.bin"),
    (QUARANTINE, "*.json"),
    (REPORTS, f"{CSV_PREFIX}*"),
    (THUMBS, "*.png"),
)


def day_stem(day: str, instance: str = "") -> str:
    """``lsst_alerts_YYYYMMDD[_INSTANCE]``: a day file's name before any ``_N`` and suffix.
    ``instance`` must already be a safe file-name part (``durable.safe_name``)."""
    return f"{CSV_PREFIX}{day}" + (f"_{instance}" if instance else "")


def report_stem(day: str, observing_night: bool = False) -> str:
    """``lsst_alerts_YYYYMMDD`` (a processing day) or ``lsst_alerts_night_YYYYMMDD``."""
    return f"{CSV_PREFIX}night_{day}" if observing_night else f"{CSV_PREFIX}{day}"


@dataclass(frozen=True)
class OutputLayout:
    """The directories and files of one output directory, as absolute paths."""

    root: str
    data: str
    cutouts: str
    quarantine: str
    state: str
    reports: str
    thumbs: str
    history: str

    @classmethod
    def at(cls, output_dir: str | os.PathLike[str]) -> OutputLayout:
        root = os.path.abspath(output_dir)
        return cls(root, *(os.path.join(root, part)
                           for part in (DATA, CUTOUTS, QUARANTINE, STATE, REPORTS, THUMBS, HISTORY_FILE)))

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)
