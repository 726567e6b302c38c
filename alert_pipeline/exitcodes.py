"""Every exit code of every tool, in one table.

A code means the same thing whichever tool returns it, so the cron wrapper can pass a
step's code on and the operator reads it in one place. Each tool's ``--help``, the
wrapper's constants and help text (``exitcodes.sh``, generated: ``python -m
alert_pipeline.exitcodes --shell``) and the README's table (``--markdown``) are made from
``CODES``; a test checks that the generated files match.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

CONSUMER, REPORT, BUILDER, WRAPPER = "lsst_alert_consumer.py", "lsst_alert_report.py", "transient_kind_builder.py", \
    "run_lsst_consumer.sh"
TOOLS = (CONSUMER, REPORT, BUILDER, WRAPPER)


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str
    tools: tuple[str, ...]
    #: What the code covers in one tool, where that says more than ``meaning``.
    details: dict[str, str] = field(default_factory=dict)


CODES: tuple[ExitCode, ...] = (
    ExitCode(0, "EXIT_OK", "success (also: nothing to do, or some input skipped or quarantined and logged)", TOOLS),
    ExitCode(1, "EXIT_FAILURE", "unexpected error (a bug): the traceback is in the log", (CONSUMER, REPORT, BUILDER)),
    ExitCode(2, "EXIT_CONFIG", "configuration or usage error: a bad option, setting, configuration file or "
             "input file; nothing was changed", (CONSUMER, REPORT, BUILDER), {
                 CONSUMER: "also another consumer of the same instance running on the output directory",
                 REPORT: "a bad --date or --night, no data/ directory, nothing for --date, no alert of --night",
                 BUILDER: "no database given, an invalid --table name, a bad cross-match rule or --radius-arcsec, "
                          "tns run before any build (no transient index), hosts without a galaxy catalogue, a pages "
                          "--out over the storehouse or holding files pages did not make"}),
    ExitCode(3, "EXIT_SERVICE", "a service failed: Kafka broker, schema registry or GCN Kafka unreachable, "
             "credentials refused, unknown topic; nothing of that batch was committed", (CONSUMER, BUILDER)),
    ExitCode(4, "EXIT_OUTPUT", "output not writable (permissions, disk full, a planted link): that batch was not "
             "committed, nothing was half-written", (CONSUMER, REPORT, BUILDER), {
                 CONSUMER: "also: the --parquet copy could not be written (the CSV batches were committed)",
                 BUILDER: ("the storehouse; load-fink: an input file it cannot read (the other sub-commands name such a file "
                          "and exit 9); hosts: a damaged galaxy catalogue")}),
    ExitCode(5, "EXIT_DATABASE", "database unreachable, table missing or a database error", (BUILDER,)),
    ExitCode(6, "EXIT_RETENTION", "retention could not delete some of the old files (each is named in the log)",
             (CONSUMER, WRAPPER), {CONSUMER: "only with --retention"}),
    ExitCode(7, "EXIT_SHRINK", "the build would remove more than half of the slots on disk (a mistyped --source "
             "or --table?): nothing was removed; --allow-shrink when the objects really are gone", (BUILDER,)),
    ExitCode(8, "EXIT_NOTHING_WRITTEN", "messages were read and every one was quarantined (the wrong topic, a "
             "broken producer?): the warning names the main reason", (CONSUMER,)),
    ExitCode(9, "EXIT_INPUT_UNUSED", "some input was not used: a file (or notice source) of which nothing could be "
             "loaded; each is named in the log and the summary; the rest was loaded", (BUILDER, WRAPPER), {
                 BUILDER: "a messenger file or GCN topic that gave nothing; a TNS file that cannot be used (missing, "
                          "another format, corrupt, past a bound, a superseded delta given explicitly); a galaxy file "
                          "load-galaxies refuses (then nothing is loaded)",
                 WRAPPER: "passed on from the builder step that returned it (messengers, tns); the later steps still ran"}),
    # The steps' switches are named in the wrapper's --help (alert_pipeline/steps.py), not here:
    # steps.py imports this table, and a list copied here would drift from it.
    ExitCode(64, "EXIT_USAGE", "the wrapper's own usage: a bad option or variable (RETENTION_DAYS, "
             "FULL_BUILD_WEEKDAY, a step's switch: see --help), or an output directory retention must not touch "
             "(/ or empty)", (WRAPPER,)),
    ExitCode(69, "EXIT_NO_PYTHON", "no usable Python (run scripts/setup_venv.sh)", (WRAPPER,)),
    ExitCode(73, "EXIT_CANT_CREATE", "LOG_FILE or the lock file cannot be written", (WRAPPER,)),
    ExitCode(75, "EXIT_LOCKED", "another run holds the lock: this one did nothing", (WRAPPER,)),
)
_BY_NAME = {code.name: code.code for code in CODES}
EXIT_OK = _BY_NAME["EXIT_OK"]
EXIT_FAILURE = _BY_NAME["EXIT_FAILURE"]
EXIT_CONFIG = _BY_NAME["EXIT_CONFIG"]
EXIT_SERVICE = _BY_NAME["EXIT_SERVICE"]
EXIT_OUTPUT = _BY_NAME["EXIT_OUTPUT"]
EXIT_DATABASE = _BY_NAME["EXIT_DATABASE"]
EXIT_SHRINK = _BY_NAME["EXIT_SHRINK"]
EXIT_NOTHING_WRITTEN = _BY_NAME["EXIT_NOTHING_WRITTEN"]
EXIT_RETENTION = _BY_NAME["EXIT_RETENTION"]
EXIT_INPUT_UNUSED = _BY_NAME["EXIT_INPUT_UNUSED"]


@dataclass(frozen=True)
class Failure:
    """One rung of a tool's exception → exit-code table: what it catches, the code it
    returns and the log line it says (``{tool}`` and ``{error}`` filled in)."""

    errors: tuple[type[BaseException], ...]
    code: int
    says: str = "{tool} failed: {error}"
    #: The error as the log line shows it (default: ``str``).
    detail: Callable[[BaseException], str] = str


def first_line(error: BaseException) -> str:
    """The first line of an error's text, or its type's name when it has none (a database
    driver's message runs on with context lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def exit_code_for(error: BaseException, failures: Sequence[Failure]) -> Failure | None:
    """The first rung that catches ``error``; an error carrying its own ``exit_code`` (a
    ``ServiceError``) is its own rung; None when nothing does (a bug)."""
    for failure in failures:
        if isinstance(error, failure.errors):
            return failure
    own = getattr(error, "exit_code", None)
    if isinstance(own, int) and not isinstance(own, bool):
        return Failure((type(error),), own)
    return None


def run_mapped(body: Callable[[], int], failures: Sequence[Failure] | Callable[[], Sequence[Failure]],
               log: logging.Logger, tool: str, mask: Callable[[str], str] = lambda text: text) -> int:
    """``body()``'s exit code; whatever it raises becomes the code of the first rung of
    ``failures`` that catches it, with its log line (``mask`` applied: a password in a
    database error never reaches the log). Anything else is a bug: logged with its
    traceback, EXIT_FAILURE. One ladder for every tool: no traceback escapes a command.
    ``failures`` may be a function giving the ladder, called only when ``body`` raised
    (its rungs' modules are then imported only by a run that needs them)."""
    try:
        return body()
    except Exception as error:  # noqa: BLE001 - every error becomes a documented exit code
        failure = exit_code_for(error, failures() if callable(failures) else failures)
        if failure is None:
            log.exception(mask(f"{tool} failed with an unexpected error"))
            return EXIT_FAILURE
        log.error(mask(failure.says.format(tool=tool, error=failure.detail(error))))
        return failure.code


def help_text(tool: str) -> str:
    """The ``exit codes:`` block of one tool's ``--help``."""
    lines = ["exit codes:"]
    for code in CODES:
        if tool in code.tools:
            text = code.meaning + (f"; {code.details[tool]}" if tool in code.details else "")
            lines.append(textwrap.fill(text, 100, initial_indent=f"  {code.code:<4}", subsequent_indent=" " * 6))
    if tool == WRAPPER:
        lines.append("  else  the first failed step's code (the consumer's, the builder's or the report's, from the same table)")
    return "\n".join(lines)


def markdown_table() -> str:
    """README's table: every code, its meaning, and which tools return it."""
    short = {CONSUMER: "consumer", REPORT: "report", BUILDER: "builder", WRAPPER: "wrapper"}
    rows = ["| Code | Meaning | Returned by |", "|------|---------|-------------|"]
    for code in CODES:
        details = "".join(f" {short[tool]}: {text}." for tool, text in code.details.items())
        tools = ", ".join(short[tool] for tool in code.tools)
        rows.append(f"| {code.code} | {code.meaning}.{details} | {tools} |")
    return "\n".join(rows)


def shell() -> str:
    """``exitcodes.sh``: the wrapper's constants (every code, named as here), help text and
    ``exit_code_meaning CODE`` (what its log line says of a failed step)."""
    lines = ["# Generated from alert_pipeline/exitcodes.py (python -m alert_pipeline.exitcodes --shell): do not edit.",
             "# shellcheck shell=bash disable=SC2034"]
    lines += [f"readonly {code.name}={code.code}" for code in CODES]
    lines.append(f"readonly EXIT_CODES_HELP={_shell_quoted(help_text(WRAPPER))}")
    lines.append("# The name and meaning of a code, for the log line of a step that returned it.")
    lines.append("exit_code_meaning() {")
    lines.append('  case "$1" in')
    lines += [f"    {code.code}) echo {_shell_quoted(f'{code.name}: {code.meaning}')} ;;" for code in CODES]
    lines.append("    *) echo 'not in the exit code table' ;;")
    lines.append("  esac")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _shell_quoted(text: str) -> str:
    """``text`` in single quotes, as bash reads it back unchanged."""
    return "'" + text.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    formats = {"--shell": shell, "--markdown": markdown_table}
    if len(sys.argv) != 2 or sys.argv[1] not in formats:
        sys.exit("usage: python -m alert_pipeline.exitcodes --shell | --markdown")
    print(formats[sys.argv[1]](), end="" if sys.argv[1] == "--shell" else "\n")
