"""The Kafka source: subscribe, hand out batches, commit what the runner acknowledges.

Offsets are committed (synchronously) only in ``ack``, which the runner calls after the
batch is durable, so a crash at any instant costs at most a redelivery, which the ledger
turns into "duplicates skipped".

The source ends its batches when every assigned partition reported end-of-partition
(``stop_at_end``; watermarks alone are not trusted, some brokers under-report them) or
after ``idle_timeout`` without a message, counted from when partitions are assigned.
Broker failures (unreachable, authentication, TLS, unknown topic) raise ``BrokerError``.

A fetch response larger than librdkafka's ``receive.message.max.bytes`` (100,000,000
bytes unless ``kafka_config`` says otherwise) cannot be received at all: librdkafka drops
the connection and fetches the same offsets again, forever, and the partition never moves
(nothing reaches the consumer, not even the messages before the big one in that response).
The source stops the run there with a ``BrokerError`` naming the size, the limit and each
partition not read to its end with the offset it is stuck at, rather than idling out with
exit 0.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from alert_pipeline.consumer.config import ConsumerConfig
from alert_pipeline.consumer.sources import Message
from alert_pipeline.consumer.summary import PartitionProgress
from alert_pipeline.errors import ServiceError
from alert_pipeline.masking import mask_secrets

log = logging.getLogger("lsst_alert_consumer")

POLL_SECONDS = 0.5
CHUNK = 50  # messages per consume() call while filling a batch
FATAL_KAFKA_ERRORS = {
    KafkaError._AUTHENTICATION: "authentication failed: check sasl.username/sasl.password and security.protocol",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication failed: check sasl.username/sasl.password",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "not authorised to read the topic: check the account's ACLs",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "not authorised to use the consumer group: check group.id and ACLs",
    KafkaError._SSL: "TLS handshake failed: check ssl.ca.location and the broker address",
}
#: librdkafka's words when a response is larger than ``receive.message.max.bytes``.
OVERSIZED_RESPONSE = re.compile(r"Invalid response size (\d+) \(0\.\.(\d+)\)")
#: The largest ``receive.message.max.bytes`` librdkafka takes.
RECEIVE_MESSAGE_MAX_BYTES_CEILING = 2_147_483_647


class BrokerError(ServiceError):
    """The broker cannot be used; the message says what failed and what to check."""


class KafkaSource:
    """The configured topics, read as a member of the consumer group."""

    mode = "group"
    #: The stop reason once every partition is done.
    end_reason = "caught-up"

    def __init__(self, config: ConsumerConfig) -> None:
        self.config = config
        self.stop_reason = ""
        #: "topic[partition]" → the first offset read this run.
        self.first_offsets: dict[str, int] = {}
        self.assigned: set[tuple[str, int]] = set()
        self.at_end: set[tuple[str, int]] = set()
        self.assigned_since: float | None = None
        self.fatal: str | None = None
        #: (response size, receive.message.max.bytes) once a fetch response was too large.
        self.oversized: tuple[int, int] | None = None
        #: (topic, partition) → the next offset after the last message delivered this run.
        self.next_offsets: dict[tuple[str, int], int] = {}
        self._consumer: Any = None

    # ------------------------------------------------------------------ callbacks
    def _on_error(self, error: KafkaError) -> None:
        if error.code() in FATAL_KAFKA_ERRORS or error.fatal():
            self.fatal = FATAL_KAFKA_ERRORS.get(error.code(), error.str())
        elif match := OVERSIZED_RESPONSE.search(error.str()):
            self.oversized = (int(match.group(1)), int(match.group(2)))
        else:
            log.debug("Kafka: %s", error.str())

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in partitions:
            self.assigned.add((partition.topic, partition.partition))
        self.assigned_since = time.monotonic()
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing")

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in partitions:
            key = (partition.topic, partition.partition)
            self.assigned.discard(key)
            self.at_end.discard(key)
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    # ------------------------------------------------------------------ the protocol
    def batches(self, budget: Callable[[], int]) -> Iterator[list[Message]]:
        self._connect()
        self._consumer.subscribe(self.config.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        yield from self._poll(budget)

    def ack(self, batch: list[Message]) -> None:
        offsets: dict[tuple[str, int], int] = {}
        for message in batch:
            key = (message.origin["topic"], message.origin["partition"])
            offsets[key] = max(offsets.get(key, -1), message.origin["offset"] + 1)
        try:
            self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                  asynchronous=False)
        except KafkaException as exc:
            # The batch is durable and in the ledger: a redelivery will be skipped.
            log.warning("offset commit failed (%s); the redelivered messages will be skipped", exc.args[0].str())

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # ------------------------------------------------------------------ internals
    def _connect(self) -> None:
        settings = self.config.librdkafka_config()
        # librdkafka's own log lines (connection retries …) only at DEBUG: failures that
        # matter surface through error_cb as one clear message.
        librdkafka_log = logging.getLogger("librdkafka")
        librdkafka_log.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)
        settings.update(error_cb=self._on_error, logger=librdkafka_log)
        try:
            self._consumer = Consumer(settings)
        except KafkaException as exc:
            raise BrokerError(f"cannot create the Kafka client: {exc.args[0].str()}. Check security.protocol "
                              "and sasl.mechanism.") from None
        self._check_topics(self._consumer)

    def _check_topics(self, consumer: Any) -> None:
        """Fail fast and clearly: broker unreachable, authentication, unknown topic."""
        servers = self.config.kafka_config.get("bootstrap.servers")
        try:
            metadata = consumer.list_topics(timeout=self.config.connect_timeout)
        except KafkaException as exc:
            reason = self.fatal or f"no answer within {self.config.connect_timeout:g} s ({exc.args[0].str()})"
            raise BrokerError(
                f"cannot reach the Kafka broker at {servers}: {reason}. Check bootstrap.servers, the network "
                "and security settings (security.protocol, sasl.*, ssl.*)."
            ) from None
        if self.fatal:
            raise BrokerError(f"Kafka broker at {servers}: {self.fatal}")
        missing = [topic for topic in self.config.topics if topic not in metadata.topics
                   or metadata.topics[topic].error is not None]
        if missing:
            raise BrokerError(
                f"unknown topic {', '.join(missing)} on {servers}: check the topic name "
                f"(the broker has {len(metadata.topics)} topics) and that your account may read it."
            )

    def _poll(self, budget: Callable[[], int]) -> Iterator[list[Message]]:
        config = self.config
        started = last_message = time.monotonic()
        # Without an assignment after this long, the group coordinator is not answering.
        session_timeout = float(config.librdkafka_config()["session.timeout.ms"]) / 1000
        assignment_deadline = started + config.connect_timeout + session_timeout
        while True:
            if self.fatal:
                raise BrokerError(f"Kafka: {self.fatal}")
            if self.oversized:
                raise self._oversized_error(*self.oversized)
            batch = self._data_messages(self._next_batch(budget()))
            yield batch
            now = time.monotonic()
            if batch:
                last_message = now
            if self.assigned_since is None:
                if now > assignment_deadline:
                    raise BrokerError("no partitions were assigned: check group.id and the broker's group coordinator")
                continue
            if self.stops_at_end and self.assigned and self.assigned <= self.at_end:
                self.stop_reason = self.end_reason
                return
            if now - max(last_message, self.assigned_since) >= config.idle_timeout:
                self.stop_reason = "idle-timeout"
                return

    def _next_batch(self, wanted: int) -> list[Any]:
        """Up to ``wanted`` messages, in chunks, returning as soon as the local queue runs dry.

        One ``consume(500)`` would wait out its whole timeout whenever 500 messages do not
        fit in librdkafka's local queue (64 MB by default: ~450 heavy alerts)."""
        messages = self._consumer.consume(num_messages=min(CHUNK, wanted), timeout=POLL_SECONDS)
        while messages and len(messages) < wanted:
            chunk = self._consumer.consume(num_messages=min(CHUNK, wanted - len(messages)), timeout=0.02)
            messages.extend(chunk)
            if len(chunk) < CHUNK:
                break
        return messages

    def _oversized_error(self, size: int, limit: int) -> BrokerError:
        """The run cannot go on (see the module docstring): say where it is stuck and what to do."""
        stuck = sorted(self.assigned - self.at_end)
        self._consumer.pause([TopicPartition(topic, partition) for topic, partition in stuck])  # no more fetches
        where = ", ".join(f"{topic}[{partition}] at offset {self._stuck_offset(topic, partition)}"
                          for topic, partition in stuck) or "an assigned partition"
        return BrokerError(
            f"Kafka: a fetch response of {size} bytes is larger than receive.message.max.bytes = {limit}: a message "
            f"of up to that size waits in {where}, and nothing after it can be read. Set kafka_config "
            f"receive.message.max.bytes above {size} (at most {RECEIVE_MESSAGE_MAX_BYTES_CEILING}) to read it (a message "
            "that is not an alert is then quarantined), or move the group's offset past it.")

    def _stuck_offset(self, topic: str, partition: int) -> str:
        """The offset a partition's next fetch starts at: after this run's last message, else
        the group's committed offset, else the partition's first (``auto.offset.reset``)."""
        if (topic, partition) in self.next_offsets:
            return str(self.next_offsets[(topic, partition)])
        problem = ""
        for _ in range(3):  # the connection the oversized response broke is being remade
            try:
                (committed,) = self._end_offsets([TopicPartition(topic, partition)])
                if committed.offset >= 0:
                    return str(committed.offset)
                low, _ = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
                return f"{low} (the partition's first; the group has no committed offset)"
            except KafkaException as exc:
                problem = exc.args[0].str()
                time.sleep(POLL_SECONDS)
        return f"unknown ({problem})"

    @property
    def stops_at_end(self) -> bool:
        return self.config.stop_at_end

    def _data_messages(self, messages: list[Any]) -> list[Message]:
        batch = []
        for message in messages:
            error = message.error()
            if error is None:
                self.next_offsets[(message.topic(), message.partition())] = message.offset() + 1
                if self._wanted(message):
                    _, timestamp = message.timestamp()
                    batch.append(Message(message.value(), {
                        "topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
                        "kafka_timestamp_ms": timestamp}))
                    self.first_offsets.setdefault(f"{message.topic()}[{message.partition()}]", message.offset())
            elif error.code() == KafkaError._PARTITION_EOF:
                self.at_end.add((message.topic(), message.partition()))
            elif error.code() in FATAL_KAFKA_ERRORS or error.fatal():
                self.fatal = FATAL_KAFKA_ERRORS.get(error.code(), error.str())
            else:
                log.warning("Kafka: %s", error.str())
        return batch

    def _wanted(self, message: Any) -> bool:
        """Whether a data message belongs to the run (the replay source checks its time)."""
        self.at_end.discard((message.topic(), message.partition()))
        return True

    def positions(self) -> dict[str, PartitionProgress]:
        """Per partition: the first offset read, where the run ended (the group's committed
        offset; for a replay the next offset to read) and the lag behind the end."""
        partitions = [TopicPartition(topic, partition) for topic, partition in sorted(self.assigned)]
        if not partitions or self._consumer is None:
            return {}
        positions = {}
        try:
            for tp in self._end_offsets(partitions):
                end = tp.offset if tp.offset >= 0 else None
                _, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                name = f"{tp.topic}[{tp.partition}]"
                lag = max(high - end, 0) if end is not None else None
                positions[name] = PartitionProgress(self.first_offsets.get(name), end, lag)
        except KafkaException as exc:
            log.warning("could not read the partitions' offsets: %s", exc.args[0].str())
        return positions

    def _end_offsets(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return self._consumer.committed(partitions, timeout=10)


def describe(config: ConsumerConfig) -> str:
    """The start-line description of a run, secrets masked."""
    kafka = mask_secrets(config.kafka_config)
    return (f"topics={','.join(config.topics)} bootstrap={kafka.get('bootstrap.servers')} "
            f"group={kafka.get('group.id')} output={config.output_dir} workers={config.workers}")
