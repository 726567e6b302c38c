"""Operating against real services: a schema registry behind basic auth, configuration
errors that lose nothing, replay of a time window, the run history and metrics."""

from __future__ import annotations

import json
import signal
import struct
import time
from pathlib import Path

import certifi
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from devtools.factory import AlertFactory

from .conftest import consumer_env, new_topic, produce, run_consumer, start_consumer
from .registry_server import SchemaRegistryServer
from .test_decode_records import LSSTAlertConsumer, make_consumer, write_offline
from .test_kafka_run import all_rows, assert_exactly_once, committed

SECRET = "s3cr3t-Rubin-pw"
WRONG = "wr0ng-pw-typed-at-3am"
HISTORY_KEYS = {"started_at", "ended_at", "mode", "window", "exit_code", "stop_reason", "error", "consumed",
                "written", "duplicates_skipped", "quarantined", "quarantined_by_reason", "cutouts", "schemas",
                "partitions", "configuration", "versions", "decoder", "last_alert_written_at"}


def framed_alerts(count: int, seed: int) -> tuple[list[bytes], set[str]]:
    factory = AlertFactory("11.1", seed=seed)
    packets = [factory.alert(cutout_size=30, n_prv_sources=1, n_prv_forced=1) for _ in range(count)]
    return [factory.frame(p) for p in packets], {str(p["diaSource"]["diaSourceId"]) for p in packets}


def every_file_text(root: Path) -> str:
    return "".join(path.read_bytes().decode("latin-1") for path in root.rglob("*") if path.is_file())


def history(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "state" / "runs.jsonl").read_text().splitlines()]


def quarantined(output_dir: Path) -> list[Path]:
    return sorted((output_dir / "quarantine").glob("*")) if (output_dir / "quarantine").exists() else []


def registry_env(env: dict[str, str], url: str, password: str, tmp_path: Path) -> dict[str, str]:
    secret_file = tmp_path / f"registry-{password}.secret"
    secret_file.write_text(f"alerts:{password}\n")
    return {**env, "LSST_CONSUMER_SCHEMA_REGISTRY_URL": url,
            "LSST_CONSUMER_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE": str(secret_file),
            "LSST_CONSUMER_SCHEMA_REGISTRY_MAX_RETRIES": "0"}


