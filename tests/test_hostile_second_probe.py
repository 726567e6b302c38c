"""The second adversarial probe's findings, each through the real entry points.

Bombs run the consumer as a child process under a memory limit (``RLIMIT_AS``) and a
time limit, so a regression fails the test (a SIGSEGV, a MemoryError quarantined under
the wrong reason, a timeout) instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from alert_pipeline.consumer.layout import HISTORY_FILE
from alert_pipeline.consumer.sources import write_frames_file
from devtools import hostile
from devtools.factory import AlertFactory
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH, consumer_env, new_topic, produce, run_consumer
from tests.peak import RUN_AND_MEASURE
from tests.registry_server import SchemaRegistryServer
from tests.test_hostile_input import offline_env, peak_rss_mb, read_rows, sidecars
from tests.test_kafka_run import assert_exactly_once, committed

#: The consumer's address space under test: far above a normal run, far below what the
#: bombs took before (5.4 GB after 75 s, then 24 GB).
ADDRESS_SPACE = 6 << 30
PASSWORD = "Pr0be-Pa55word"


def run_limited(env: dict[str, str], *args: str, script: Path = REPO / "lsst_alert_consumer.py",
                timeout: float = 180) -> subprocess.CompletedProcess:
    """The consumer in a child process with at most ``ADDRESS_SPACE`` of memory."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run([sys.executable, "-c", RUN_AND_MEASURE, str(script), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


def framed(schema_id: int, data: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + data


def good_frames(seed: int, count: int) -> tuple[list[bytes], set[str]]:
    factory = AlertFactory("11.1", seed=seed)
    packets = [factory.alert(cutout_size=20, n_prv_sources=2) for _ in range(count)]
    return [factory.frame(p) for p in packets], {str(p["diaSource"]["diaSourceId"]) for p in packets}


# ------------------------------------------------------------------ 1, 2: writer schemas
def test_recursive_and_zero_size_schemas_are_quarantined_offline_and_the_good_alerts_kept(tmp_path):
    values, ids = good_frames(2301, 4)
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), [values[0], hostile.recursion_container(200_000), values[1],
                                    hostile.zero_size_items_container(), values[2], values[3]])
    out = tmp_path / "out"
    done = run_limited(offline_env(out), "--from-file", str(frames))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_exactly_once(out, ids)
    found = {s["reason"]: s["detail"] for s in sidecars(out)}
    assert set(found) == {"unsafe-schema"} and len(sidecars(out)) == 2
    details = sorted(s["detail"] for s in sidecars(out))
    assert "items that take no bytes" in details[0] and "recursive" in details[1]
    assert peak_rss_mb(done) < 450


@pytest.mark.parametrize("decoder", ["cavro", "fastavro"])
def test_schemas_from_a_registry_are_checked_too_through_kafka(kafka, tmp_path, decoder):
    """The same two schemas served by a registry under ids 7001 and 7002, their messages
    between good alerts on one partition: quarantined, the partition committed past them,
    each refused schema fetched once."""
    values, ids = good_frames(2302, 3)
    extra = {7001: json.dumps(hostile.RECURSIVE_SCHEMA), 7002: json.dumps(hostile.ZERO_SIZE_ITEMS_SCHEMA)}
    messages = [values[0], framed(7001, hostile.recursive_record(200_000)), values[1],
                framed(7002, hostile.zero_size_items()), framed(7001, hostile.recursive_record(3)), values[2]]
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, messages)
    out = tmp_path / "out"
    with SchemaRegistryServer(extra=extra) as registry:
        env = consumer_env(kafka.bootstrap_servers, topic, out, group=f"unsafe-{decoder}",
                           LSST_CONSUMER_SCHEMA_REGISTRY_URL=registry.url, LSST_CONSUMER_DECODER=decoder)
        done = run_limited(env)
        fetches = registry.schema_fetches()
    assert done.returncode == 0, done.stderr[-3000:]
    assert_exactly_once(out, ids)
    assert [s["reason"] for s in sidecars(out)] == ["unsafe-schema"] * 3
    assert committed(kafka.bootstrap_servers, f"unsafe-{decoder}", topic) == [len(messages)]
    assert sorted(fetches) == ["/schemas/ids/1101", "/schemas/ids/7001", "/schemas/ids/7002"]
    assert peak_rss_mb(done) < 450


