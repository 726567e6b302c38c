"""The Kafka run loop: consume a batch, write it durably, commit, until a stop condition.

Offsets are committed only after ``OutputStore.write_batch`` has made the batch's rows,
cutouts and ledger line durable, so a crash at any instant costs at most a redelivery,
which the ledger turns into "duplicates skipped".

Stop conditions (whichever comes first): caught up (every assigned partition reported
end-of-partition; watermarks alone are not trusted, some brokers under-report them),
``idle_timeout`` without a message counted from when partitions are assigned,
``max_messages``, ``max_runtime``, SIGTERM/SIGINT (the batch in hand is finished and
committed first).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from .config import EXIT_BROKER, ConsumerConfig, mask_secrets
from .consumer import AlertConsumer
from .outputs import crash_point

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


class BrokerError(RuntimeError):
    """The broker cannot be used; the message says what failed and what to check."""

    exit_code = EXIT_BROKER


@dataclass
class RunSummary:
    consumed: int = 0
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    cutouts: int = 0
    elapsed: float = 0.0
    stop_reason: str = ""
    recovered: str | None = None
    partitions: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def line(self) -> str:
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


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between batches."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name


class KafkaRun:
    """One run of the consumer against Kafka."""

    def __init__(self, app: AlertConsumer, now: Callable[[], dt.datetime] | None = None) -> None:
        self.app = app
        self.config: ConsumerConfig = app.config
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.summary = RunSummary()
        self.assigned: set[tuple[str, int]] = set()
        self.at_end: set[tuple[str, int]] = set()
        self.assigned_since: float | None = None
        self.fatal: str | None = None
        self.stop = _StopFlag()

    # ------------------------------------------------------------------ callbacks
    def _on_error(self, error: KafkaError) -> None:
        if error.code() in FATAL_KAFKA_ERRORS or error.fatal():
            self.fatal = FATAL_KAFKA_ERRORS.get(error.code(), error.str())
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

    # ------------------------------------------------------------------ the run
    def run(self) -> RunSummary:
        started = time.monotonic()
        self.summary.recovered = self.app.store.recover(self.now().date())
        if self.summary.recovered:
            log.warning("recovered from an interrupted run: %s", self.summary.recovered)
        settings = self.config.librdkafka_config()
        # librdkafka's own log lines (connection retries …) only at DEBUG: failures that
        # matter surface through error_cb as one clear message.
        librdkafka_log = logging.getLogger("librdkafka")
        librdkafka_log.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)
        settings.update(error_cb=self._on_error, logger=librdkafka_log)
        consumer = Consumer(settings)
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._check_topics(consumer)
            consumer.subscribe(self.config.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
            self.summary.stop_reason = self._loop(consumer, started)
            self.summary.partitions = self._positions(consumer)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.summary.elapsed = time.monotonic() - started
            consumer.close()
        return self.summary

    def _check_topics(self, consumer: Consumer) -> None:
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

    def _loop(self, consumer: Consumer, started: float) -> str:
        config = self.config
        last_message = time.monotonic()
        # Without an assignment after this long, the group coordinator is not answering.
        session_timeout = float(config.librdkafka_config()["session.timeout.ms"]) / 1000
        assignment_deadline = started + config.connect_timeout + session_timeout
        while True:
            if self.stop.signal_name:
                return self.stop.signal_name
            if self.fatal:
                raise BrokerError(f"Kafka: {self.fatal}")
            wanted = config.batch_size
            if config.max_messages is not None:
                wanted = min(wanted, config.max_messages - self.summary.consumed)
            batch = self._data_messages(self._next_batch(consumer, wanted))
            if batch:
                self._write_and_commit(consumer, batch)
                last_message = time.monotonic()
            now = time.monotonic()
            if config.max_messages is not None and self.summary.consumed >= config.max_messages:
                return "max-messages"
            if config.max_runtime is not None and now - started >= config.max_runtime:
                return "max-runtime"
            if self.assigned_since is None:
                if now > assignment_deadline:
                    raise BrokerError("no partitions were assigned: check group.id and the broker's group coordinator")
                continue
            if config.stop_at_end and self.assigned and self.assigned <= self.at_end:
                return "caught-up"
            if now - max(last_message, self.assigned_since) >= config.idle_timeout:
                return "idle-timeout"

    @staticmethod
    def _next_batch(consumer: Consumer, wanted: int) -> list[Any]:
        """Up to ``wanted`` messages, in chunks, returning as soon as the local queue runs dry.

        One ``consume(500)`` would wait out its whole timeout whenever 500 messages do not
        fit in librdkafka's local queue (64 MB by default: ~450 heavy alerts)."""
        messages = consumer.consume(num_messages=min(CHUNK, wanted), timeout=POLL_SECONDS)
        while messages and len(messages) < wanted:
            chunk = consumer.consume(num_messages=min(CHUNK, wanted - len(messages)), timeout=0.02)
            messages.extend(chunk)
            if len(chunk) < CHUNK:
                break
        return messages

    def _data_messages(self, messages: list[Any]) -> list[Any]:
        batch = []
        for message in messages:
            error = message.error()
            if error is None:
                batch.append(message)
                self.at_end.discard((message.topic(), message.partition()))
            elif error.code() == KafkaError._PARTITION_EOF:
                self.at_end.add((message.topic(), message.partition()))
            elif error.code() in FATAL_KAFKA_ERRORS or error.fatal():
                self.fatal = FATAL_KAFKA_ERRORS.get(error.code(), error.str())
            else:
                log.warning("Kafka: %s", error.str())
        return batch

    def _write_and_commit(self, consumer: Consumer, batch: list[Any]) -> None:
        processed_at = self.now()
        items = [(message.value(), _source(message)) for message in batch]
        result = self.app.write_batch(items, processed_at)  # durable, or raises: no commit
        offsets: dict[tuple[str, int], int] = {}
        for message in batch:
            key = (message.topic(), message.partition())
            offsets[key] = max(offsets.get(key, -1), message.offset() + 1)
        crash_point("before-commit")
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        except KafkaException as exc:
            # The batch is durable and in the ledger: a redelivery will be skipped.
            log.warning("offset commit failed (%s); the redelivered messages will be skipped", exc.args[0].str())
        crash_point("after-commit")
        self.app.store.finish_batch()
        self.summary.consumed += len(batch)
        self.summary.written += result.written
        self.summary.duplicates += result.duplicates
        self.summary.quarantined += result.quarantined
        self.summary.cutouts += result.cutouts
        _progress(self.summary)

    def _positions(self, consumer: Consumer) -> dict[str, tuple[int | None, int | None]]:
        partitions = [TopicPartition(topic, partition) for topic, partition in sorted(self.assigned)]
        if not partitions:
            return {}
        positions = {}
        try:
            for tp in consumer.committed(partitions, timeout=10):
                committed = tp.offset if tp.offset >= 0 else None
                _, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                lag = max(high - committed, 0) if committed is not None else None
                positions[f"{tp.topic}[{tp.partition}]"] = (committed, lag)
        except KafkaException as exc:
            log.warning("could not read committed offsets: %s", exc.args[0].str())
        return positions


def _source(message: Any) -> dict[str, Any]:
    _, timestamp = message.timestamp()
    return {"topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
            "kafka_timestamp_ms": timestamp}


def _progress(summary: RunSummary) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r  consumed {summary.consumed}  written {summary.written}  "
                         f"quarantined {summary.quarantined} ")
        sys.stderr.flush()


def describe(config: ConsumerConfig) -> str:
    """The start-line description of a run, secrets masked."""
    kafka = mask_secrets(config.kafka_config)
    return (f"topics={','.join(config.topics)} bootstrap={kafka.get('bootstrap.servers')} "
            f"group={kafka.get('group.id')} output={config.output_dir} workers={config.workers}")
