"""``paths``: where the storehouse keeps a thing, for the tools beside the builder.

The cron wrapper asks here (``paths --storehouse DIR transient-index``) instead of
joining the storehouse's names itself, so the layout (``storehouse/layout.py``) stays the
one place they are declared.
"""

from __future__ import annotations

import argparse

from alert_pipeline.errors import ConfigError
from alert_pipeline.exitcodes import EXIT_OK
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.layout import StorehouseLayout

HELP = "print where the storehouse keeps something (for scripts: a kind's index, the site)"
DESCRIPTION = ("Print the path of each NAME in the storehouse, one per line (nothing is created or read): "
               "NAME is storehouse, site, catalogues, <kind>-directory or <kind>-index; with no NAME, every name "
               "and path.")
SECTIONS = ("builder",)


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE)
    parser.add_argument("names", nargs="*", metavar="NAME", help="what to print the path of")


def _main(args: argparse.Namespace) -> int:
    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    paths = StorehouseLayout.at(storehouse).named_paths(tuple(kinds.names()))
    unknown = [name for name in args.names if name not in paths]
    if unknown:
        raise ConfigError(f"unknown name(s) {', '.join(unknown)}; known: {', '.join(paths)}")
    for name in args.names or paths:
        print(paths[name] if args.names else f"{name}\t{paths[name]}")
    return EXIT_OK
