"""The builder's small commands a newcomer and the wrapper lean on: ``paths`` (where the
storehouse keeps a thing), and the commands that must create nothing when the
storehouse given does not exist."""

from __future__ import annotations

import subprocess
import sys

from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_OK
from tests.conftest import REPO


def builder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_paths_names_the_layouts_files_and_creates_nothing(tmp_path):
    storehouse = tmp_path / "store with space"
    done = builder("paths", "--storehouse", str(storehouse), "transient-index", "site")
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.splitlines() == [str(storehouse / "transient" / "index.json"), str(storehouse / "site")]
    listed = dict(line.split("\t") for line in builder("paths", "--storehouse", str(storehouse)).stdout.splitlines())
    assert listed["grb-index"] == str(storehouse / "grb" / "index.json")  # every kind of the registry
    unknown = builder("paths", "--storehouse", str(storehouse), "roster.json")
    assert unknown.returncode == EXIT_CONFIG and "known: storehouse, site" in unknown.stderr
    assert not storehouse.exists()


def test_rebuild_index_of_a_storehouse_that_does_not_exist_creates_nothing(tmp_path):
    missing = tmp_path / "mistyped"
    done = builder("rebuild-index", "--storehouse", str(missing))
    assert done.returncode == EXIT_CONFIG and "no storehouse at" in done.stderr
    assert not missing.exists()


def test_tns_show_config_needs_no_file(tmp_path):
    shown = builder("tns", "--storehouse", str(tmp_path / "s"), "--show-config")
    assert shown.returncode == EXIT_OK and "[tns]" in shown.stdout, shown.stderr
    without = builder("tns", "--storehouse", str(tmp_path / "s"))
    assert without.returncode == EXIT_CONFIG and "no TNS file" in without.stderr
    assert not (tmp_path / "s").exists()
