"""A run that read messages and wrote none says so: a warning naming the main reason and
an exit code of its own, passed on by the cron wrapper; ZTF alerts, gzip and Parquet
payloads are quarantined under reasons that say what they are."""

from __future__ import annotations

import gzip
import io
import json

import fastavro

from alert_pipeline.exitcodes import EXIT_NOTHING_WRITTEN
from devtools.factory import AlertFactory
from tests.conftest import consumer_env, new_topic, produce, run_consumer
from tests.test_hostile_input import sidecars
from tests.test_wrapper import run_wrapper, wrapper_env

#: The shape of a ZTF alert packet (objectId and a candidate record), as ZTF's brokers
#: send it: an Avro container of one record.
ZTF_SCHEMA = {"type": "record", "name": "alert", "namespace": "ztf", "fields": [
    {"name": "schemavsn", "type": "string"}, {"name": "objectId", "type": "string"},
    {"name": "candid", "type": "long"},
    {"name": "candidate", "type": {"type": "record", "name": "candidate", "fields": [
        {"name": "jd", "type": "double"}, {"name": "ra", "type": "double"}, {"name": "dec", "type": "double"},
        {"name": "magpsf", "type": "float"}]}}]}


def ztf_alert(number: int) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(ZTF_SCHEMA), [{
        "schemavsn": "4.02", "objectId": f"ZTF24aaaaa{number:02d}", "candid": 2_700_000_000_000_000_000 + number,
        "candidate": {"jd": 2460400.5 + number, "ra": 150.0, "dec": 2.0, "magpsf": 19.5}}])
    return buffer.getvalue()


def test_ztf_alerts_on_an_lsst_topic_are_a_loud_night(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, [ztf_alert(n) for n in range(5)])
    out = tmp_path / "out"
    done = run_consumer(consumer_env(kafka.bootstrap_servers, topic, out))
    assert done.returncode == EXIT_NOTHING_WRITTEN, done.stderr
    assert "WARNING LSST Alert Consumer wrote nothing: all 5 consumed messages were quarantined, mostly ztf-alert (5)" \
        in done.stderr
    found = sidecars(out)
    assert [s["reason"] for s in found] == ["ztf-alert"] * 5
    assert "this is a ZTF alert (ZTF24aaaaa00), not an LSST one" in found[0]["detail"]
    history = json.loads((out / "state" / "runs.jsonl").read_text().splitlines()[-1])
    assert history["exit_code"] == EXIT_NOTHING_WRITTEN and history["written"] == 0


def test_gzip_and_parquet_payloads_get_their_own_reasons_and_good_alerts_keep_the_night_quiet(kafka, tmp_path):
    factory = AlertFactory("11.1", seed=2801)
    good = factory.alert(cutouts=False)
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, [gzip.compress(factory.frame(good)), b"PAR1" + bytes(64) + b"PAR1",
                                             factory.frame(good)])
    out = tmp_path / "out"
    done = run_consumer(consumer_env(kafka.bootstrap_servers, topic, out))
    assert done.returncode == 0, done.stderr  # one alert written: not a broken stream
    reasons = {s["reason"]: s["detail"] for s in sidecars(out)}
    assert set(reasons) == {"gzip-payload", "parquet-payload"}
    assert "gzip-compressed" in reasons["gzip-payload"] and "schemaless" not in reasons["gzip-payload"]
    assert "wrote nothing" not in done.stderr


def test_the_wrapper_passes_the_loud_night_on(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, [b"\x01garbage" for _ in range(3)])
    env = wrapper_env(consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out"), REPORT="0")
    done = run_wrapper(env)
    assert done.returncode == EXIT_NOTHING_WRITTEN, done.stdout + done.stderr
    assert f"step consumer: failed with exit code {EXIT_NOTHING_WRITTEN}" in done.stdout
