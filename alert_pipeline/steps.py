"""The cron wrapper's steps, declared once, in their order.

``run_lsst_consumer.sh`` keeps what only bash does well (the lock, the virtualenv, the
logging, the checks of its own variables); which steps it runs, in which order, when each
runs and with which arguments are declared here in ``STEPS``. From that one declaration
come the wrapper's step runner and switches (``steps.sh``, generated: ``python -m
alert_pipeline.steps --shell``), the ``Steps:`` block of its ``--help`` (in ``steps.sh``
too) and the README's table (``--markdown``); a test checks that the generated copies
match, as for the exit codes (``exitcodes.py``).

Each step is logged by the wrapper as ``step NAME: starting``, then ``finished``,
``failed with exit code N (NAME: meaning)`` or ``skipped (reason)``; a failed step never
stops the later ones, and the run's status is the first failure's code.
"""

from __future__ import annotations

import shlex
import sys
import textwrap
from dataclasses import dataclass

from alert_pipeline.exitcodes import CODES, EXIT_INPUT_UNUSED

#: The wrapper's code for a bad variable, a switch other than 0 or 1 among them.
EXIT_USAGE = next(code.code for code in CODES if code.name == "EXIT_USAGE")

#: How the wrapper names the storehouse (``EVENT_STOREHOUSE``, or ./data/event_storehouse).
_STOREHOUSE_SHELL, _STOREHOUSE_SHOWN = '"$storehouse"', "$EVENT_STOREHOUSE"


@dataclass(frozen=True)
class Word:
    """One word of a step's command: as the wrapper writes it (``shell``, quoted, may
    expand a bash array) and as the help and the README show it (``shown``)."""

    shell: str
    shown: str


PYTHON = Word('"$PYTHON"', "python")
STOREHOUSE = (Word("--storehouse", "--storehouse"), Word(_STOREHOUSE_SHELL, _STOREHOUSE_SHOWN))
#: The storehouse's site: written by the pages step, linked by the report (one path for both).
#: The storehouse's site, as the builder names it (the wrapper asks instead of joining).
SITE = Word(f'"$("$PYTHON" transient_kind_builder.py paths --storehouse {_STOREHOUSE_SHELL} site)"',
            "\"$(python transient_kind_builder.py paths --storehouse $EVENT_STOREHOUSE site)\"")


def _words(*words: str | Word | tuple[Word, ...]) -> tuple[Word, ...]:
    """A command from literal words (a plain string is shown and written as it is) and
    ``Word``s."""
    flat: list[Word] = []
    for word in words:
        if isinstance(word, tuple):
            flat.extend(word)
        else:
            flat.append(word if isinstance(word, Word) else Word(word, word))
    return tuple(flat)


@dataclass(frozen=True)
class Refusal:
    """An input given but unusable: the step is logged as failed with ``EXIT_INPUT_UNUSED``
    without running, so that a mistyped source (or one with nothing in it) is seen in the
    exit status, not only in the log."""

    when: str  # bash test
    message: str  # the end of the log line; may expand bash variables


@dataclass(frozen=True)
class Step:
    """One step of the wrapper.

    ``condition`` is a bash test evaluated when the step is reached (so that a step
    may depend on what an earlier one wrote), after ``prepare`` (a wrapper function
    that fills the bash variables the command uses) and ``refusals`` (tried in order, the
    first that holds fails the step). ``switch`` names a variable the operator sets to 0
    to skip the step (default 1; the wrapper refuses any other value with EXIT_USAGE
    before a step runs)."""

    name: str
    description: str
    command: tuple[Word, ...]
    runs_when: str = "always"
    condition: str = ""
    skipped_because: str = ""
    switch: str = ""
    prepare: str = ""
    refusals: tuple[Refusal, ...] = ()


