"""A day of consumer output, as the report reads it."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..csvfiles import DAY_CSV


@dataclass
class Night:
    day: str
    csv_files: list[Path]
    alerts: list[dict[str, str]] = field(default_factory=list)
    quarantined: Counter = field(default_factory=Counter)

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


CUTOUT_KINDS = ("science", "template", "difference")


def csv_days(output_dir: Path) -> list[str]:
    """Every day that has at least one CSV file, oldest first."""
    data = output_dir / "data"
    if not data.is_dir():
        return []
    return sorted({match.group(1) for name in os.listdir(data) if (match := DAY_CSV.match(name))})


def day_files(output_dir: Path, day: str) -> list[Path]:
    data = output_dir / "data"
    if not data.is_dir():
        return []
    return sorted(data / name for name in os.listdir(data)
                  if (match := DAY_CSV.match(name)) and match.group(1) == day)


def read_night(output_dir: Path, day: str) -> Night:
    """The day's rows (every instance and layout file) and its quarantined messages."""
    night = Night(day, day_files(output_dir, day))
    for path in night.csv_files:
        with open(path, newline="", encoding="utf-8") as handle:
            night.alerts.extend(csv.DictReader(handle))
    night.alerts.sort(key=lambda row: (row.get("timestamp") or "", row.get("diaSourceId") or ""))
    night.quarantined = quarantine_reasons(output_dir, day)
    return night


def quarantine_reasons(output_dir: Path, day: str) -> Counter:
    """Quarantined messages processed on ``day`` (UTC), by reason."""
    reasons: Counter = Counter()
    iso_day = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    directory = output_dir / "quarantine"
    if not directory.is_dir():
        return reasons
    for path in directory.glob("*.json"):
        try:
            sidecar = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(sidecar, dict) and str(sidecar.get("processed_at", "")).startswith(iso_day):
            reasons[str(sidecar.get("reason", "unknown"))] += 1
    return reasons


def fingerprint(output_dir: Path, day: str) -> str:
    """What the day's report was made from: its CSV files (name, size, mtime) and the
    quarantine's file names. A changed fingerprint means the report is out of date."""
    parts: list[Any] = [(path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in day_files(output_dir, day)]
    quarantine = output_dir / "quarantine"
    if quarantine.is_dir():
        parts.append(sorted(name for name in os.listdir(quarantine) if name.endswith(".json")))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
