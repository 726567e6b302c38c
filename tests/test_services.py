"""The test services are real: a Kafka-protocol broker and a PostgreSQL server."""

from __future__ import annotations

import io

import fastavro
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from alert_pipeline.consumer.decode import bundled_schema, schema_id_for_version
from devtools.factory import TESTED_VERSIONS, AlertFactory

from .conftest import HEARTBEAT_MS, SESSION_TIMEOUT_MS, new_topic, produce


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": SESSION_TIMEOUT_MS,
                     "heartbeat.interval.ms": HEARTBEAT_MS})


def _read(consumer: Consumer, count: int) -> list[bytes]:
    values: list[bytes] = []
    for _ in range(200):
        for message in consumer.consume(count - len(values), timeout=0.5):
            assert message.error() is None, message.error()
            values.append(message.value())
        if len(values) >= count:
            return values
    raise AssertionError(f"read {len(values)} of {count} messages")


def test_committed_offset_is_resumed_by_a_second_consumer(kafka):
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, [f"m{i}".encode() for i in range(10)])

    first = _consumer(kafka.bootstrap_servers, "resume-group")
    first.subscribe([topic])
    assert _read(first, 4) == [b"m0", b"m1", b"m2", b"m3"]
    first.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    first.close()

    second = _consumer(kafka.bootstrap_servers, "resume-group")
    second.subscribe([topic])
    assert _read(second, 6) == [f"m{i}".encode() for i in range(4, 10)]
    assert second.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 4
    second.close()


def test_postgres_creates_inserts_and_queries(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE TEMP TABLE probe (id serial PRIMARY KEY, name text NOT NULL)")
        connection.execute("INSERT INTO probe (name) VALUES (%s), (%s)", ("vega", "deneb"))
        rows = connection.execute("SELECT name FROM probe ORDER BY id").fetchall()
        version = connection.execute("SHOW server_version").fetchone()[0]
    assert rows == [("vega",), ("deneb",)]
    assert int(version.split(".")[0]) >= 13


@pytest.mark.parametrize("version", TESTED_VERSIONS)
def test_factory_packet_round_trips_with_bundled_schema(version):
    factory = AlertFactory(version, seed=11)
    for packet in (factory.alert(), factory.alert(solar_system=True, cutouts=False)):
        buffer = io.BytesIO()
        schema = bundled_schema(schema_id_for_version(version))
        fastavro.schemaless_writer(buffer, schema, packet)
        buffer.seek(0)
        decoded = fastavro.schemaless_reader(buffer, schema)
        assert decoded["diaSource"]["diaSourceId"] == packet["diaSource"]["diaSourceId"]
        assert decoded["diaSource"]["ra"] == packet["diaSource"]["ra"]
        assert len(decoded["prvDiaSources"]) == len(packet["prvDiaSources"])
        assert fastavro.validate(packet, schema)


def test_factory_cutouts_are_rubin_like_ccddata():
    from astropy import units as u
    from astropy.nddata import CCDData

    packet = AlertFactory("11.1", seed=2).alert(cutout_size=45)
    buffer = io.BytesIO(packet["cutoutScience"])
    ccd = CCDData.read(buffer, format="fits", hdu_mask="MASK", hdu_uncertainty="UNCERT")
    assert ccd.shape == (45, 45)
    assert ccd.unit == u.nJy
    assert ccd.wcs is not None and ccd.wcs.wcs.ctype[0] == "RA---TAN"
    assert type(ccd.uncertainty).__name__ == "VarianceUncertainty"
    assert ccd.mask is not None and ccd.mask.any()


def test_factory_solar_system_alert_has_no_dia_object():
    for version, field in (("7.4", "ssObject"), ("9.0", "MPCORB"), ("11.1", "mpc_orbits")):
        packet = AlertFactory(version, seed=5).alert(solar_system=True)
        assert packet["diaObject"] is None
        assert packet[field] is not None
        assert packet["diaSource"]["ssObjectId"]


def test_local_services_script_lets_a_user_try_their_own_alerts(tmp_path):
    """``scripts/local_services.sh``: start, publish a user's alert file, consume it with the
    real consumer, load Fink alerts into its PostgreSQL, stop (nothing left running)."""
    import json
    import os
    import subprocess
    import sys

    from alert_pipeline.consumer.sources import write_frames_file
    from devtools import fink_samples
    from tests.conftest import REPO

    env = {**os.environ, "LOCAL_SERVICES_DIR": str(tmp_path / "services")}
    script = str(REPO / "scripts" / "local_services.sh")

    def call(*args: str, extra: dict | None = None, command: list[str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(command or [script, *args], env={**env, **(extra or {})}, capture_output=True,
                              text=True, timeout=180)

    started = call("start")
    try:
        assert started.returncode == 0, started.stderr
        settings = dict(line.split("=", 1) for line in call("env").stdout.splitlines())
        assert settings["LSST_CONSUMER_TOPIC"] == "lsst-extendedness-filtered"
        factory = AlertFactory("11.1", seed=31)
        frames = tmp_path / "mine.frames"
        write_frames_file(str(frames), [factory.frame(factory.alert(cutout_size=30)) for _ in range(4)])
        published = call("produce", str(frames))
        assert published.returncode == 0 and "published 4 messages" in published.stdout, published.stderr
        consumed = call(extra={**settings, "LSST_CONSUMER_OUTPUT_DIR": str(tmp_path / "out"),
                               "LSST_CONSUMER_IDLE_TIMEOUT": "5"},
                        command=[sys.executable, str(REPO / "lsst_alert_consumer.py")])
        assert consumed.returncode == 0 and "written=4" in consumed.stderr, consumed.stderr
        fink = tmp_path / "fink.json"
        fink.write_text(json.dumps(fink_samples.dataset(seed=3)[:20]))
        loaded = call(extra=settings, command=[sys.executable, str(REPO / "transient_kind_builder.py"), "load-fink",
                                               str(fink)])
        assert loaded.returncode == 0 and "inserted=20" in loaded.stderr, loaded.stderr
        assert call("start").stdout.startswith("already running")
    finally:
        stopped = call("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (tmp_path / "services" / "services.env").exists() and call("env").returncode == 1
    assert call("bogus").returncode == 64
