"""The third probe's consumer items (issue 33): ``--merge`` reads only regular files inside
a source (no link followed, no FIFO or device opened), a message larger than librdkafka
may receive stops the run loudly naming where, ``scripts/local_services.sh`` works from a
directory with a space in its name, and every file the README's "Try your own alerts"
names exists after the steps it lists."""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alert_pipeline.consumer.sources import write_frames_file
from devtools.factory import AlertFactory
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_hostile_input import offline_env, run_script
from tests.test_hostile_second_probe import run_limited

SECRET = b"SIMPLE  = T / not a cutout: a private key's place\n"


def _source(tmp_path: Path, name: str, count: int = 3) -> tuple[Path, list[dict[str, str]]]:
    """A consumer output directory of ``count`` alerts with cutouts, and its rows."""
    factory = AlertFactory("11.1", seed=len(name))
    frames = tmp_path / f"{name}.frames"
    write_frames_file(str(frames), [factory.frame(factory.alert(cutout_size=20)) for _ in range(count)])
    out = tmp_path / name
    env = offline_env(out, LSST_CONSUMER_TEST_START_TIME="2026-02-10T02:03:15Z")
    done = run_script(REPO / "lsst_alert_consumer.py", env, "--from-file", str(frames))
    assert done.returncode == 0, done.stderr
    (csv_path,) = (out / "data").glob("*.csv")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        return out, list(csv.DictReader(handle))


def _merge(sources: list[Path], destination: Path, limited: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SUBPROCESS_PYTHONPATH, "LSST_CONSUMER_OUTPUT_DIR": str(destination)}
    args = ("--merge", *map(str, sources))
    if limited:  # memory (RLIMIT_AS) and time bounded: a regression fails, it does not take the machine
        return run_limited(env, *args, timeout=120)
    return subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _merged_files(merged: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (merged / "cutouts").iterdir()}


def test_merge_does_not_copy_a_private_file_a_cutout_link_points_to(tmp_path):
    source, rows = _source(tmp_path, "east")
    secret = tmp_path / "id_rsa"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    linked = source / rows[0]["science_cutout_path"]
    linked.unlink()
    linked.symlink_to(secret)
    merged = tmp_path / "merged"
    done = _merge([source], merged)
    assert done.returncode == 0, done.stderr
    assert "read=3 added=3" in done.stderr and "skipped_files=1" in done.stderr
    assert f"merge: skipped {linked}: a symbolic link (not followed)" in done.stderr
    copied = _merged_files(merged)
    assert SECRET not in copied.values() and linked.name not in copied
    assert len(copied) == 3 * 4 - 1  # the other cutouts and light curves are all there


def test_merge_skips_links_to_dev_zero_in_cutouts_and_data_within_bounded_memory(tmp_path):
    source, rows = _source(tmp_path, "west")
    cutout = source / rows[1]["template_cutout_path"]
    cutout.unlink()
    cutout.symlink_to("/dev/zero")
    day = source / "data" / "lsst_alerts_20260211.csv"
    day.symlink_to("/dev/zero")
    done = _merge([source], tmp_path / "merged", limited=True)
    assert done.returncode == 0, done.stderr
    assert "read=3 added=3" in done.stderr and "skipped_files=2" in done.stderr
    assert f"merge: skipped {day}: a symbolic link" in done.stderr
    assert f"merge: skipped {cutout}: a symbolic link" in done.stderr
    assert "Traceback" not in done.stderr


def test_merge_skips_a_fifo_day_file_instead_of_waiting_for_a_writer(tmp_path):
    source, _ = _source(tmp_path, "north")
    fifo = source / "data" / "lsst_alerts_20260212.csv"
    os.mkfifo(fifo)
    done = _merge([source], tmp_path / "merged", limited=True)  # the old merge waited here forever
    assert done.returncode == 0, done.stderr
    assert f"merge: skipped {fifo}: a FIFO" in done.stderr and "skipped_files=1" in done.stderr
    assert "read=3 added=3" in done.stderr and "days=20260210" in done.stderr


def _produce_large(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 400_000_000})
    for value in values:
        producer.produce(topic, value)
        producer.flush(60)  # one producer batch each, as separate nightly publications would be


