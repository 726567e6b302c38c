"""A day of consumer output, as the report reads it: the rows written on one UTC
processing day (or, with ``read_observing_night``, the rows observed in one night), the
quarantined messages of the day, and the observing nights the rows belong to.

Rubin dates a night by ``dayObs``: the date at UTC−12 h of the observation, so a whole
Chilean night has one date. ``mjd`` is TAI; the 37 s to UTC are subtracted first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alert_pipeline.consumer.csvfiles import DayRows, UnreadableRow
from alert_pipeline.consumer.layout import DAY_CSV, OutputLayout
from alert_pipeline.consumer.records import CUTOUT_FIELDS
from alert_pipeline.durable import open_regular

log = logging.getLogger("lsst_alert_report")

#: TAI − UTC since 2017-01-01 (no leap second announced since).
TAI_MINUS_UTC_DAYS = 37 / 86400
MJD_EPOCH = dt.date(1858, 11, 17)
#: Quarantined messages listed on a day's page (the counts cover them all).
QUARANTINE_LISTED = 50
#: The days a report can be asked for (``--date``, ``--night``): Rubin's alerts, replays and
#: simulations all fall in this century; a date outside it is a typing mistake.
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


def parse_day(text: str, layout: str) -> str:
    """``text`` as a calendar date in ``layout`` (``%Y%m%d`` or ``%Y-%m-%d``) from FIRST_DAY
    to LAST_DAY, returned as YYYYMMDD. ``strptime`` alone takes "0001-01-01", and
    ``strftime("%Y")`` writes year 1 as "1": the day string would be "10101"."""
    try:
        day = dt.datetime.strptime(text, layout).date()
    except ValueError:
        raise ValueError(f"{text!r} is not a calendar date") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{text!r} is outside {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}")
    if day.strftime(layout) != text:  # "2026111": strptime reads 2026-11-01
        raise ValueError(f"{text!r} is not written with two-digit months and days")
    return compact_day(day)


def compact_day(day: dt.date) -> str:
    """YYYYMMDD, the year always four digits."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def iso_day(day: str) -> str:
    """YYYYMMDD → YYYY-MM-DD (the one place a day string is turned into a date to show)."""
    return f"{day[:4]}-{day[4:6]}-{day[6:8]}"


def utc_text(stamp: object) -> str:
    """A time as the page shows it: UTC, ``YYYY-MM-DDTHH:MM:SSZ`` (quarantine sidecars
    write ``+00:00``, CSV rows ``Z``). Text that is no ISO time is shown as it is."""
    text = str(stamp or "")
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text  # a time of unknown zone is not relabelled
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


@dataclass
class Night:
    """``day`` is the UTC processing day (YYYYMMDD) or, when ``observing_night`` is set,
    that night's dayObs (YYYYMMDD) and the rows are the night's, whatever day processed them."""

    day: str
    csv_files: list[Path]
    alerts: list[dict[str, str]] = field(default_factory=list)
    quarantined: Counter = field(default_factory=Counter)
    quarantine_samples: list[dict[str, Any]] = field(default_factory=list)
    observing_night: bool = False

    @property
    def observing_nights(self) -> Counter:
        """{dayObs (YYYY-MM-DD): alerts} of the rows with an observation time."""
        return Counter(night for row in self.alerts if (night := day_obs(row.get("mjd"))))

    @property
    def mjd_range(self) -> tuple[float, float] | None:
        values = [mjd for row in self.alerts if (mjd := _mjd(row.get("mjd"))) is not None]
        return (min(values), max(values)) if values else None

    @property
    def cutouts(self) -> int:
        return sum(1 for row in self.alerts for kind in CUTOUT_KINDS if row.get(f"{kind}_cutout_path"))

    @property
    def bands(self) -> Counter:
        return Counter(row.get("filterName") or "?" for row in self.alerts)

    @property
    def processing_times(self) -> tuple[str, str] | None:
        times = sorted(row["timestamp"] for row in self.alerts if row.get("timestamp"))
        return (times[0], times[-1]) if times else None


CUTOUT_KINDS = tuple(CUTOUT_FIELDS)  # science, template, difference


def day_obs(mjd_text: str | None) -> str | None:
    """Rubin's observing night (dayObs, YYYY-MM-DD) of an MJD (TAI), or None."""
    mjd = _mjd(mjd_text)
    if mjd is None:
        return None
    return (MJD_EPOCH + dt.timedelta(days=math.floor(mjd - TAI_MINUS_UTC_DAYS - 0.5))).isoformat()


