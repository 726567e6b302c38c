"""What a new user meets following the README in order, and what an operator is told (issue 33,
third probe, newcomer and operations items): a report with no data says so, the demo names the
wrapper's real steps and counts its files as they are, one source for the switch names, the
packaged shell files, the git-ignored outputs of the README's commands, the README's pandas
recipe on all-empty text columns, and a messenger drop directory of links or of nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd

from alert_pipeline import exitcodes
from alert_pipeline.consumer.sources import write_frames_file
from devtools.factory import AlertFactory

from .conftest import REPO, consumer_env, new_topic, produce
from .test_hostile_input import offline_env, run_script
from .test_messengers import ICECAT
from .test_wrapper import WRAPPER, run_wrapper, wrapper_env


def _report(output: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "lsst_alert_report.py"), "--output-dir", str(output)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


# --- 1. no data is not "up to date" -------------------------------------------------------------

def test_a_report_of_an_output_without_any_day_csv_says_there_is_no_data(tmp_path):
    """In 765581e: "every day's report is up to date in …/reports", a directory that did not exist."""
    (tmp_path / "data").mkdir()
    done = _report(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "up to date" not in done.stderr
    assert f"no data: no day CSV (and no quarantined message) in {tmp_path / 'data'}" in done.stderr
    assert "WARNING" in done.stderr and not (tmp_path / "reports").exists()


def test_the_wrapper_after_the_readme_manual_run_reads_nothing_new_and_its_report_says_no_data(kafka, tmp_path):
    """The README in order: the manual run reads the night into ./my_alerts in the consumer
    group; the wrapper, in the same group, writes to ./lsst_alerts and finds nothing new."""
    bootstrap, topic, group = kafka.bootstrap_servers, new_topic(kafka.bootstrap_servers), "readme-group"
    factory = AlertFactory("11.1", seed=331)
    produce(bootstrap, topic, [factory.frame(factory.alert(cutout_size=30)) for _ in range(3)])
    manual = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--idle-timeout", "10"],
                            env=consumer_env(bootstrap, topic, tmp_path / "my_alerts", group=group),
                            capture_output=True, text=True, timeout=180)
    assert manual.returncode == 0 and "written=3" in manual.stderr, manual.stderr
    done = run_wrapper(wrapper_env(consumer_env(bootstrap, topic, tmp_path / "lsst_alerts", group=group)))
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "written=0" in log and "step report: finished" in log
    assert f"no data: no day CSV (and no quarantined message) in {tmp_path / 'lsst_alerts' / 'data'}" in log
    assert "up to date" not in log


# --- 2. the demo's step list and summary ---------------------------------------------------------

def test_the_demo_names_the_declared_steps_in_their_order():
    from alert_pipeline import steps
    from devtools import demo

    assert demo.step_order().split(" → ") == [step.name for step in steps.STEPS]
    source = (REPO / "devtools" / "demo.py").read_text()
    assert "kind builder →" not in source  # the hand-written list of 765581e


def test_the_demo_summary_counts_cutouts_and_light_curves_apart(tmp_path):
    """cutouts/ holds both: 765581e said "3 cutouts" of a directory of four FITS files."""
    from devtools import demo

    alerts = tmp_path / "lsst_alerts"
    (alerts / "data").mkdir(parents=True)
    (alerts / "data" / "lsst_alerts_20261120.csv").write_text("alertId\n1\n2\n")
    (alerts / "cutouts").mkdir()
    for source_id in (1, 2):
        for kind in ("science", "template", "difference", "lightcurve"):
            (alerts / "cutouts" / f"{source_id}_{kind}_20261120_020315.fits").write_bytes(b"")
    (alerts / "quarantine").mkdir()
    (alerts / "quarantine" / "t_0_1.json").write_text("{}")
    for kind, roster in (("transient", {"objects": 2, "by_subtype": {"sn": 2}}),
                         ("minor_body", {"objects": 1, "by_subtype": {"mpc": 1}})):
        (tmp_path / "event_storehouse" / kind).mkdir(parents=True)
        (tmp_path / "event_storehouse" / kind / "roster.json").write_text(json.dumps(roster))
    assert demo.summary(tmp_path) == ("Summary: 2 CSV rows in lsst_alerts_20261120.csv; 6 cutouts + 2 light curves; "
                                      "1 quarantined; 2 transient slots {'sn': 2}; 1 minor-body slots {'mpc': 1}")


# --- 3. the switch names have one source ---------------------------------------------------------

def test_the_exit_code_table_names_no_switch_and_the_help_names_every_one():
    """Code 64 said "REPORT, CROSSMATCH" by hand in 765581e: a new switch would be missing."""
    from alert_pipeline import steps
    table = exitcodes.markdown_table() + exitcodes.shell()
    for switch in steps.switches():
        assert not re.search(rf"\b{switch}\b", table), switch
    (usage,) = [code for code in exitcodes.CODES if code.code == 64]
    assert "a step's switch: see --help" in usage.meaning
    shown = subprocess.run([str(WRAPPER), "--help"], capture_output=True, text=True, timeout=30).stdout
    assert f"Switches {', '.join(steps.switches())}:" in " ".join(shown.split())


# --- 4. both generated shell files are package data ----------------------------------------------

def test_every_shell_file_the_wrapper_sources_is_package_data():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    generated = sorted(path.name for path in (REPO / "alert_pipeline").glob("*.sh"))
    assert generated == ["exitcodes.sh", "steps.sh"]
    assert sorted(declared["alert_pipeline"]) == generated
    sourced = re.findall(r'source "\$SCRIPT_DIR/alert_pipeline/([a-z]+\.sh)"', WRAPPER.read_text())
    assert sorted(sourced) == generated


# --- 5. what the README's commands create is git-ignored -----------------------------------------

def _readme_command_outputs() -> set[str]:
    """The relative paths the README's shell commands write into the checkout: consumer and
    report output directories, storehouses, downloads (``-o``)."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    blocks = [block for page in pages for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)]
    made = set()
    for block in blocks:
        for option, word in re.findall(r"(--output-dir|--storehouse|-o)[ =](\S+)", block):
            path = word.strip("\"'")  # a quoted variable is still a variable
            if not path.startswith(("/", "$", "~")):
                made.add(path.removeprefix("./").rstrip("/") + ("" if option == "-o" else "/"))
    return made


