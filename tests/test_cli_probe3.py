"""The command lines, third probe (issue 33): a file of which nothing could be used ends
load-messengers with its own exit code, an unknown sub-command is refused, and usage lines
name the program as the user typed it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_INPUT_UNUSED, EXIT_OK
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_messengers import ICECAT, load

BUILDER = REPO / "transient_kind_builder.py"


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=(env or os.environ) | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def test_a_file_nothing_could_be_loaded_of_is_named_and_exit_9_after_the_rest_is_written(tmp_path):
    store = tmp_path / "store"
    unusable = tmp_path / "observing-log.txt"
    unusable.write_text("2026-11-20 dome closed all night\n")
    done = load(store, ICECAT, unusable)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert [entry["file"] for entry in summary["unused_files"]] == [str(unusable)]
    assert summary["unused_files"][0]["reason"]
    (named,) = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert str(unusable) in named and "not used" in named
    # the rest was loaded and written: IceCat's IC191001A (line 242 of the file, by hand)
    assert json.loads((store / "neutrino" / "IC191001A.json").read_text())["ra_deg"] == 313.99
    assert json.loads((store / "neutrino" / "roster.json").read_text())["objects"] > 0


def test_item_level_skips_in_a_file_that_loaded_stay_exit_0(tmp_path):
    lines = ICECAT.read_text().splitlines()
    header, first = lines[0], lines[1]
    damaged = tmp_path / "icecat-two-rows.csv"
    # the file's first row, then that row with its RA (column 7) replaced by a word
    cells = first.split(",")
    cells[header.split(",").index("RA")] = "north"
    damaged.write_text("\n".join([header, first, ",".join([cells[0] + "X", *cells[1:]])]) + "\n")
    done = load(tmp_path / "store", damaged)
    assert done.returncode == EXIT_OK, done.stderr
    summary = json.loads(done.stdout)
    assert summary["unused_files"] == [] and sum(summary["files"]["skipped"].values()) == 1
    assert (tmp_path / "store" / "neutrino" / f"{first.split(',')[0]}.json").exists()


def test_an_unknown_sub_command_is_refused_not_run_as_build(tmp_path):
    done = run(BUILDER, "load-galaxie", "--help")
    assert done.returncode == EXIT_CONFIG
    assert "'load-galaxie' is not a command" in done.stderr and "load-messengers" in done.stderr
    assert "usage:" not in done.stdout  # not build's help
    # build stays the default when the first argument is an option, as documented
    default = run(BUILDER, "--storehouse", tmp_path / "store", env={k: v for k, v in os.environ.items()
                                                                    if k != "DATABASE_URL"})
    assert default.returncode == EXIT_CONFIG and "no database" in default.stderr


def _console_script(directory: Path, name: str, module: str) -> Path:
    """What pip writes for a [project.scripts] entry: a file named as the command."""
    script = directory / name
    script.write_text(f"import sys\nfrom {module} import main\nsys.exit(main())\n")
    return script


def test_usage_lines_name_the_program_as_typed(tmp_path):
    builder = _console_script(tmp_path, "transient-kind-builder", "transient_kind_builder")
    assert run(builder, "--help").stdout.startswith("usage: transient-kind-builder ")
    assert run(builder, "load-messengers", "--help").stdout.startswith("usage: transient-kind-builder load-messengers")
    consumer = _console_script(tmp_path, "lsst-alert-consumer", "lsst_alert_consumer")
    assert run(consumer, "--help").stdout.startswith("usage: lsst-alert-consumer ")
    assert run(REPO / "lsst_alert_consumer.py", "--help").stdout.startswith("usage: lsst_alert_consumer.py ")
