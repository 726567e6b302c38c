"""Instances in one consumer group: Kafka splits the partitions, and an alert redelivered
to another instance after a death between durable write and commit is still written once,
whether the instances share an output directory (the shared ledger) or not (``--merge``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from alert_pipeline.consumer.sources import write_frames_file
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH, consumer_env, new_topic, produce, run_consumer
from tests.test_kafka_run import alerts, all_rows, assert_exactly_once, committed


def takeover(kafka, tmp_path: Path, east_dir: Path, west_dir: Path, group: str) -> tuple[set[str], subprocess.CompletedProcess]:
    """East dies after its second batch is durable, before committing it; west (another
    instance of the group) is then given the partition from the committed offset."""
    topic = new_topic(kafka.bootstrap_servers)
    values, ids = alerts(40, seed=2900)
    produce(kafka.bootstrap_servers, topic, values)
    east = run_consumer({**consumer_env(kafka.bootstrap_servers, topic, east_dir, group=group),
                         "LSST_CONSUMER_INSTANCE_ID": "east", "LSST_CONSUMER_TEST_CRASH": "before-commit:2"},
                        "--batch-size", "10")
    assert east.returncode == -signal.SIGKILL, east.stderr
    assert committed(kafka.bootstrap_servers, group, topic) == [10]  # batch 2 is on disk, not committed
    west = run_consumer({**consumer_env(kafka.bootstrap_servers, topic, west_dir, group=group),
                         "LSST_CONSUMER_INSTANCE_ID": "west", "LSST_CONSUMER_IDLE_TIMEOUT": "8"}, "--batch-size", "10")
    assert west.returncode == 0, west.stderr
    assert committed(kafka.bootstrap_servers, group, topic) == [40]
    return ids, west


def test_a_shared_output_directory_writes_a_redelivered_batch_once(kafka, tmp_path):
    out = tmp_path / "shared"
    ids, west = takeover(kafka, tmp_path, out, out, "shared-dir")
    assert "duplicates_skipped=10" in west.stderr  # the shared ledger knew east's second batch
    nothing = tmp_path / "nothing.frames"
    write_frames_file(str(nothing), [])
    back = run_consumer({**consumer_env(kafka.bootstrap_servers, "unused", out, group="shared-dir"),
                         "LSST_CONSUMER_INSTANCE_ID": "east"}, "--from-file", str(nothing))
    assert "recovered from an interrupted run" in back.stderr  # east, back, finishes its journal
    rows = assert_exactly_once(out, ids)
    assert {row["diaSourceId"] for row in rows} == ids
    names = sorted(p.name for p in (out / "data").iterdir())
    assert any("_east" in n for n in names) and any("_west" in n for n in names)


def test_separate_directories_hold_it_twice_and_merge_unions_them_once(kafka, tmp_path):
    east, west, merged = tmp_path / "east", tmp_path / "west", tmp_path / "merged"
    ids, _ = takeover(kafka, tmp_path, east, west, "own-dirs")
    union = [row["diaSourceId"] for row in all_rows(east) + all_rows(west)]
    assert len(union) == 50 and set(union) == ids  # ten alerts in both directories
    env = os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH, "LSST_CONSUMER_OUTPUT_DIR": str(merged)}
    command = [sys.executable, str(REPO / "lsst_alert_consumer.py"), "--merge", str(east), str(west)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "read=50 added=40 duplicates_skipped=10" in done.stderr
    assert_exactly_once(merged, ids)  # every row's cutouts copied and readable, no orphan
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "added=0 duplicates_skipped=50" in again.stderr
    report = subprocess.run([sys.executable, str(REPO / "lsst_alert_report.py"), "--output-dir", str(merged)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    bad = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--merge", str(tmp_path / "nope")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a consumer output directory" in bad.stderr


def test_history_names_each_instance(kafka, tmp_path):
    out = tmp_path / "shared"
    takeover(kafka, tmp_path, out, out, "history-instances")
    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--history"],
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH, "LSST_CONSUMER_OUTPUT_DIR": str(out)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert "instance" in header and any(" west " in f" {line} " for line in lines)
    records = [json.loads(line) for line in (out / "state" / "runs.jsonl").read_text().splitlines()]
    assert [record["instance"] for record in records] == ["west"]  # east was killed before it could record
