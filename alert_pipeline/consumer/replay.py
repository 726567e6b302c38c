"""Replay a time window of the configured topics (``--from-time`` / ``--to-time``).

For reprocessing after a bug fix or a lost disk. Partitions are assigned by hand from
``offsets_for_times``; the consumer group's committed offsets are never read or moved,
so the nightly group run is undisturbed. Exactly-once output still holds through the
ledger: replaying the same window into the same directory adds nothing.

Some brokers answer ``offsets_for_times`` loosely (the local test broker returns the
earliest offset), so the window is also checked message by message against the Kafka
timestamp. A partition is done at its end (end-of-partition event) or at its first
message at or after ``--to-time``: like Kafka's own time index, this assumes the
timestamps of one partition do not go back in time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from alert_pipeline.consumer.config import ConsumerConfig
from alert_pipeline.consumer.kafka_source import BrokerError, KafkaSource
from alert_pipeline.consumer.sources import Message

log = logging.getLogger("lsst_alert_consumer")


def parse_utc(text: str) -> dt.datetime:
    """An ISO 8601 time as an aware UTC datetime; a time without an offset is UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-11-20T03:00:00Z") from None
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the years 1 to 9999 once converted to UTC") from None


def _iso(moment: dt.datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else "-"


@dataclass(frozen=True)
class TimeWindow:
    """[start, end) in Kafka message time; either side may be open."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"--from-time {_iso(self.start)} is not before --to-time {_iso(self.end)}")

    @property
    def start_ms(self) -> int | None:
        """The window's start in Kafka time, None when open or before 1970 (Kafka
        timestamps start there: such a window starts at each partition's beginning)."""
        if self.start is None or self.start.timestamp() <= 0:
            return None
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int | None:
        return None if self.end is None else max(0, int(self.end.timestamp() * 1000))

    def describe(self) -> str:
        return f"from={_iso(self.start)} to={_iso(self.end)}"


class ReplaySource(KafkaSource):
    """The messages of ``window`` in the configured topics, read without the group."""

    mode = "replay"
    end_reason = "window-done"

    def __init__(self, config: ConsumerConfig, window: TimeWindow) -> None:
        super().__init__(config)
        self.window = window
        self._positions: dict[tuple[str, int], int] = {}

    @property
    def stops_at_end(self) -> bool:
        return True  # a replay always ends; --no-stop-at-end is for the group run

    def batches(self, budget: Callable[[], int]) -> Iterator[list[Message]]:
        self._connect()
        self._assign_window()
        yield from self._poll(budget)

    def ack(self, batch: list[Message]) -> None:
        """Nothing to commit: the group's offsets are not ours to move."""
        for message in batch:
            key = (message.origin["topic"], message.origin["partition"])
            self._positions[key] = max(self._positions.get(key, -1), message.origin["offset"] + 1)

    def _assign_window(self) -> None:
        metadata = self._consumer.list_topics(timeout=self.config.connect_timeout)
        partitions = [TopicPartition(topic, number, self.window.start_ms if self.window.start_ms is not None
                                     else OFFSET_BEGINNING)
                      for topic in self.config.topics for number in sorted(metadata.topics[topic].partitions)]
        if self.window.start is not None and self.window.start_ms is None:
            log.info("--from-time %s is before 1970, where Kafka time begins: each partition is replayed from "
                     "its earliest offset", _iso(self.window.start))
        if self.window.start_ms is not None:
            try:
                partitions = self._consumer.offsets_for_times(partitions, timeout=self.config.connect_timeout)
            except KafkaException as exc:
                raise BrokerError(f"the broker could not look up offsets by time: {exc.args[0].str()}") from None
        for partition in partitions:
            key = (partition.topic, partition.partition)
            self.assigned.add(key)
            if partition.offset < 0 and self.window.start_ms is not None:
                self.at_end.add(key)  # no message at or after --from-time
        start = [tp for tp in partitions if (tp.topic, tp.partition) not in self.at_end]
        self._consumer.assign(start)
        self.assigned_since = time.monotonic()
        log.info("replay %s: assigned %s", self.window.describe(),
                 ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in start) or "nothing")

    def _wanted(self, message: Any) -> bool:
        key = (message.topic(), message.partition())
        if key in self.at_end:
            return False  # already past the window (a message fetched before the pause)
        _, timestamp = message.timestamp()
        start_ms, end_ms = self.window.start_ms, self.window.end_ms
        if end_ms is not None and timestamp >= end_ms:
            self.at_end.add(key)
            self._consumer.pause([TopicPartition(*key)])
            return False
        if start_ms is not None and timestamp < start_ms:
            return False  # before the window: a broker that answered offsets_for_times loosely
        return True

    def _end_offsets(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self._positions.get((tp.topic, tp.partition), -1))
                for tp in partitions]
