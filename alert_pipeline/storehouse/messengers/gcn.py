"""New notices from GCN Kafka, with the community's client (``gcn-kafka``).

Credentials come from ``GCN_CLIENT_ID`` / ``GCN_CLIENT_SECRET`` (or ``…_FILE`` naming a
file that holds one), as gcn-kafka's own examples read them; any librdkafka setting from
``GCN_KAFKA_<KEY>`` (Confluent's naming, gcn-kafka's ``config_from_env``); the domain from
``GCN_DOMAIN`` (default ``gcn.nasa.gov``). The consumer group (``GCN_GROUP_ID``) keeps
the position between cron runs.

The rule is the alert consumer's: offsets are committed only after the slots (and the
quarantined messages) of a batch are on disk, so nothing is lost and nothing is applied
twice. A notice that does not parse, or that any reader fails on (whatever it raises), is
quarantined under the storehouse (``quarantine/gcn/<topic>_<partition>_<offset>.bin`` and
``.json`` with the reason) and committed past, once: one bad notice never stops the notices
after it. Only a storehouse that cannot be written (disk full, permissions) stops the run,
with nothing of the batch in hand committed. A topic that does not exist is a notice source
of which nothing could be loaded: named in ``GcnRun.missing_topics``. A run ends when every assigned partition is read to its end, or after
``idle_timeout`` seconds without a message.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from alert_pipeline.durable import sync_filesystem
from alert_pipeline.kafka_settings import KAFKA_DEFAULTS, KAFKA_REQUIRED
from alert_pipeline.masking import mask_secrets, mask_text
from alert_pipeline.quarantine import QuarantineItem, source_stem, write_quarantine
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.layout import StorehouseLayout
from alert_pipeline.storehouse.messengers.events import Item
from alert_pipeline.storehouse.messengers.formats import read_document
from alert_pipeline.storehouse.messengers.load import LoadReport, MessengerStore

log = logging.getLogger("transient_kind_builder")

#: Every messenger kind's GCN topics (``MessengerKind.gcn_topics``), in the registry's order.
DEFAULT_TOPICS = tuple(topic for kind in kinds.messenger_kinds() for topic in kind.gcn_topics)
DEFAULT_GROUP = "lsst-alert-pipeline-messengers"
#: The quarantine of the notices no reader could use: ``quarantine/gcn/``.
GCN_QUARANTINE = "gcn"
#: Reasons that are no fault of the message: counted, never quarantined (a version that
#: gave way, and each kind's ``expected_problems``).
NOT_QUARANTINED = ("superseded", *(reason for kind in kinds.messenger_kinds() for reason in kind.expected_problems))
#: Largest notice accepted (an IGWN alert with its sky map is ~1 MB).
MAX_NOTICE_BYTES = 16 << 20
#: The quarantine reason of a notice a reader (or applying its items) failed on.
READER_ERROR = "reader_error"
#: Errors writing the storehouse that are no fault of the notice: the run stops, the batch is not committed.
STOREHOUSE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})


class GcnError(RuntimeError):
    """GCN Kafka cannot be used (unreachable, credentials refused): nothing committed."""


@dataclass
class GcnSettings:
    topics: tuple[str, ...]
    config: dict[str, Any]
    client_id: str | None
    client_secret: str | None
    domain: str | None

    def masked(self) -> dict[str, Any]:
        return {"topics": list(self.topics), "config": mask_secrets(self.config), "client_id": self.client_id,
                "client_secret": "***" if self.client_secret else None, "domain": self.domain}


@dataclass
class GcnRun:
    """What one ``consume`` did: the load report, the rosters of the kinds written, how
    many messages were read and the topics that do not exist (nothing of them loaded)."""
    report: LoadReport
    rosters: dict[str, Any]
    messages: int
    missing_topics: list[str] = field(default_factory=list)


def settings_from_environment(environ: Mapping[str, str], topics: tuple[str, ...] | None = None) -> GcnSettings:
    """GCN Kafka settings from the environment (see the module docstring)."""
    from gcn_kafka import config_from_env

    config = dict(config_from_env(environ, prefix="GCN_KAFKA_"))
    config.setdefault("group.id", environ.get("GCN_GROUP_ID") or DEFAULT_GROUP)
    config.setdefault("auto.offset.reset", "earliest")
    for key in ("session.timeout.ms", "heartbeat.interval.ms"):  # the consumer's group timings
        config.setdefault(key, KAFKA_DEFAULTS[key])
    config.update(KAFKA_REQUIRED)
    chosen = topics or tuple(t.strip() for t in (environ.get("GCN_TOPICS") or "").split(",") if t.strip())
    return GcnSettings(chosen or DEFAULT_TOPICS, config, _secret(environ, "GCN_CLIENT_ID"),
                       _secret(environ, "GCN_CLIENT_SECRET"), environ.get("GCN_DOMAIN") or None)


def _secret(environ: Mapping[str, str], name: str) -> str | None:
    if environ.get(f"{name}_FILE"):
        try:
            with open(environ[f"{name}_FILE"], encoding="utf-8") as handle:
                return handle.read().strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise GcnError(f"{name}_FILE names {environ[f'{name}_FILE']}, which cannot be read: {exc}") from None
    return environ.get(name) or None


def consume(storehouse: str, settings: GcnSettings, idle_timeout: float = 60.0,
            accept_mock: bool = False) -> GcnRun:
    """Read every new notice of ``settings.topics`` into the storehouse."""
    from confluent_kafka import KafkaError, KafkaException
    from gcn_kafka import Consumer

    target = MessengerStore(storehouse)
    try:
        consumer = Consumer(settings.config, client_id=settings.client_id, client_secret=settings.client_secret,
                            domain=settings.domain)
    except (KafkaException, ValueError, TypeError) as exc:
        raise GcnError(f"GCN Kafka settings are not valid: {exc}") from None
    read = 0
    assigned: set[tuple[str, int]] = set()
    at_end: set[tuple[str, int]] = set()
    missing: set[str] = set()

    def on_assign(_consumer: Any, partitions: list[Any]) -> None:
        assigned.update((tp.topic, tp.partition) for tp in partitions)

    try:
        consumer.list_topics(timeout=min(idle_timeout, 30.0))  # unreachable, refused: GcnError, exit 3
        consumer.subscribe(list(settings.topics), on_assign=on_assign)
        last_message = time.monotonic()
        while True:
            batch = consumer.consume(num_messages=100, timeout=1.0)
            written = []
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add((message.topic(), message.partition()))
                    elif error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                        if message.topic() not in missing:
                            log.error("GCN topic %s does not exist: nothing of it loaded", message.topic())
                        missing.add(message.topic())
                    elif error.fatal() or error.code() in (KafkaError._AUTHENTICATION, KafkaError._TRANSPORT,
                                                           KafkaError._ALL_BROKERS_DOWN):
                        raise GcnError(f"GCN Kafka: {error.str()}")
                    continue
                at_end.discard((message.topic(), message.partition()))
                read += 1
                _apply(target, message, storehouse, accept_mock)
                written.append(message)
            if written:
                target.sync()
                sync_filesystem(storehouse)  # the quarantined notices too
                consumer.commit(offsets=_next_offsets(written), asynchronous=False)  # only once on disk
                last_message = time.monotonic()
            if assigned and assigned <= at_end:
                break
            if time.monotonic() - last_message > idle_timeout:
                log.info("GCN: no message for %g s; stopping", idle_timeout)
                break
    except KafkaException as exc:
        raise GcnError(f"GCN Kafka: {exc.args[0].str() if exc.args else exc}") from None
    finally:
        consumer.close()
    return GcnRun(target.report, target.finish(), read, sorted(missing))


def _next_offsets(messages: list[Any]) -> list[Any]:
    """Per partition, the offset after the last message of ``messages``."""
    from confluent_kafka import TopicPartition

    last: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        last[key] = max(last.get(key, -1), message.offset())
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]


def _apply(target: MessengerStore, message: Any, storehouse: str, accept_mock: bool) -> None:
    """One notice into the storehouse: its items written, or the message quarantined once."""
    where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
    value = message.value() or b""
    if len(value) > MAX_NOTICE_BYTES:
        _quarantine(storehouse, message, "too_large", f"{len(value)} bytes, more than a notice may be")
        target.report.skipped["too_large"] += 1
        return
    problems = []
    try:
        for item in _items(value, where, accept_mock):
            if item.problem is not None and item.problem.reason not in NOT_QUARANTINED:
                problems.append(item.problem)
            _apply_item(target, item)
    except _NoticeFailed as failed:
        target.report.skipped[READER_ERROR] += 1
        _quarantine(storehouse, message, READER_ERROR, str(failed))
        return
    if problems:
        _quarantine(storehouse, message, problems[0].reason, "; ".join(str(problem) for problem in problems[:20]))


class _NoticeFailed(Exception):
    """A reader, or applying one of its items, raised on this notice: the notice's fault."""

    def __init__(self, step: str, cause: BaseException) -> None:
        text = str(cause)
        super().__init__(f"{step} raised {type(cause).__name__}: {text[:500]}{'…' if len(text) > 500 else ''}")