STEPS: tuple[Step, ...] = (
    Step("consumer", "the LSST alert consumer: Kafka -> day CSV + FITS cutouts",
         _words(PYTHON, "lsst_alert_consumer.py")),
    # The dropped files, then GCN (a notice read later revises a file's row), in two steps:
    # a bad file never keeps the notices out, nor the reverse.
    Step("messengers-files", "load the dropped messenger files (sky maps, IceCube and cosmic-ray lists, GCN notices, "
         "IGWN alerts): the regular files directly in MESSENGER_FILES and the links to regular files, "
         "no dot files",
         _words(PYTHON, "transient_kind_builder.py", "load-messengers", STOREHOUSE,
                Word('"${messenger_files[@]}"', "FILE...")),
         runs_when=f"MESSENGER_FILES is set (not a directory, or holding no file: exit {EXIT_INPUT_UNUSED})",
         prepare="list_messenger_files", condition="[[ ${#messenger_files[@]} -gt 0 ]]",
         skipped_because="MESSENGER_FILES is not set",
         refusals=(Refusal('[[ -n "${MESSENGER_FILES:-}" && ! -d "$MESSENGER_FILES" ]]',
                           "MESSENGER_FILES '$MESSENGER_FILES' is not a directory; nothing of it was loaded"),
                   Refusal('[[ -n "${MESSENGER_FILES:-}" && ${#messenger_files[@]} -eq 0 ]]',
                           "MESSENGER_FILES '$MESSENGER_FILES' holds no file (a regular file or a link to one, "
                           "not a dot file); nothing was loaded"))),
    Step("messengers-gcn", "load new GW, neutrino, gamma-ray-burst and cosmic-ray notices from GCN Kafka",
         _words(PYTHON, "transient_kind_builder.py", "load-messengers", STOREHOUSE, "--gcn"),
         runs_when="GCN_CLIENT_ID, GCN_CLIENT_ID_FILE or GCN_KAFKA_BOOTSTRAP_SERVERS is set",
         condition='[[ -n "${GCN_CLIENT_ID:-}${GCN_CLIENT_ID_FILE:-}${GCN_KAFKA_BOOTSTRAP_SERVERS:-}" ]]',
         skipped_because="none of GCN_CLIENT_ID, GCN_CLIENT_ID_FILE, GCN_KAFKA_BOOTSTRAP_SERVERS is set"),
    Step("transient-builder", "the kind builder: transient and minor_body slots from the Fink table; a full "
         "build on FULL_BUILD_WEEKDAY, else only what the new rows touch",
         _words(PYTHON, "transient_kind_builder.py", "build",
                Word('"${build_args[@]}"', "[--full] [--table TRANSIENT_TABLE] [--source TRANSIENT_SOURCE]"),
                STOREHOUSE),
         runs_when="DATABASE_URL is set", prepare="set_build_args", condition='[[ -n "${DATABASE_URL:-}" ]]',
         skipped_because="DATABASE_URL is not set"),
    Step("tns", "Transient Name Server classes into the transient slots (a file, or the files of a "
         "directory not applied yet)",
         _words(PYTHON, "transient_kind_builder.py", "tns", STOREHOUSE, Word('"$TNS_FILE"', "$TNS_FILE")),
         runs_when="TNS_FILE is set", condition='[[ -n "${TNS_FILE:-}" ]]', skipped_because="TNS_FILE is not set"),
    Step("crossmatch", "match the transients with the gw, neutrino, grb and uhecr events",
         _words(PYTHON, "transient_kind_builder.py", "crossmatch", STOREHOUSE),
         runs_when="the storehouse has transient slots (an index)", switch="CROSSMATCH",
         condition=f'[[ -f "$("$PYTHON" transient_kind_builder.py paths --storehouse {_STOREHOUSE_SHELL} '
                   'transient-index)" ]]',
         skipped_because="no transient slots in $storehouse"),
    Step("hosts", "GW host candidates in each 90% credible volume and each transient's host galaxy, from the "
         "galaxy catalogue (load-galaxies)",
         _words(PYTHON, "transient_kind_builder.py", "hosts", STOREHOUSE),
         runs_when="the storehouse has a galaxy catalogue (catalogues/)",
         condition=f'[[ -d "$("$PYTHON" transient_kind_builder.py paths --storehouse {_STOREHOUSE_SHELL} '
                   'catalogues)" ]]',
         skipped_because="no galaxy catalogue in $storehouse"),
    # Last of the storehouse's steps: the pages show what they all wrote.
    Step("pages", "the storehouse's static site: a page per slot (light curves, sky maps, candidates) and an "
         "index; only what changed is rewritten",
         _words(PYTHON, "transient_kind_builder.py", "pages", STOREHOUSE),
         runs_when="the storehouse exists", switch="PAGES", condition=f"[[ -d {_STOREHOUSE_SHELL} ]]",
         skipped_because="no storehouse at $storehouse"),
    Step("retention", "delete the CSV, Parquet, FITS, quarantine and report files older than RETENTION_DAYS",
         _words(Word("retention", "python lsst_alert_consumer.py --retention [--retention-days RETENTION_DAYS]"))),
    # After retention, so that a day whose CSV retention just removed gets no fresh report.
    Step("report", "the nightly HTML report (lsst_alert_report.py); it links the storehouse's site when that exists",
         _words(PYTHON, "lsst_alert_report.py", "--output-dir", Word('"$output_dir"', "OUTPUT_DIR"), "--site", SITE),
         switch="REPORT"),
)