# ------------------------------------------------------------------ 3, 4: the registry itself
@pytest.mark.parametrize("mode", ["drip", "huge"])
def test_a_registry_that_drips_or_floods_stops_the_run_with_exit_3_and_loses_nothing(kafka, tmp_path, mode):
    values, ids = good_frames(2303, 3)
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, values)
    out = tmp_path / "out"
    group = f"registry-{mode}"
    with SchemaRegistryServer() as registry:
        registry.drip, registry.huge_answer = mode == "drip", (400 << 20 if mode == "huge" else 0)
        env = consumer_env(kafka.bootstrap_servers, topic, out, group=group,
                           LSST_CONSUMER_SCHEMA_REGISTRY_URL=registry.url,
                           LSST_CONSUMER_SCHEMA_REGISTRY_TIMEOUT="2", LSST_CONSUMER_SCHEMA_REGISTRY_MAX_RETRIES="0")
        # The dripping registry would hold a run for its whole two minutes without the deadline.
        done = run_limited(env, timeout=90)
        registry.drip, registry.huge_answer = False, 0
        assert done.returncode == 3, done.stderr[-3000:]
        assert "schema registry" in done.stderr
        assert ("did not answer within 2 s" if mode == "drip" else "larger than") in done.stderr
        assert peak_rss_mb(done) < 450  # the 400 MB answer was never held
        assert not list((out / "quarantine").glob("*.json")) and not read_rows(out)
        again = run_consumer(env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_exactly_once(out, ids)
    assert committed(kafka.bootstrap_servers, group, topic) == [len(values)]


def test_a_password_in_the_registry_url_reaches_no_log_line(kafka, tmp_path):
    values, ids = good_frames(2304, 2)
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, values)
    out = tmp_path / "out"
    with SchemaRegistryServer(user_info=f"alerts:{PASSWORD}") as registry:
        url = registry.url.replace("http://", f"http://alerts:{PASSWORD}@")
        for level in ("INFO", "DEBUG"):
            env = consumer_env(kafka.bootstrap_servers, topic, out, group=f"userinfo-{level}",
                               LSST_CONSUMER_SCHEMA_REGISTRY_URL=url, LSST_CONSUMER_LOG_LEVEL=level)
            done = run_consumer(env)
            assert done.returncode == 0, done.stderr[-3000:]
            assert PASSWORD not in done.stderr + done.stdout, level
            assert "HTTP Request" not in done.stderr  # httpx's own INFO line is silenced
    assert_exactly_once(out, ids)
    assert not [path for path in out.rglob("*") if path.is_file() and PASSWORD.encode() in path.read_bytes()]


def test_every_log_handler_masks_what_any_logger_prints():
    """Any library's record, its arguments and its traceback, through the tools' logging."""
    code = ("import logging\nfrom alert_pipeline.masking import configure_logging\nconfigure_logging('DEBUG')\n"
            "logging.getLogger('some.library').warning('GET %s', 'https://alerts:SECRETPW@sr.example.org/x')\n"
            "logging.getLogger('httpx2').info('HTTP Request: GET http://a:SECRETPW@h/')\n"
            "try:\n    raise OSError('cannot reach http://a:SECRETPW@h/')\n"
            "except OSError:\n    logging.getLogger('other').exception('failed')\n")
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "SECRETPW" not in done.stderr
    assert "GET https://***@sr.example.org/x" in done.stderr and "cannot reach http://***@h/" in done.stderr
    assert "HTTP Request" not in done.stderr


# ------------------------------------------------------------------ 5: the history is input
def test_history_lines_that_are_not_run_records_are_skipped(tmp_path):
    values, ids = good_frames(2305, 2)
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), values)
    out = tmp_path / "out"
    history = out / HISTORY_FILE
    history.parent.mkdir(parents=True)
    history.write_text('1\n"text"\n[]\n{"started_at": 5}\n{"exit_code": true}\nnull\n')
    metrics = tmp_path / "run.prom"
    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames),
                           "--metrics-file", str(metrics)], env=offline_env(out), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {row["diaSourceId"] for row in read_rows(out)} == ids
    last = json.loads(history.read_text().splitlines()[-1])
    assert last["written"] == 2 and last["exit_code"] == 0
    assert "lsst_alert_consumer_last_run_alerts_written" in metrics.read_text()
    shown = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--history"],
                           env=offline_env(out), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.strip().splitlines()) == 2  # the header and the one real run
    assert f"runs recorded in {history}" in shown.stderr  # which file was read


# ------------------------------------------------------------------ 7: replay times
def test_replay_from_before_1970_replays_everything_and_overflowing_times_are_exit_2(kafka, tmp_path):
    values, ids = good_frames(2306, 3)
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, values)
    for start in ("1969-07-20T20:17:40Z", "0001-01-01T00:00:00Z"):
        out = tmp_path / start[:4]
        done = run_consumer(consumer_env(kafka.bootstrap_servers, topic, out), "--from-time", start)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "replayed from its earliest offset" in done.stderr
        assert_exactly_once(out, ids)
    for moment in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        done = run_consumer(consumer_env(kafka.bootstrap_servers, topic, tmp_path / "x"), "--to-time", moment)
        assert done.returncode == 2, done.stderr[-3000:]
        assert "outside the years 1 to 9999" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------ 8: configuration
