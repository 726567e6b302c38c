"""``load-fink``: Fink API output (JSON list or CSV) into the events table."""

from __future__ import annotations

import argparse
import logging

from alert_pipeline.exitcodes import EXIT_OK
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required

HELP = "load Fink API output into the events table"
DESCRIPTION = "Insert Fink alerts (JSON list or CSV from the Fink API) into the events table, skipping candids " \
              "already present."
SECTIONS = ("builder",)
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.DSN, settings.TABLE, settings.SOURCE)
    parser.add_argument("files", nargs="+", metavar="FILE")


def _main(args: argparse.Namespace) -> int:
    from alert_pipeline.storehouse.fink.load import load_fink  # the database driver with it

    dsn = required(args, settings.DSN, "no database")
    report = load_fink(dsn, args.files, args.table, args.source)
    log.info("Fink load: read=%d inserted=%d already_present=%d skipped=%s", report.read, report.inserted,
             report.already_present, dict(report.skipped))
    return EXIT_OK