def _items(value: bytes, where: str, accept_mock: bool) -> Iterator[Item]:
    """``read_document``'s items; whatever it raises becomes ``_NoticeFailed`` (what the
    caller's loop body raises is not thrown into this generator, so only the reader's)."""
    try:
        yield from read_document(value, where, accept_mock)
    except Exception as exc:  # noqa: BLE001 - any reader failure is this notice's, never the run's
        raise _NoticeFailed("reading the notice", exc) from exc


def _apply_item(target: MessengerStore, item: Item) -> None:
    """``target.apply(item)``; a storehouse that cannot be written stops the run (the
    batch is not committed), any other failure is the notice's (``_NoticeFailed``)."""
    try:
        target.apply(item)
    except OSError as exc:
        if exc.errno in STOREHOUSE_ERRNOS:
            raise
        raise _NoticeFailed("applying the notice", exc) from exc
    except Exception as exc:  # noqa: BLE001 - as in _items
        raise _NoticeFailed("applying the notice", exc) from exc


def _quarantine(storehouse: str, message: Any, reason: str, detail: str) -> None:
    """The notice's bytes and why, in the consumer's quarantine format (``.bin`` and a
    ``.json`` sidecar named ``<topic>_<partition>_<offset>``)."""
    directory = StorehouseLayout.at(storehouse).quarantine(GCN_QUARANTINE)
    os.makedirs(directory, exist_ok=True)
    source = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
    write_quarantine(directory, source, message.value() or b"", [QuarantineItem(reason, detail)],
                     dt.datetime.now(dt.UTC), mask_text)
    log.warning("quarantined GCN notice %s: %s (%s)", source_stem(source), detail, reason)