def _mjd(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    # MJD 0–100000 is 1858–2132: anything else is not an observation time.
    return value if value is not None and math.isfinite(value) and 0 < value < 100_000 else None


def row_order(row: dict[str, str]) -> tuple:
    """Alerts first, by processing time and diaSourceId (as a number); ANTARES loci (no
    diaSourceId) after them."""
    source = row.get("diaSourceId") or ""
    return (not source, row.get("timestamp") or "", len(source), source, row.get("alertId") or "")


def csv_days(output_dir: Path) -> list[str]:
    """Every day that has at least one CSV file, oldest first."""
    data = Path(OutputLayout.at(output_dir).data)
    if not data.is_dir():
        return []
    return sorted({match.group(1) for name in os.listdir(data) if (match := DAY_CSV.match(name))})


def day_files(output_dir: Path, day: str) -> list[Path]:
    data = Path(OutputLayout.at(output_dir).data)
    if not data.is_dir():
        return []
    return sorted(data / name for name in os.listdir(data)
                  if (match := DAY_CSV.match(name)) and match.group(1) == day)


def _read_rows(paths: list[Path]) -> list[dict[str, str]]:
    """The rows of the day files, read as the merge and Parquet read them: regular files
    only, each row bounded. A file that stops being readable (a row of megabytes of NUL
    bytes after a crash, a FIFO in its place) keeps the rows before that point and is named
    in the log: the page is made from the rest."""
    rows: list[dict[str, str]] = []
    for path in paths:
        try:
            with open_regular(str(path)) as handle:
                records = DayRows(handle, errors="replace")
                header = next(iter(records), [])
                rows.extend(dict(zip(header, cells, strict=False)) for cells in records)
        except (OSError, UnreadableRow) as exc:
            log.warning("report: %s is read only up to where it stops being readable: %s", path.name,
                        exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    return rows


def read_night(output_dir: Path, day: str) -> Night:
    """The day's rows (every instance and layout file) and its quarantined messages."""
    night = Night(day, day_files(output_dir, day))
    night.alerts = sorted(_read_rows(night.csv_files), key=row_order)
    night.quarantined, night.quarantine_samples = quarantined_on(output_dir, day)
    return night


def read_observing_night(output_dir: Path, night_day: str) -> Night:
    """The rows observed in the night ``night_day`` (dayObs YYYYMMDD), from every day's
    CSV files (a night's alerts can be processed on two UTC days, or replayed later)."""
    wanted = iso_day(night_day)
    night = Night(night_day, [], observing_night=True)
    for day in csv_days(output_dir):
        for path in day_files(output_dir, day):
            rows = [row for row in _read_rows([path]) if day_obs(row.get("mjd")) == wanted]
            if rows:
                night.csv_files.append(path)
                night.alerts.extend(rows)
    night.alerts.sort(key=row_order)
    return night


def _sidecars(output_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file name, sidecar) of every readable quarantine sidecar."""
    directory = Path(OutputLayout.at(output_dir).quarantine)
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            sidecar = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(sidecar, dict):
            found.append((path.name, sidecar))
    return found


def quarantined_on(output_dir: Path, day: str) -> tuple[Counter, list[dict[str, Any]]]:
    """Quarantined messages processed on ``day`` (UTC): counts by reason, and the first
    ``QUARANTINE_LISTED`` sidecars (with their file name as ``sidecar``)."""
    reasons: Counter = Counter()
    samples: list[dict[str, Any]] = []
    prefix = iso_day(day)
    for name, sidecar in _sidecars(output_dir):
        if str(sidecar.get("processed_at", "")).startswith(prefix):
            reasons[str(sidecar.get("reason", "unknown"))] += 1
            samples.append({**sidecar, "sidecar": name})
    samples.sort(key=quarantine_order)
    return reasons, samples[:QUARANTINE_LISTED]


def quarantine_order(sidecar: dict[str, Any]) -> tuple:
    """Kafka messages by topic, partition and offset (as numbers: offset 9 before 10), then
    messages from files by file and index; the sidecar's name breaks ties."""
    if "topic" in sidecar:
        where = (0, str(sidecar.get("topic")), _as_number(sidecar.get("partition")), _as_number(sidecar.get("offset")))
    else:
        where = (1, str(sidecar.get("file", "")), _as_number(sidecar.get("index")), (0, 0, ""))
    return (*where, str(sidecar.get("sidecar", "")))


def _as_number(value: Any) -> tuple[int, int, str]:
    """A sort key putting whole numbers first, in numeric order, then anything else as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, value, "")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 40:
        return (0, int(value), "")
    return (1, 0, str(value))


def quarantine_days(output_dir: Path) -> list[str]:
    """Every UTC day (YYYYMMDD) on which a message was quarantined."""
    days = set()
    for _, sidecar in _sidecars(output_dir):
        stamp = str(sidecar.get("processed_at", ""))
        if len(stamp) >= 10 and stamp[4] == "-" and stamp[7] == "-" and stamp[:4].isdigit():
            days.add(stamp[:10].replace("-", ""))
    return sorted(day for day in days if day.isdigit() and len(day) == 8)


def fingerprint(output_dir: Path, day: str | None) -> str:
    """What the day's report was made from: its CSV files (name, size, mtime) and the
    quarantine's file names (``day`` None: every day's CSV files, for a night's report).
    A changed fingerprint means the report is out of date."""
    files = day_files(output_dir, day) if day else [path for each in csv_days(output_dir)
                                                     for path in day_files(output_dir, each)]
    parts: list[Any] = [(path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files]
    quarantine = Path(OutputLayout.at(output_dir).quarantine)
    if quarantine.is_dir():
        parts.append(sorted(name for name in os.listdir(quarantine) if name.endswith(".json")))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
