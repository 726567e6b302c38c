"""``pip install .`` gives the package, its data and three working console scripts, and
no test or development code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from alert_pipeline.consumer.sources import write_frames_file
from alert_pipeline.exitcodes import BUILDER, CONSUMER, REPORT, help_text
from devtools.factory import AlertFactory
from tests.conftest import REPO


def _install(tmp_path: Path) -> Path:
    """Install a copy of the committed tree (the build writes into its source directory)
    into a target directory, with the project's own build backend and no dependencies
    (they are this virtual environment's)."""
    source = tmp_path / "source"
    for name in subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    target = tmp_path / "installed"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target


def test_pip_install_gives_console_scripts_data_and_no_test_code(tmp_path, pg_url):
    target = _install(tmp_path)
    top = {path.name for path in target.iterdir()}
    assert {"alert_pipeline", "lsst_alert_consumer.py", "lsst_alert_report.py", "transient_kind_builder.py"} <= top
    assert not top & {"devtools", "tests", "benchmarks", "scripts"}
    assert (target / "alert_pipeline" / "storehouse" / "fink" / "events.sql").is_file()
    assert (target / "alert_pipeline" / "exitcodes.sh").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}  # only the installed package, not the checkout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def script(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(target / "bin" / name), *args], env=env, cwd=elsewhere, capture_output=True,
                              text=True, timeout=120)

    for name, tool in (("lsst-alert-consumer", CONSUMER), ("lsst-alert-report", REPORT),
                       ("transient-kind-builder", BUILDER)):
        shown = script(name, "--help")
        assert shown.returncode == 0 and help_text(tool) in shown.stdout, shown.stderr
    probe = subprocess.run([sys.executable, "-c", "import devtools"], env=env, cwd=elsewhere, capture_output=True)
    assert probe.returncode != 0  # no test or demo support came with the package

    factory = AlertFactory("11.1", seed=90)
    frames = elsewhere / "night.frames"
    write_frames_file(str(frames), [factory.frame(factory.alert(cutout_size=30)) for _ in range(3)])
    consumed = script("lsst-alert-consumer", "--from-file", str(frames), "--output-dir", "out")
    assert consumed.returncode == 0 and "written=3" in consumed.stderr, consumed.stderr
    reported = script("lsst-alert-report", "--output-dir", "out")
    assert reported.returncode == 0 and list((elsewhere / "out" / "reports").glob("lsst_alerts_*.html"))
    fink = elsewhere / "fink.json"
    fink.write_text('[{"i:objectId": "ZTF26aaaaaaa", "i:candid": 1, "i:jd": 2461000.5, "i:ra": 10.0, '
                    '"i:dec": -5.0, "v:classification": "SN candidate"}]')
    table = f"packaged_{os.getpid()}"
    loaded = script("transient-kind-builder", "load-fink", "--dsn", pg_url, "--table", table, str(fink))
    assert loaded.returncode == 0 and "inserted=1" in loaded.stderr, loaded.stderr  # the packaged DDL made the table