def help_text() -> str:
    """The ``Steps:`` block of the wrapper's ``--help``."""
    lines = ["Steps, in this order (each logged: starting, then finished, failed with its exit code, or",
             "skipped with the reason; a failed step never stops the later ones):"]
    for number, step in enumerate(STEPS, 1):
        lines.append(textwrap.fill(step.description, 100, initial_indent=f"  {number:>2} {step.name:<18} ",
                                   subsequent_indent=" " * 24))
        when = f"runs: {step.runs_when}" + (f"; {step.switch}=0 skips it" if step.switch else "")
        lines.append(textwrap.fill(when, 100, initial_indent=" " * 24, subsequent_indent=" " * 30))
    lines.append(textwrap.fill(f"Switches {', '.join(switches())}: 1 (default) runs the step, 0 skips it; any other "
                               f"value is refused before a step runs (exit {EXIT_USAGE}).", 100, initial_indent="  ",
                               subsequent_indent="  "))
    return "\n".join(lines)


def markdown_table() -> str:
    """README's table: every step in its order, what it does, when it runs, its command."""
    rows = ["| # | Step | What it does | Runs when | Command |", "|---|------|--------------|-----------|---------|"]
    for number, step in enumerate(STEPS, 1):
        when = step.runs_when + (f"; `{step.switch}=0` skips it" if step.switch else "")
        command = " ".join(word.shown for word in step.command)
        rows.append(f"| {number} | `{step.name}` | {step.description} | {when} | `{command}` |")
    return "\n".join(rows)


def switches() -> tuple[str, ...]:
    """The variables that skip a step when 0, in step order."""
    return tuple(step.switch for step in STEPS if step.switch)


def shell() -> str:
    """``steps.sh``: the wrapper's ``STEP_SWITCHES``, ``STEPS_HELP`` and ``run_steps``
    (every step in order, through the wrapper's ``run_step``, ``fail_step`` and ``log``)."""
    lines = ["# Generated from alert_pipeline/steps.py (python -m alert_pipeline.steps --shell): do not edit.",
             "# shellcheck shell=bash disable=SC2034,SC2154  # the wrapper's variables",
             f"readonly STEP_SWITCHES=({' '.join(switches())})",
             f"readonly STEPS_HELP={shlex.quote(help_text())}",
             "# Every step in its order: skipped (switch 0, or its condition false), refused (its input",
             "# unusable) or run.",
             "run_steps() {"]
    for number, step in enumerate(STEPS, 1):
        lines += ["  " + line for line in _step_lines(number, step)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _step_lines(number: int, step: Step) -> list[str]:
    """One step in bash: its switch, its preparation, its refusal, its condition, its run."""
    run = " ".join(["run_step", step.name, *(word.shell for word in step.command)])
    lines = [f"# {number}. {step.name}"]
    branches: list[tuple[str, str]] = []
    if step.switch:
        branches.append((f'[[ "${{{step.switch}:-1}}" == 0 ]]', f'log "step {step.name}: skipped ({step.switch}=0)"'))
    branches += [(refusal.when, f'fail_step {step.name} "$EXIT_INPUT_UNUSED" "{refusal.message}"')
                 for refusal in step.refusals]
    if step.condition:
        branches.append((step.condition, run))
        fallback = f'log "step {step.name}: skipped ({step.skipped_because})"'
    else:
        fallback = run
    if step.prepare:
        lines.append(step.prepare)
    if not branches:
        return lines + [fallback]
    for index, (test, action) in enumerate(branches):
        lines += [f"{'if' if index == 0 else 'elif'} {test}; then", f"  {action}"]
    return lines + ["else", f"  {fallback}", "fi"]


if __name__ == "__main__":
    formats = {"--shell": shell, "--markdown": markdown_table, "--help-text": help_text}
    usage = ("usage: python -m alert_pipeline.steps --shell | --markdown | --help-text\n"
             "  the wrapper's steps, declared once, as the wrapper's generated runner (steps.sh), the docs' table "
             "or the wrapper's --help list")
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(usage)
        sys.exit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in formats:
        sys.exit(usage)
    print(formats[sys.argv[1]](), end="" if sys.argv[1] == "--shell" else "\n")
