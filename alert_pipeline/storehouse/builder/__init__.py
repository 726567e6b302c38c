"""The transient kind builder's command line: one module per sub-command.

Each sub-command module (the hop-client pattern) has ``_add_parser_args(parser)``,
``_main(args) -> int``, ``HELP`` and ``DESCRIPTION``, and ``SECTIONS``: the config file's
tables whose settings it takes (``settings.py``). ``main`` adds ``--config`` and
``--show-config`` to every one, resolves its settings (default < file < environment <
command line) into ``args`` and maps whatever the command raises to an exit code with
``exitcodes.exit_code_for``, through the table in ``failures.py``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from types import ModuleType

from alert_pipeline.exitcodes import BUILDER, EXIT_CONFIG, EXIT_OK, help_text, run_mapped
from alert_pipeline.masking import configure_logging

#: The sub-commands, in --help's order: name → module (``alert_pipeline.storehouse.builder.<module>``).
COMMANDS = {"build": "build", "rebuild-index": "rebuild_index", "load-fink": "load_fink",
            "load-messengers": "load_messengers", "crossmatch": "crossmatch", "tns": "tns",
            "load-galaxies": "load_galaxies", "hosts": "hosts", "paths": "paths", "pages": "pages"}
DEFAULT_COMMAND = "build"
TOOL = "Transient kind builder"
log = logging.getLogger("transient_kind_builder")


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def parser(description: str, epilog: str) -> argparse.ArgumentParser:
    """The parser: every sub-command's own arguments, its settings' flags, --config and
    --show-config."""
    from alert_pipeline.storehouse.builder import settings
    top = argparse.ArgumentParser(prog=program_name(), description=description,
                                  epilog=epilog + "\n" + _settings_text(settings.SECTIONS) + "\n" + help_text(BUILDER),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name in COMMANDS:
        module = command_module(name)
        sub = commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        sub.add_argument("--config", metavar="FILE", help="TOML configuration file: its " + ", ".join(
            f"[{section}]" for section in module.SECTIONS) + " tables (the consumer's file may hold them)")
        sub.add_argument("--show-config", action="store_true",
                         help="print the effective settings of this sub-command as TOML (secrets masked) and exit")
        module._add_parser_args(sub)
    settings.SECTIONS  # noqa: B018 - imported here so that a broken declaration fails every command alike
    return top


def _settings_text(sections: Sequence[str]) -> str:
    """The settings paragraph of --help, naming every declared section (none left out as
    sections are added)."""
    tables = ", ".join(f"[{name}]" for name in sections)
    return textwrap.fill(f"Settings: every sub-command takes --config FILE (the {tables} tables of the TOML file "
                         "the consumer also reads; see config.example.toml) and --show-config; later wins: "
                         "default < file < variable < flag.", 88) + "\n"


def program_name() -> str:
    """The name the user typed (``transient-kind-builder`` from the console script), for usage lines."""
    return os.path.basename(sys.argv[0] or "") or "transient_kind_builder.py"


def with_command(argv: list[str]) -> list[str] | None:
    """``argv`` with ``build`` put first when it starts with an option (or is empty), as
    documented; None when its first word names no command (never run as ``build``)."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        return [DEFAULT_COMMAND, *argv]
    return argv if argv[0] in (*COMMANDS, "-h", "--help") else None


def main(argv: Sequence[str] | None, description: str, epilog: str) -> int:
    """Parse, resolve the settings, run the sub-command; every outcome is an exit code."""
    given = list(sys.argv[1:] if argv is None else argv)
    command_line = with_command(given)
    if command_line is None:
        print(f"{program_name()}: '{given[0]}' is not a command; the commands are {', '.join(COMMANDS)} "
              "(see --help)", file=sys.stderr)
        return EXIT_CONFIG
    args = parser(description, epilog).parse_args(command_line)
    configure_logging(logging.INFO)
    module = command_module(args.command)
    from alert_pipeline.storehouse.fink.db import mask_secrets_in
    return run_mapped(lambda: _run(module, args), lambda: (*getattr(module, "FAILURES", ()), *_failures()), log,
                      TOOL, lambda text: mask_secrets_in(text, getattr(args, "dsn", None) or ""))


def _failures() -> tuple:
    """The shared exception table, made when a command failed (``failures.failures``)."""
    from alert_pipeline.storehouse.builder.failures import failures
    return failures()


def _run(module: ModuleType, args: argparse.Namespace) -> int:
    from alert_pipeline.storehouse.builder import settings
    values = settings.resolve(module.SECTIONS, args.config, os.environ, vars(args))
    if args.show_config:
        from alert_pipeline.settings import section_toml
        print(section_toml([(section, settings.SECTIONS[section], values) for section in module.SECTIONS]), end="")
        return EXIT_OK
    vars(args).update(values)
    return module._main(args)
