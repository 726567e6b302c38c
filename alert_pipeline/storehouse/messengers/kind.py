"""What a messenger kind declares, once, in its own module (``KIND_SPEC``).

The generic machinery — which format a file holds (``formats``), items into slots and
rosters (``load``), GCN Kafka (``gcn``) and the cross-match (``matching``) — iterates the
registry (``alert_pipeline.storehouse.kinds.messenger_kinds()``) and asks each kind:

* how to recognise and read its inputs (``readers``: a binary stream, a JSON object, an
  XML document or a text document, each with its recogniser and its reader);
* how its roster counts its slots (``roster_field``, ``unlabelled``, ``roster_extra``);
* how a new version of an event meets the stored one (``revision``, ``replaces``,
  ``superseded``, ``streamed``);
* which GCN topics carry its notices (``gcn_topics``);
* how it is cross-matched (``match``: its required slot fields and its rule, with the
  rule's settings, which become flags and ``[crossmatch]`` keys).

So a new kind is its module plus one line in ``alert_pipeline.storehouse.kinds``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from alert_pipeline.storehouse.messengers.events import Item, Skipped
from alert_pipeline.storehouse.slots import KindSpec, KindStore

#: A reader's input: a binary stream (recognised from its first ``HEAD_BYTES``), one JSON
#: object, one XML document (its root element, parsed once with DTDs and entities refused:
#: ``voevent.parse_xml``), or a text document (recognised from ``TextHead``).
STREAM, JSON, XML, TEXT = "stream", "json", "xml", "text"
#: How many bytes a stream reader's recogniser sees.
HEAD_BYTES = 16


@dataclass(frozen=True)
class TextHead:
    """What a text reader's recogniser sees: the whole text, its first line and that
    line split as a CSV header."""

    text: str
    first_line: str
    header: list[str]


@dataclass(frozen=True, eq=False)
class Reader:
    """One input format of a kind. ``recognise`` gets the stream's first bytes, the JSON
    object, the XML root element or a ``TextHead``; ``read`` gets (stream, size, where,
    accept_mock) for a stream, (object, root or text, where, accept_mock) otherwise, and
    yields ``Item`` objects."""

    name: str
    form: str
    recognise: Callable[[Any], bool]
    read: Callable[..., Iterator[Item]]


class Revision:
    """How a new version of an event meets the slot stored under its id, for one run of
    one kind's store. The default: the new version replaces the stored one."""

    def __init__(self, store: KindStore) -> None:
        self.store = store

    def merge(self, slot: dict[str, Any], existing: dict[str, Any] | None,
              item: Item) -> tuple[dict[str, Any] | None, str | None]:
        """Prepare ``slot`` (it may change, its id too) against ``existing``; (the stored
        slot it now replaces, the id of a stored slot that already is this event — then
        nothing is written). Raise ``Skipped`` to keep the stored one."""
        return existing, None

    def written(self, slot: dict[str, Any]) -> None:
        """``slot`` was stored (written or unchanged)."""


@dataclass(frozen=True, eq=False)
class MatchRule:
    """How a kind's events are cross-matched with the transients.

    ``required``: the slot fields an event needs (numbers, except those in ``text``);
    ``positioned``: whether its ``ra_deg``/``dec_deg`` must be on the sky;
    ``unmatchable``: a reason to skip an event that is stored but must not match
    (a retraction); ``match``: (events by id, transients, rules, the kind's directory) →
    per event id, its [(match, n_chance)] or the ``Skipped`` that kept it out;
    ``settings``: the rule's settings, ``crossmatch.rule(...)`` each."""

    required: tuple[str, ...]
    match: Callable[..., dict[str, list | Skipped]]
    settings: tuple[tuple[str, type, Any], ...]
    text: tuple[str, ...] = ()
    positioned: bool = True
    unmatchable: Callable[[dict[str, Any]], Skipped | None] = lambda slot: None


def always(_new: dict[str, Any], _held: dict[str, Any]) -> bool:
    """The default ``replaces``: of two versions read in one run, the later read wins."""
    return True


def never_superseded(_loser: dict[str, Any], _winner: dict[str, Any]) -> Skipped | None:
    return None


def nothing_more(_entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, eq=False)
class MessengerKind:
    """A messenger kind: everything the generic machinery needs of it (module docstring).

    ``replaces(new, held)``: whether ``new`` replaces ``held``, two versions of one event
    read in one run; ``superseded(loser, winner)``: the problem a version that gave way
    is counted as, or None (not counted); ``streamed``: its items are written as they are
    read (a sky map is held only while its event is written) instead of once each after
    every file is read."""

    spec: KindSpec
    readers: tuple[Reader, ...]
    roster_field: str
    match: MatchRule
    gcn_topics: tuple[str, ...] = ()
    unlabelled: str = "unknown"
    roster_extra: Callable[[list[dict[str, Any]]], dict[str, Any]] = nothing_more
    revision: Callable[[KindStore], Revision] = Revision
    replaces: Callable[[dict[str, Any], dict[str, Any]], bool] = always
    superseded: Callable[[dict[str, Any], dict[str, Any]], Skipped | None] = never_superseded
    streamed: bool = False
    #: Problems of its notices that are no fault of the message (GCN: counted, never quarantined).
    expected_problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name
