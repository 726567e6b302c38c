"""A kind's roster: what one build made (slots per subtype) and left out (rows per reason),
one type for every kind built from the events table. The transient kind also counts its
labels (the seed's roster: naive per-label tallies, cross-labelled objects, rows excluded
by label); a kind without labels leaves those None and they are not written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Roster:
    objects: int = 0
    by_subtype: dict[str, int] = field(default_factory=dict)
    naive_class_tallies: dict[str, int] | None = None
    cross_labelled: int | None = None
    excluded_rows: dict[str, int] | None = None
    skipped_rows: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, subtypes: Iterable[str], labelled: bool = False, **given: Any) -> Roster:
        """An empty roster of these subtypes (``labelled``: with the label counts)."""
        names = tuple(subtypes)
        roster = cls(by_subtype=dict.fromkeys(names, 0), **given)
        if labelled:
            roster.naive_class_tallies = roster.naive_class_tallies or dict.fromkeys(names, 0)
            roster.cross_labelled = roster.cross_labelled or 0
            roster.excluded_rows = roster.excluded_rows or {}
        return roster

    def add(self, part: Roster) -> None:
        """Add a worker's counts (numbers, and dicts of numbers) to this one's."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(part, item.name)
            if mine is None or theirs is None:
                continue
            if isinstance(mine, dict):
                for key, value in theirs.items():
                    mine[key] = mine.get(key, 0) + value
            else:
                setattr(self, item.name, mine + theirs)

    def as_dict(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self) if getattr(self, item.name) is not None}