@pytest.mark.parametrize(("toml", "env", "expected"), [
    ("", {"LSST_CONSUMER_OUTPUT_DIR": "out\x1b[31mred"}, "output_dir = 'out\\x1b[31mred': contains a control"),
    ("", {"LSST_CONSUMER_OUTPUT_DIR": "out\x07"}, "output_dir = 'out\\x07': contains a control"),
    ('output_dir = "a\\u0000b"\n', {}, "output_dir = 'a\\x00b': contains a control"),
    ('[kafka_config]\n"bootstrap.servers" = {a = 1}\n', {}, "'bootstrap.servers' must be text, a number or a "
                                                             "boolean, not a table"),
    ('[kafka_config]\n"bootstrap.servers" = ["h1:9092", "h2:9092"]\n', {}, "not a list"),
    ('topic = "alerts\\u001b"\n', {}, "topic = 'alerts\\x1b': contains a control"),
])
def test_hostile_settings_exit_2_naming_the_setting(tmp_path, toml, env, expected):
    config = tmp_path / "consumer.toml"
    config.write_text(toml)
    environment = {**offline_env(tmp_path / "out"), "LSST_CONSUMER_CONFIG": str(config), **env}
    if "LSST_CONSUMER_OUTPUT_DIR" not in env:
        environment.pop("LSST_CONSUMER_OUTPUT_DIR")
    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", "none.frames"],
                          env=environment, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr and "\x00" not in done.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 10: links planted in the output
@pytest.mark.parametrize("planted", ["csv", "history"])
def test_a_planted_symlink_is_never_written_through(tmp_path, planted):
    factory = AlertFactory("11.1", seed=2310)
    packets = [factory.alert(cutout_size=20) for _ in range(2)]
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), [factory.frame(p) for p in packets])
    out = tmp_path / "out"
    first = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames)],
                           env=offline_env(out), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    (day_csv,) = (out / "data").glob("*.csv")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = day_csv if planted == "csv" else out / HISTORY_FILE
    kept = target.read_bytes()
    target.unlink()
    target.symlink_to(victim)
    more = [factory.alert(cutout_size=20) for _ in range(2)]
    write_frames_file(str(frames), [factory.frame(p) for p in more])
    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames)],
                          env=offline_env(out), capture_output=True, text=True, timeout=120)
    assert victim.read_text() == "precious\n"
    assert "is a symbolic link" in done.stderr
    if planted == "csv":  # the day's file cannot be written: an output error, nothing committed
        assert done.returncode == 4, done.stderr
        target.unlink()
        target.write_bytes(kept)
        again = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames)],
                               env=offline_env(out), capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert_exactly_once(out, {str(p["diaSource"]["diaSourceId"]) for p in packets + more})
    else:  # the history cannot be recorded: a warning, the data written
        assert done.returncode == 0, done.stderr
        assert {row["diaSourceId"] for row in read_rows(out)} == {str(p["diaSource"]["diaSourceId"])
                                                                  for p in packets + more}


# ------------------------------------------------------------------ --max-runtime inside one batch
HANGING_CONSUMER = '''
import sys, time
sys.path.insert(0, {repo!r})
from lsst_alert_consumer import LSSTAlertConsumer, main

class HangingConsumer(LSSTAlertConsumer):
    def process_alert(self, alert):
        if alert["diaSource"]["band"] == "hang":
            time.sleep(3600)
        return super().process_alert(alert)

sys.exit(main(consumer_class=HangingConsumer))
'''


def test_max_runtime_holds_inside_one_batch_and_nothing_is_lost(tmp_path):
    factory = AlertFactory("11.1", seed=2311)
    packets = [factory.alert(cutout_size=20) for _ in range(3)]
    packets[1]["diaSource"]["band"] = "hang"
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), [factory.frame(p) for p in packets])
    script = tmp_path / "hanging.py"
    script.write_text(HANGING_CONSUMER.format(repo=str(REPO)))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(script), "--from-file", str(frames), "--max-runtime", "1"],
                          env=offline_env(out), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "past --max-runtime" in done.stderr
    assert not read_rows(out)  # the batch in hand was not made durable
    packets[1]["diaSource"]["band"] = "r"  # the science code is fixed; the same night again
    write_frames_file(str(frames), [factory.frame(p) for p in packets])
    again = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames)],
                           env=offline_env(out), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(out, {str(p["diaSource"]["diaSourceId"]) for p in packets})


def test_report_html_holds_no_nul_from_a_csv_cell(tmp_path):
    factory = AlertFactory("11.1", seed=2312)
    packet = factory.alert(cutout_size=20)
    packet["diaSource"]["band"] = "r\x00<b>"
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), [factory.frame(packet)])
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames)],
                          env=offline_env(out), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\x00" in next((out / "data").glob("*.csv")).read_text()  # the CSV keeps the value as sent
    report = subprocess.run([sys.executable, str(REPO / "lsst_alert_report.py"), "--output-dir", str(out)],
                            env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH}, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    (page,) = (out / "reports").glob("lsst_alerts_*[0-9].html")
    html = page.read_text()
    assert "\x00" not in html and "r&lt;b&gt;" in html