def test_the_outputs_of_the_readmes_commands_are_git_ignored():
    made = _readme_command_outputs()
    assert {"my_alerts/", "data/event_storehouse/", "sn.json"} <= made, made
    done = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *sorted(made)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    not_ignored = [line.split("\t")[1] for line in done.stdout.splitlines() if line.startswith("::")]
    assert not_ignored == [], f"add to .gitignore: {not_ignored}"


# --- 6. the README's pandas recipe on all-empty text columns -------------------------------------

def _readme_csv_recipe() -> str:
    text = (REPO / "docs" / "consumer.md").read_text()
    section = text[text.index("## Reading the CSV in pandas"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_pandas_recipe_reads_all_empty_text_columns_as_strings(tmp_path):
    """A night without Solar-System alerts, cutouts or light curves: every designation and
    path cell is empty, which pandas reads as float64 NaN unless told the column is text."""
    factory = AlertFactory("11.1", seed=332)
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), [factory.frame(factory.alert(cutouts=False)) for _ in range(3)])
    out = tmp_path / "out"
    done = run_script(REPO / "lsst_alert_consumer.py", offline_env(out), "--no-light-curves", "--from-file",
                      str(frames))
    assert done.returncode == 0, done.stderr
    (csv_path,) = (out / "data").glob("*.csv")
    empty = ("designation", "science_cutout_path", "template_cutout_path", "difference_cutout_path",
             "lightcurve_path")
    naive = pd.read_csv(csv_path)
    assert all(naive[column].dtype == "float64" for column in empty)  # the trap
    namespace: dict = {}
    recipe = _readme_csv_recipe().replace("lsst_alerts/data/lsst_alerts_20261120.csv", str(csv_path))
    exec(compile(recipe, "README recipe", "exec"), namespace)  # noqa: S102 - the documented code, as a user runs it
    alerts = namespace["alerts"]
    for column in (*empty, "filterName"):
        assert alerts[column].dtype == "string", column
    assert alerts["designation"].isna().all() and len(alerts) == 3
    assert alerts["designation"].fillna("").str.len().eq(0).all()  # string methods work on it


# --- 7. MESSENGER_FILES: links to files count; a directory of nothing is loud --------------------

def _messenger_env(tmp_path: Path, dropped: Path, **extra: str) -> dict[str, str]:
    """Unreachable broker (the consumer fails fast with 3): only the messenger step matters."""
    return wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"), LSST_CONSUMER_CONNECT_TIMEOUT="2",
                       REPORT="0", MESSENGER_FILES=str(dropped), EVENT_STOREHOUSE=str(tmp_path / "store"), **extra)


def test_a_drop_directory_of_links_to_files_is_loaded(tmp_path):
    """In 765581e the step was "skipped (MESSENGER_FILES is not set or holds no file)"."""
    downloads, dropped = tmp_path / "downloads", tmp_path / "dropped"
    downloads.mkdir()
    dropped.mkdir()
    shutil.copy(ICECAT, downloads / "icecat.csv")
    (dropped / "icecat.csv").symlink_to(downloads / "icecat.csv")
    done = run_wrapper(_messenger_env(tmp_path, dropped))
    assert "step messengers-files: finished" in done.stdout, done.stdout + done.stderr
    assert json.loads((tmp_path / "store" / "neutrino" / "IC191001A.json").read_text())["ra_deg"] == 313.99


def test_a_drop_directory_holding_no_file_fails_the_step_with_exit_9(kafka, tmp_path):
    """Only a dot file, a dangling link, a link to a FIFO and a sub-directory: nothing to load,
    said loudly, never a silent skip; the FIFO is never opened (no hang)."""
    from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED
    dropped = tmp_path / "dropped"
    dropped.mkdir()
    (dropped / ".partial.csv").write_text("a copy in progress")
    (dropped / "gone.csv").symlink_to(tmp_path / "deleted.csv")
    os.mkfifo(tmp_path / "pipe")
    (dropped / "pipe.csv").symlink_to(tmp_path / "pipe")
    (dropped / "old").mkdir()
    bootstrap = kafka.bootstrap_servers
    env = wrapper_env(consumer_env(bootstrap, new_topic(bootstrap), tmp_path / "out"), REPORT="0",
                      MESSENGER_FILES=str(dropped), EVENT_STOREHOUSE=str(tmp_path / "store"))
    done = run_wrapper(env, timeout=120)
    log = done.stdout + done.stderr
    assert done.returncode == EXIT_INPUT_UNUSED, log
    assert (f"step messengers-files: failed with exit code {EXIT_INPUT_UNUSED} (EXIT_INPUT_UNUSED: some input was "
            f"not used") in log
    assert f"MESSENGER_FILES '{dropped}' holds no file" in log and "messengers-files: skipped" not in log
    assert "step consumer: finished" in log and "step retention: finished" in log  # the others ran
