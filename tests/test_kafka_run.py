"""The Kafka run loop against the real broker: exactly once through crashes and bad input."""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from alert_pipeline.consumer.records import FILE_COLUMNS
from devtools.factory import AlertFactory, malformed_messages

from .conftest import consumer_env, new_topic, produce, run_consumer, start_consumer


def alerts(count: int, seed: int, version: str = "11.1", cutout_size: int = 30) -> tuple[list[bytes], set[str]]:
    """Framed alerts and the diaSourceIds they carry."""
    factory = AlertFactory(version, seed=seed)
    packets = [factory.alert(cutout_size=cutout_size, n_prv_sources=2, n_prv_forced=2) for _ in range(count)]
    return [factory.frame(p) for p in packets], {str(p["diaSource"]["diaSourceId"]) for p in packets}


def all_rows(output_dir: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted((output_dir / "data").glob("lsst_alerts_*.csv")):
        with open(path, newline="") as handle:
            text = handle.read()
        assert text.endswith("\n"), f"{path} ends in a partial row"
        rows.extend(csv.DictReader(text.splitlines()))
    return rows


def assert_exactly_once(output_dir: Path, expected_ids: set[str]) -> list[dict[str, str]]:
    """Every alert once, every cutout referenced by its row, nothing staged or pending."""
    rows = all_rows(output_dir)
    counts = Counter(row["diaSourceId"] for row in rows)
    assert [key for key, n in counts.items() if n > 1] == []
    assert set(counts) == expected_ids
    referenced = {row[column] for row in rows for column in FILE_COLUMNS}
    referenced.discard("")
    on_disk = {f"cutouts/{name}" for name in os.listdir(output_dir / "cutouts")}
    assert on_disk == referenced, "orphaned or missing cutout files"
    for path in referenced:
        assert (output_dir / path).read_bytes().startswith(b"SIMPLE  =")
    state = output_dir / "state"
    assert not list(state.glob("*.journal.json")), "a batch was left pending"
    assert all(not os.listdir(d) for d in state.glob("*.incoming")), "staged cutouts left behind"
    return rows


def committed(bootstrap: str, group: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in found]
    finally:
        consumer.close()


def test_run_writes_every_alert_once_and_rerun_finds_nothing(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(30, seed=100)
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out", group="once")

    first = run_consumer(env, "--batch-size", "10")
    assert first.returncode == 0, first.stderr
    rows = assert_exactly_once(tmp_path / "out", ids)
    assert len(rows) == 30 and len(os.listdir(tmp_path / "out" / "cutouts")) == 30 * 4  # 3 cutouts, a light curve
    assert committed(kafka.bootstrap_servers, "once", topic) == [30]
    assert "LSST Alert Consumer starting" in first.stderr
    assert "LSST Alert Consumer finished: consumed=30 written=30 duplicates_skipped=0 quarantined=0" in first.stderr
    assert f"{topic}[0]:committed=30,lag=0" in first.stderr

    again = run_consumer(env)
    assert again.returncode == 0, again.stderr
    assert "consumed=0 written=0" in again.stderr and "stop=caught-up" in again.stderr
    assert_exactly_once(tmp_path / "out", ids)


CRASH_POINTS = ["mid-batch", "after-journal", "after-cutouts", "after-csv", "before-commit", "after-commit"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_at_each_instant_then_rerun_gives_exactly_once(kafka, tmp_path, point):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(40, seed=200 + CRASH_POINTS.index(point))
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out")

    crashed = run_consumer({**env, "LSST_CONSUMER_TEST_CRASH": f"{point}:2"}, "--batch-size", "10")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    # The rerun's idle timer must wait for the group to hand back the dead member's
    # partitions (one session timeout) before it counts: 1 s would be too short otherwise.
    rerun = run_consumer({**env, "LSST_CONSUMER_IDLE_TIMEOUT": "1"}, "--batch-size", "10")
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(tmp_path / "out", ids)


def test_sigkill_from_outside_at_arbitrary_instants(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(300, seed=300)
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out", group="outside-kill")
    # The group join takes ~1 s (longer after a kill: the dead member's session must
    # expire), so these delays land before and during the first batches; the last kill
    # comes as soon as rows are on disk, before the run could finish (on a fast machine a
    # fixed delay let it finish, and Tansu then never assigned the group again: see
    # _wait_for_rows).
    for delay in (1.2, 3.1, None):
        process = start_consumer(env, "--batch-size", "7")
        if delay is None:
            _wait_for_rows(tmp_path / "out" / "data", process)
        else:
            time.sleep(delay)
        process.kill()
        process.wait()
    final = run_consumer(env, "--batch-size", "7")
    assert final.returncode == 0, final.stderr
    assert_exactly_once(tmp_path / "out", ids)


def _wait_for_rows(data_dir, process, timeout: float = 60.0) -> None:
    """Until the running consumer has added rows to a CSV file (it still has most of the
    topic to read). Tansu 0.6 deviates from Kafka after three members in a row, two of
    them killed while joining, one leaving cleanly: the next JoinGroup names a departed
    leader and SyncGroup answers "rebalance in progress" forever."""
    sizes = {path: path.stat().st_size for path in data_dir.glob("*.csv")} if data_dir.exists() else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        now = {path: path.stat().st_size for path in data_dir.glob("*.csv")} if data_dir.exists() else {}
        if any(size > sizes.get(path, 0) for path, size in now.items()):
            return
        time.sleep(0.01)
    raise AssertionError("the consumer wrote no rows before it ended or the timeout")


def test_redelivery_on_a_later_day_is_not_written_again(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(20, seed=400)
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out")
    day_one = {**env, "LSST_CONSUMER_TEST_START_TIME": "2026-02-10T23:59:58Z", "LSST_CONSUMER_TEST_CRASH": "before-commit:1"}
    crashed = run_consumer(day_one, "--batch-size", "20")
    assert crashed.returncode == -signal.SIGKILL
    day_two = {**env, "LSST_CONSUMER_TEST_START_TIME": "2026-02-12T02:00:00Z"}
    rerun = run_consumer(day_two, "--batch-size", "20")
    assert rerun.returncode == 0, rerun.stderr
    assert "duplicates_skipped=20" in rerun.stderr
    assert_exactly_once(tmp_path / "out", ids)
    assert [p.name for p in (tmp_path / "out" / "data").iterdir()] == ["lsst_alerts_20260210.csv"]


def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(400, seed=500)
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out", group="sigterm")
    process = start_consumer(env, "--batch-size", "5")
    data_dir = tmp_path / "out" / "data"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (data_dir.exists() and list(data_dir.glob("*.csv"))):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "stop=SIGTERM" in output
    written = len(all_rows(tmp_path / "out"))
    assert 0 < written < 400
    assert committed(kafka.bootstrap_servers, "sigterm", topic) == [written]

    rest = run_consumer(env)
    assert rest.returncode == 0, rest.stderr
    assert f"written={400 - written} duplicates_skipped=0" in rest.stderr
    assert_exactly_once(tmp_path / "out", ids)


def test_garbage_is_quarantined_with_reasons_and_good_alerts_written(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    factory = AlertFactory("11.1", seed=600)
    ids, messages = set(), []
    bad = list(malformed_messages(factory))
    broken_cutout = factory.alert(cutout_size=30)
    broken_cutout["cutoutDifference"] = b"\x89PNG not a FITS file"
    for index in range(12):
        packet = factory.alert(cutout_size=30)
        ids.add(str(packet["diaSource"]["diaSourceId"]))
        messages.append(factory.frame(packet))
        if index < len(bad):
            messages.append(bad[index][1])
    messages.append(factory.frame(broken_cutout))
    ids.add(str(broken_cutout["diaSource"]["diaSourceId"]))
    produce(kafka.bootstrap_servers, topic, messages)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out", group="garbage")

    done = run_consumer(env, "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    assert f"quarantined={len(bad) + 1}" in done.stderr
    rows = all_rows(tmp_path / "out")
    assert {row["diaSourceId"] for row in rows} == ids and len(rows) == len(ids)
    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "out" / "quarantine").glob("*.json")]
    assert sorted(s["reason"] for s in sidecars) == sorted(
        ["unrecognised-framing", "corrupt-payload", "unknown-schema-id", "corrupt-payload", "corrupt-payload",
         "invalid-cutout"])
    for sidecar in sidecars:
        assert {"topic", "partition", "offset", "kafka_timestamp_ms", "reason", "processed_at"} <= set(sidecar)
        assert sidecar["topic"] == topic
    assert committed(kafka.bootstrap_servers, "garbage", topic) == [len(messages)]
    assert_exactly_once(tmp_path / "out", ids)


def test_broker_down_fails_fast_with_a_clear_message(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = consumer_env(f"127.0.0.1:{port}", "alerts", tmp_path / "out")
    started = time.monotonic()
    done = run_consumer(env, "--connect-timeout", "3")
    assert done.returncode == 3
    assert time.monotonic() - started < 30
    assert "cannot reach the Kafka broker" in done.stderr and "bootstrap.servers" in done.stderr
    assert not list((tmp_path / "out" / "data").glob("*.csv"))


def test_unknown_topic_is_a_broker_error(kafka, tmp_path):
    env = consumer_env(kafka.bootstrap_servers, "no-such-topic-here", tmp_path / "out")
    done = run_consumer(env, "--connect-timeout", "10")
    assert done.returncode == 3
    assert "unknown topic no-such-topic-here" in done.stderr


def run_with_read_only_output(env: dict[str, str], out: Path) -> subprocess.CompletedProcess:
    """Run the consumer with ``out`` read-only: as root (who ignores permissions) through a
    read-only bind mount in a private mount namespace, otherwise with chmod."""
    import sys

    from .conftest import REPO

    command = [sys.executable, str(REPO / "lsst_alert_consumer.py")]
    if os.geteuid() == 0:
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        return subprocess.run(["unshare", "-m", "sh", "-c", script, str(out), *command], env=env,
                              capture_output=True, text=True, timeout=120)
    directories = [out, *(p for p in out.rglob("*") if p.is_dir())]
    for directory in directories:
        directory.chmod(0o555)
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    finally:
        for directory in directories:
            directory.chmod(0o755)


def test_output_not_writable_exits_4_and_commits_nothing(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(5, seed=700)
    produce(kafka.bootstrap_servers, topic, values)
    out = tmp_path / "out"
    env = consumer_env(kafka.bootstrap_servers, topic, out, group="readonly")
    assert run_consumer(env).returncode == 0
    before = {p: p.read_bytes() for p in (out / "data").iterdir()}
    more, more_ids = alerts(5, seed=701)
    produce(kafka.bootstrap_servers, topic, more)

    done = run_with_read_only_output(env, out)
    assert done.returncode == 4, done.stderr
    assert "LSST Alert Consumer failed" in done.stderr and str(out) in done.stderr
    assert {p: p.read_bytes() for p in (out / "data").iterdir()} == before
    assert committed(kafka.bootstrap_servers, "readonly", topic) == [5]
    assert run_consumer(env).returncode == 0
    assert_exactly_once(out, ids | more_ids)


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_stops_without_damage_and_next_run_recovers(kafka, tmp_path):
    """A write failing mid-batch (as on a full disk; simulated with RLIMIT_FSIZE, which
    fails the write with EFBIG exactly where ENOSPC would) exits 4 and damages nothing."""
    import sys

    from .conftest import REPO

    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(6, seed=800, cutout_size=30)
    produce(kafka.bootstrap_servers, topic, values)
    out = tmp_path / "out"
    env = consumer_env(kafka.bootstrap_servers, topic, out, group="diskfull")
    assert run_consumer(env).returncode == 0
    csv_before = {p.name: p.read_bytes() for p in (out / "data").iterdir()}
    cutouts_before = sorted(os.listdir(out / "cutouts"))
    more, more_ids = alerts(6, seed=801, cutout_size=80)  # an 80 px cutout is ~80 kB
    produce(kafka.bootstrap_servers, topic, more)

    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py")], env=env, capture_output=True,
                          text=True, timeout=120, preexec_fn=_file_size_limit(40_000))
    assert done.returncode == 4, done.stderr
    assert "the batch was not committed" in done.stderr
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == csv_before
    assert sorted(os.listdir(out / "cutouts")) == cutouts_before
    assert committed(kafka.bootstrap_servers, "diskfull", topic) == [6]

    assert run_consumer(env).returncode == 0
    assert_exactly_once(out, ids | more_ids)


def test_snappy_compressed_topic(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(10, seed=900)
    produce(kafka.bootstrap_servers, topic, values, compression="snappy")
    done = run_consumer(consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert_exactly_once(tmp_path / "out", ids)


def test_workers_keep_exactly_once(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(60, seed=950)
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out")
    done = run_consumer(env, "--workers", "2", "--batch-size", "16")
    assert done.returncode == 0, done.stderr
    assert "workers=2" in done.stderr
    assert_exactly_once(tmp_path / "out", ids)


def test_two_instances_in_one_group_share_four_partitions(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers, partitions=4)
    values, ids = alerts(200, seed=1000, cutout_size=30)
    for partition in range(4):
        produce(kafka.bootstrap_servers, topic, values[partition::4], partition=partition)
    out = tmp_path / "out"
    env = consumer_env(kafka.bootstrap_servers, topic, out, group="pair", LSST_CONSUMER_IDLE_TIMEOUT="4")
    processes = [start_consumer({**env, "LSST_CONSUMER_INSTANCE_ID": name}, "--batch-size", "10", "--no-stop-at-end")
                 for name in ("east", "west")]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    names = {p.name for p in (out / "data").iterdir()}
    assert all("_east" in name or "_west" in name for name in names), names
    assert any("_east" in name for name in names) and any("_west" in name for name in names), names  # both got some
    assert_exactly_once(out, ids)
    assert committed(kafka.bootstrap_servers, "pair", topic, 4) == [50, 50, 50, 50]


def test_idle_timeout_stops_a_run_that_does_not_stop_at_end(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(3, seed=1100)
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out", LSST_CONSUMER_IDLE_TIMEOUT="2")
    done = run_consumer(env, "--no-stop-at-end")
    assert done.returncode == 0 and "stop=idle-timeout" in done.stderr
    assert_exactly_once(tmp_path / "out", ids)


def test_max_messages_stops_and_commits_exactly_that_many(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    values, _ = alerts(25, seed=1200)
    produce(kafka.bootstrap_servers, topic, values)
    env = consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out", group="maxmsg")
    done = run_consumer(env, "--max-messages", "7", "--batch-size", "5")
    assert done.returncode == 0 and "stop=max-messages" in done.stderr
    assert len(all_rows(tmp_path / "out")) == 7
    assert committed(kafka.bootstrap_servers, "maxmsg", topic) == [7]


def test_consumer_settings_reach_librdkafka(tmp_path):
    env = consumer_env("127.0.0.1:9", "t", tmp_path / "out",
                       LSST_CONSUMER_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                       LSST_CONSUMER_KAFKA_SASL_MECHANISM="PLAIN",
                       LSST_CONSUMER_KAFKA_SASL_USERNAME="antares-user",
                       LSST_CONSUMER_KAFKA_SASL_PASSWORD="hunter2-secret")
    shown = run_consumer(env, "--show-config")
    assert shown.returncode == 0
    assert "SASL_SSL" in shown.stdout and "antares-user" in shown.stdout
    assert "hunter2-secret" not in shown.stdout + shown.stderr and '"sasl.password" = "***"' in shown.stdout