# ----------------------------------------------------------------------------- registry
def test_registry_settings_from_environment_reach_the_client_masked(tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(Path(certifi.where()).read_bytes())
    env = consumer_env("localhost:9092", "t", tmp_path / "out", LSST_CONSUMER_SCHEMA_REGISTRY_URL="https://sr:8081",
                       LSST_CONSUMER_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=f"alerts:{SECRET}",
                       LSST_CONSUMER_SCHEMA_REGISTRY_SSL_CA_LOCATION=str(ca_file))
    shown = run_consumer(env, "--show-config")
    assert shown.returncode == 0, shown.stderr
    assert SECRET not in shown.stdout + shown.stderr
    assert '"schema.registry.basic.auth.user.info" = "***"' in shown.stdout
    assert f'"schema.registry.ssl.ca.location" = "{ca_file}"' in shown.stdout

    from alert_pipeline.consumer.config import build_parser, load_config
    environ = {key: value for key, value in env.items() if key.startswith("LSST_CONSUMER_")}
    config = load_config({}, build_parser("t", "", "").parse_args([]), environ)
    assert config.registry_config() == {"url": "https://sr:8081", "basic.auth.user.info": f"alerts:{SECRET}",
                                        "ssl.ca.location": str(ca_file), "timeout": 30.0}
    assert not any(key.startswith("schema.registry") for key in config.librdkafka_config())


@pytest.mark.parametrize(("extra", "message"), [
    ({"LSST_CONSUMER_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"alerts:{SECRET}"}, "without schema.registry.url"),
    ({"LSST_CONSUMER_SCHEMA_REGISTRY_URL": "https://sr", "LSST_CONSUMER_SCHEMA_REGISTRY_NO_SUCH": "1"},
     "Unrecognized properties: no.such"),
    ({"LSST_CONSUMER_SCHEMA_REGISTRY_URL": "https://sr", "LSST_CONSUMER_SCHEMA_REGISTRY_MAX_RETRIES": "many"},
     "schema.registry.max.retries = 'many': expected a number"),
    ({"LSST_CONSUMER_SCHEMA_REGISTRY_URL": f"https://u:{SECRET}@sr",
      "LSST_CONSUMER_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"alerts:{SECRET}"}, "userinfo credentials in the URL"),
    ({"LSST_CONSUMER_SCHEMA_REGISTRY_URL": "https://sr", "LSST_CONSUMER_SCHEMA_REGISTRY_SSL_CA_LOCATION": "/no/ca.pem"},
     "ssl.ca.location = '/no/ca.pem': cannot read that file"),
    ({"LSST_CONSUMER_SCHEMA_REGISTRY_URL": "https://sr",
      "LSST_CONSUMER_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE": "/no/secret"}, "cannot be read"),
])
def test_bad_registry_settings_are_configuration_errors(tmp_path, extra, message):
    done = run_consumer(consumer_env("localhost:9092", "t", tmp_path / "out", **extra), "--show-config")
    assert done.returncode == 2
    assert message in done.stderr and SECRET not in done.stderr + done.stdout


def test_registry_behind_basic_auth_right_wrong_and_missing_ids(kafka, tmp_path):
    values, ids = framed_alerts(12, seed=1700)
    factory = AlertFactory("11.1", seed=1701)
    lacking = b"\x00" + struct.pack(">I", 1100) + factory.serialize(factory.alert(cutouts=False))
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, [*values[:6], lacking, *values[6:]])
    out = tmp_path / "out"
    base = consumer_env(kafka.bootstrap_servers, topic, out, group="registry-auth", LSST_CONSUMER_BATCH_SIZE="5")

    with SchemaRegistryServer(user_info=f"alerts:{SECRET}", lacking=(1100,)) as registry:
        wrong = run_consumer(registry_env(base, registry.url, WRONG, tmp_path))
        assert wrong.returncode == 3, wrong.stderr
        assert f"schema registry at {registry.url} refused the credentials (HTTP 401)" in wrong.stderr
        assert all_rows(out) == [] and quarantined(out) == []
        assert committed(kafka.bootstrap_servers, "registry-auth", topic) == [-1001]  # nothing committed
        assert history(out)[-1]["exit_code"] == 3 and history(out)[-1]["written"] == 0

        right = run_consumer(registry_env(base, registry.url, SECRET, tmp_path), "--workers", "2")
        assert right.returncode == 0, right.stderr
        assert "written=12" in right.stderr and "quarantined=1" in right.stderr
        assert_exactly_once(out, ids)
        (sidecar,) = (out / "quarantine").glob("*.json")
        assert json.loads(sidecar.read_text())["reason"] == "unknown-schema-id"
        assert committed(kafka.bootstrap_servers, "registry-auth", topic) == [13]
        assert all(auth.startswith("Basic ") for _, auth in registry.requests)

    for text in (wrong.stdout, wrong.stderr, right.stdout, right.stderr, every_file_text(out)):
        assert SECRET not in text and WRONG not in text
    runs = history(out)
    assert runs[-1]["schemas"] == {"1100": 1, "1101": 12}
    assert runs[-1]["configuration"]["kafka_config"]["schema.registry.basic.auth.user.info"] == "***"


@pytest.mark.parametrize("failure", ["server-error", "unreachable"])
def test_registry_failures_stop_the_run_and_lose_nothing(kafka, tmp_path, failure):
    values, ids = framed_alerts(6, seed=1710 if failure == "unreachable" else 1711)
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, values)
    out = tmp_path / "out"
    group = f"registry-{failure}"
    base = consumer_env(kafka.bootstrap_servers, topic, out, group=group)
    with SchemaRegistryServer() as registry:
        url = registry.url
        registry.fail_with = 503
        if failure == "unreachable":
            registry.__exit__()
        failed = run_consumer(registry_env(base, url, SECRET, tmp_path))
        assert failed.returncode == 3, failed.stderr
        assert f"schema registry at {url}" in failed.stderr
        assert ("HTTP 503" if failure == "server-error" else "cannot be reached") in failed.stderr
        assert "next run reads it again" in failed.stderr
        assert all_rows(out) == [] and quarantined(out) == []
        assert committed(kafka.bootstrap_servers, group, topic) == [-1001]
    with SchemaRegistryServer() as healthy:
        again = run_consumer(registry_env(base, healthy.url, SECRET, tmp_path))
    assert again.returncode == 0, again.stderr
    assert_exactly_once(out, ids)


# ----------------------------------------------------------------------------- replay
def produce_at(bootstrap: str, topic: str, values: list[bytes], times_ms: list[int], partitions: list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value, timestamp, partition in zip(values, times_ms, partitions, strict=True):
        producer.produce(topic, value, partition=partition, timestamp=timestamp)
    assert producer.flush(30) == 0


def iso_ms(milliseconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(milliseconds / 1000)) + f".{milliseconds % 1000:03d}Z"


def test_replay_a_window_of_a_two_partition_topic(kafka, tmp_path):
    bootstrap = kafka.bootstrap_servers
    topic = new_topic(bootstrap, partitions=2)
    factory = AlertFactory("11.1", seed=1720)
    packets = [factory.alert(cutout_size=30) for _ in range(40)]
    t0 = (int(time.time()) - 7200) * 1000
    produce_at(bootstrap, topic, [factory.frame(p) for p in packets], [t0 + i * 1000 for i in range(40)],
               [i % 2 for i in range(40)])
    ids = [str(p["diaSource"]["diaSourceId"]) for p in packets]
    nightly = tmp_path / "nightly"
    group_env = consumer_env(bootstrap, topic, nightly, group="nightly")
    first = run_consumer(group_env)
    assert first.returncode == 0 and "written=40" in first.stderr, first.stderr
    before = committed(bootstrap, "nightly", topic, partitions=2)

    replayed = tmp_path / "replayed"
    window = ("--from-time", iso_ms(t0 + 10_000), "--to-time", iso_ms(t0 + 30_000))
    replay_env = consumer_env(bootstrap, topic, replayed, group="nightly")
    once = run_consumer(replay_env, *window)
    assert once.returncode == 0, once.stderr
    assert f"finished replay from={iso_ms(t0 + 10_000).replace('.000Z', 'Z')}" in once.stderr
    assert "written=20" in once.stderr and "stop=window-done" in once.stderr
    assert "starts before the ledger window" not in once.stderr  # two hours ago: inside the 7 days
    assert_exactly_once(replayed, set(ids[10:30]))
    twice = run_consumer(replay_env, *window)
    assert twice.returncode == 0 and "written=0 duplicates_skipped=20" in twice.stderr, twice.stderr
    assert len(all_rows(replayed)) == 20
    assert committed(bootstrap, "nightly", topic, partitions=2) == before  # the group was never moved

    runs = history(replayed)
    assert [run["mode"] for run in runs] == ["replay", "replay"]
    assert runs[0]["window"].startswith("from=") and set(runs[0]["partitions"]) == {f"{topic}[0]", f"{topic}[1]"}
    assert sum(p["end"] - p["start"] for p in runs[0]["partitions"].values()) == 20

    open_start = run_consumer(consumer_env(bootstrap, topic, tmp_path / "head", group="nightly"),
                              "--to-time", iso_ms(t0 + 4_000))
    assert open_start.returncode == 0, open_start.stderr
    # an open start reaches back past the ledger window: said before the run
    assert "WARNING the replay starts before the ledger window (ledger_window_days = 7" in open_start.stderr
    assert {row["diaSourceId"] for row in all_rows(tmp_path / "head")} == set(ids[:4])

    later = AlertFactory("11.1", seed=1721)
    extra = [later.alert(cutout_size=30) for _ in range(3)]
    produce(bootstrap, topic, [later.frame(p) for p in extra])
    next_night = run_consumer(group_env)
    assert next_night.returncode == 0 and "written=3 duplicates_skipped=0" in next_night.stderr, next_night.stderr


def test_replay_arguments_are_checked(tmp_path):
    env = consumer_env("localhost:9092", "t", tmp_path / "out")
    for args, message in ((["--from-time", "yesterday"], "not an ISO 8601 time"),
                          (["--from-time", "2026-11-21", "--to-time", "2026-11-20"], "is not before --to-time"),
                          (["--from-time", "2026-11-20", "--from-file", "x.avro"], "cannot be used with --from-file")):
        done = run_consumer(env, *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr


# ----------------------------------------------------------------------------- history
def prometheus(path: Path) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(path.read_text())}


def test_history_and_metrics_after_a_normal_a_failed_and_a_stopped_run(kafka, tmp_path):
    values, ids = framed_alerts(300, seed=1730)
    topic = new_topic(kafka.bootstrap_servers)
    produce(kafka.bootstrap_servers, topic, values[:20])
    out, metrics = tmp_path / "out", tmp_path / "lsst.prom"
    env = consumer_env(kafka.bootstrap_servers, topic, out, group="history",
                       LSST_CONSUMER_METRICS_FILE=str(metrics))

    normal = run_consumer(env)
    assert normal.returncode == 0, normal.stderr
    (run,) = history(out)
    assert HISTORY_KEYS <= set(run) and run["mode"] == "group" and run["exit_code"] == 0
    assert (run["consumed"], run["written"], run["cutouts"], run["schemas"]) == (20, 20, 60, {"1101": 20})
    assert run["partitions"] == {f"{topic}[0]": {"start": 0, "end": 20, "lag": 0}}
    assert run["stop_reason"] == "caught-up" and run["versions"]["fastavro"] and run["decoder"] == "cavro"
    families = prometheus(metrics)
    assert families["lsst_alert_consumer_last_run_alerts_written"][0].value == 20
    assert families["lsst_alert_consumer_last_run_exit_code"][0].value == 0
    assert families["lsst_alert_consumer_partition_lag"][0].labels["topic"] == topic
    written_at = families["lsst_alert_consumer_last_alert_written_timestamp_seconds"][0].value

    dead = run_consumer({**env, "LSST_CONSUMER_BOOTSTRAP_SERVERS": "127.0.0.1:9",
                         "LSST_CONSUMER_CONNECT_TIMEOUT": "2"})
    assert dead.returncode == 3
    failed = history(out)[-1]
    assert failed["exit_code"] == 3 and failed["stop_reason"] == "error" and "127.0.0.1:9" in failed["error"]
    families = prometheus(metrics)
    assert families["lsst_alert_consumer_last_run_exit_code"][0].value == 3
    assert families["lsst_alert_consumer_last_alert_written_timestamp_seconds"][0].value == written_at

    produce(kafka.bootstrap_servers, topic, values[20:])
    process = start_consumer({**env, "LSST_CONSUMER_BATCH_SIZE": "5", "LSST_CONSUMER_STOP_AT_END": "false"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(history(out)) == 2 and len(all_rows(out)) <= 20:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    stopped = history(out)[-1]
    assert stopped["stop_reason"] == "SIGTERM" and 0 < stopped["written"] < 280
    assert stopped["written"] == len(all_rows(out)) - 20
    assert stopped["partitions"][f"{topic}[0]"]["end"] == 20 + stopped["written"]
    assert prometheus(metrics)["lsst_alert_consumer_last_run_alerts_written"][0].value == stopped["written"]
    assert [path.name for path in tmp_path.glob("lsst.prom*")] == ["lsst.prom"]  # no temp file left

    table = run_consumer(env, "--history", "2")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["started", "(UTC)", "instance", "mode"] and len(lines) == 3
    assert " 3 " in lines[1] and "SIGTERM" in lines[2]
    assert_exactly_once(out, {row["diaSourceId"] for row in all_rows(out)})


def test_a_torn_history_line_is_skipped(tmp_path):
    import datetime as dt

    from alert_pipeline.consumer.history import append_run, last_runs, run_record
    from alert_pipeline.consumer.summary import RunSummary
    now = dt.datetime.now(dt.UTC)
    base = run_record(started=now, ended=now, summary=RunSummary(), exit_code=0, configuration={}, decoder="cavro")
    append_run(str(tmp_path), {**base, "n": 1})
    with open(tmp_path / "state" / "runs.jsonl", "a") as handle:
        handle.write('{"n": 2, "tor')
    append_run(str(tmp_path), {**base, "n": 3})
    assert [record["n"] for record in last_runs(str(tmp_path), 5)] == [1, 3]
    for n in range(4, 404):  # ~400 kB: more than the first block read from the end
        append_run(str(tmp_path), {**base, "n": n, "padding": "x" * 1000})
    assert [record["n"] for record in last_runs(str(tmp_path), 150)] == list(range(254, 404))
    assert [record["n"] for record in last_runs(str(tmp_path), 1000)] == [1, 3, *range(4, 404)]


class _OutOfMemoryConsumer(LSSTAlertConsumer):
    def process_alert(self, alert):
        raise MemoryError


def test_environment_failures_inside_process_alert_stop_the_batch_instead_of_quarantining(tmp_path):
    factory = AlertFactory("11.1", seed=1740)
    consumer = make_consumer(tmp_path, _OutOfMemoryConsumer)
    with pytest.raises(MemoryError):
        write_offline(consumer, [factory.frame(factory.alert(cutout_size=30))])
    assert quarantined(tmp_path / "out") == [] and all_rows(tmp_path / "out") == []
    assert list((tmp_path / "out" / "cutouts").iterdir()) == []
