"""What a batch or a run did: one tally, added up batch by batch by the runner."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class RunSummary:
    consumed: int = 0
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    cutouts: int = 0
    csv_files: set[str] = field(default_factory=set)
    quarantine_reasons: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    stop_reason: str = ""
    recovered: str | None = None
    #: "topic[partition]" → (committed offset, lag), filled by the Kafka source at the end.
    partitions: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def add(self, batch: RunSummary) -> None:
        """Add one batch's counts to the run's."""
        self.consumed += batch.consumed
        self.written += batch.written
        self.duplicates += batch.duplicates
        self.quarantined += batch.quarantined
        self.cutouts += batch.cutouts
        self.csv_files |= batch.csv_files
        self.quarantine_reasons.update(batch.quarantine_reasons)

    def line(self) -> str:
        """The finish line's counts (grep-able key=value pairs)."""
        rate = self.consumed / self.elapsed if self.elapsed > 0 else 0.0
        parts = " ".join(
            f"{name}:committed={committed if committed is not None else '-'},lag={lag if lag is not None else '-'}"
            for name, (committed, lag) in sorted(self.partitions.items())
        )
        return (
            f"consumed={self.consumed} written={self.written} duplicates_skipped={self.duplicates} "
            f"quarantined={self.quarantined} cutouts={self.cutouts} elapsed={self.elapsed:.1f}s "
            f"rate={rate:.1f}/s stop={self.stop_reason} partitions=[{parts}]"
        )
