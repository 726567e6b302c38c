"""What a batch or a run did: one tally, added up batch by batch by the runner."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple


class PartitionProgress(NamedTuple):
    """Where a run started and ended in one partition, and how far behind its end it was."""

    start: int | None  # the first offset read this run
    end: int | None  # committed offset (group runs) or next offset to read (replays)
    lag: int | None


@dataclass
class RunSummary:
    consumed: int = 0
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    cutouts: int = 0
    csv_files: set[str] = field(default_factory=set)
    quarantine_reasons: Counter = field(default_factory=Counter)
    schemas: Counter = field(default_factory=Counter)  # writer schema label → messages
    elapsed: float = 0.0
    stop_reason: str = ""
    recovered: str | None = None
    mode: str = "files"  # group, replay or files
    #: "topic[partition]" → its progress, filled by the Kafka source at the end.
    partitions: dict[str, PartitionProgress] = field(default_factory=dict)

    def add(self, batch: RunSummary) -> None:
        """Add one batch's counts to the run's."""
        self.consumed += batch.consumed
        self.written += batch.written
        self.duplicates += batch.duplicates
        self.quarantined += batch.quarantined
        self.cutouts += batch.cutouts
        self.csv_files |= batch.csv_files
        self.quarantine_reasons.update(batch.quarantine_reasons)
        self.schemas.update(batch.schemas)

    def line(self) -> str:
        """The finish line's counts (grep-able key=value pairs)."""
        rate = self.consumed / self.elapsed if self.elapsed > 0 else 0.0
        end_name = "end" if self.mode == "replay" else "committed"
        parts = " ".join(
            f"{name}:{end_name}={_or_dash(progress.end)},lag={_or_dash(progress.lag)}"
            for name, progress in sorted(self.partitions.items())
        )
        return (
            f"consumed={self.consumed} written={self.written} duplicates_skipped={self.duplicates} "
            f"quarantined={self.quarantined} cutouts={self.cutouts} elapsed={self.elapsed:.1f}s "
            f"rate={rate:.1f}/s stop={self.stop_reason} partitions=[{parts}]"
        )


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)