def test_a_message_over_librdkafkas_receive_limit_stops_the_run_naming_where(kafka, tmp_path):
    """A message just over 100 MB (librdkafka's receive.message.max.bytes) used to stall its
    partition in silence: exit 0 at idle-timeout, the good alert before it unread. Now the
    run stops with exit 3 naming the topic, partition and offset; with the limit raised as
    the message says, the good alert is written and the big message quarantined."""
    from tests.conftest import consumer_env, new_topic, run_consumer
    from tests.test_kafka_run import committed

    topic = new_topic(kafka.bootstrap_servers)
    factory = AlertFactory("11.1", seed=33)
    good = factory.alert(cutout_size=20)
    _produce_large(kafka.bootstrap_servers, topic, [factory.frame(good), b"\x00" * 100_000_001])
    out = tmp_path / "out"
    env = consumer_env(kafka.bootstrap_servers, topic, out, group="big-message", LSST_CONSUMER_IDLE_TIMEOUT="8")
    stuck = run_consumer(env)
    assert stuck.returncode == 3, stuck.stderr
    assert "Traceback" not in stuck.stderr
    assert "is larger than receive.message.max.bytes = 100000000" in stuck.stderr
    # Where it is stuck: after the good alert if it came in a response of its own, else at it.
    offset = len(_rows(out))
    assert f"{topic}[0] at offset {offset}" in stuck.stderr, stuck.stderr
    assert "Set kafka_config receive.message.max.bytes above" in stuck.stderr

    raised = run_consumer({**env, "LSST_CONSUMER_KAFKA_RECEIVE_MESSAGE_MAX_BYTES": "250000000"})
    assert raised.returncode == 0, raised.stderr
    assert "written=1" in raised.stderr and "quarantined=1" in raised.stderr
    assert committed(kafka.bootstrap_servers, "big-message", topic) == [2]
    assert [row["diaSourceId"] for row in _rows(out)] == [str(good["diaSource"]["diaSourceId"])]


def _rows(out: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((out / "data").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    return rows


#: What a README command names as a file it reads (what it writes, ``./my_alerts``, has none).
FILE_SUFFIXES = (".avro", ".frames", ".json", ".env", ".fits", ".csv", ".toml")


def _readme_local_services_steps() -> list[str]:
    text = (REPO / "docs" / "getting-started.md").read_text(encoding="utf-8")
    section = text[text.index("## Try your own alerts on local services"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def _files_named(step: str) -> list[str]:
    words = (word.rstrip(";") for word in shlex.split(step, comments=True))
    return [word for word in words if word.endswith(FILE_SUFFIXES) and not word.startswith("-")]


def _checkout_copy(where: Path) -> Path:
    """The checkout's files as git sees them, committed or not (no tests, no benchmarks),
    in ``where``, with the suite's virtual environment linked in as .venv (a copy would be a minute of set-up)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if name and not name.startswith(("tests/", "benchmarks/")) and (REPO / name).is_file():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, where / name)
    (where / ".venv").symlink_to(sys.prefix)  # the suite's own virtual environment, wherever it is
    return where


def test_the_readme_local_services_steps_name_only_files_that_exist():
    """The README's "Try your own alerts" block, run as a user runs it, from a checkout in a
    directory whose name has a space: before each step, every file it names must exist
    (made by the steps before it), and every step must succeed."""
    # Short, in /tmp: a long path puts PostgreSQL's socket elsewhere and would hide the space.
    holder = Path(tempfile.mkdtemp(prefix="my alerts "))
    try:
        _run_readme_steps(_checkout_copy(holder / "repo"))
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def _run_readme_steps(repo: Path) -> None:
    checks = []
    for number, step in enumerate(_readme_local_services_steps(), start=1):
        for name in _files_named(step):
            missing = shlex.quote(f"docs/getting-started.md step {number} names {name}, which does not exist")
            checks.append(f"[[ -e {shlex.quote(name)} ]] || {{ echo {missing} >&2; exit 99; }}")
        checks.append(step)
    script = "set -euo pipefail\ntrap 'scripts/local_services.sh stop >/dev/null 2>&1 || true' EXIT\n" + "\n".join(checks)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("LSST_CONSUMER_") and key not in (
               "KAFKA_BOOTSTRAP_SERVERS", "TEST_DATABASE_URL", "DATABASE_URL", "LOCAL_SERVICES_DIR", "PYTHONPATH")}
    done = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published 40 messages" in done.stdout, done.stdout + done.stderr
    assert re.search(r"written=\d+", done.stderr) and "inserted=" in done.stderr, done.stderr
    assert list((repo / "my_alerts" / "data").glob("lsst_alerts_*.csv"))
    assert not (repo / "local_services" / "services.env").exists()  # stopped


def test_local_services_start_from_a_checkout_whose_path_has_a_space():
    """``start`` used to fail there: the embedded PostgreSQL's socket option was split at the
    space. Now it starts, its PostgreSQL answers, and ``stop`` stops it."""
    import psycopg

    holder = Path(tempfile.mkdtemp(prefix="my alerts "))  # short: the socket goes in the data directory
    try:
        repo = _checkout_copy(holder / "repo")
        env = {key: value for key, value in os.environ.items()
               if key not in ("TEST_DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "LOCAL_SERVICES_DIR")}
        script = str(repo / "scripts" / "local_services.sh")
        started = subprocess.run([script, "start"], cwd=repo, env=env, capture_output=True, text=True, timeout=180)
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            settings = dict(line.split("=", 1) for line in (repo / "local_services" / "services.env").read_text()
                            .splitlines())
            with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as connection:
                assert connection.execute("SELECT 1").fetchone() == (1,)
            assert (repo / "local_services" / "pgdata" / "PG_VERSION").is_file()  # the data stays in the checkout
        finally:
            stopped = subprocess.run([script, "stop"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
    finally:
        shutil.rmtree(holder, ignore_errors=True)
