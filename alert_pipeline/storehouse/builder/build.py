"""``build`` (the default sub-command): the transient and minor_body slots from the events table."""

from __future__ import annotations

import argparse
import json
import logging

from alert_pipeline.exitcodes import EXIT_OK
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.kinds import built_from_rows

HELP = "build the transient and minor_body slots (default)"
DESCRIPTION = "Build the transient and minor_body slots from the events table."
SECTIONS = ("builder",)
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, *settings.BUILDER)
    parser.add_argument("--kind", choices=built_from_rows(), help="build only this kind (default: both)")
    parser.add_argument("--allow-shrink", action="store_true",
                        help="remove slots even when more than half of those on disk would go")
    parser.add_argument("--full", action="store_true",
                        help="rebuild every group from all rows (default: only the groups that rows added since "
                             "the last build touch; deleted or edited rows are seen only by a full build)")


def _main(args: argparse.Namespace) -> int:
    from alert_pipeline.storehouse.fink.build import KINDS, build  # the database driver with it

    dsn = required(args, settings.DSN, "no database")
    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    report = build(dsn, storehouse, args.table, args.source, allow_shrink=args.allow_shrink,
                   kinds=[args.kind] if args.kind else KINDS, full=args.full)
    for kind, done in report.kinds.items():
        log.info("%s kind built: %d rows read, %d slots written, %d unchanged, %d removed", kind,
                 report.rows_read, done.written, done.unchanged, done.removed)
    rosters = {kind: done.roster.as_dict() for kind, done in report.kinds.items()}
    print(json.dumps({"rosters": rosters}, indent=1))  # each kind's roster once
    return EXIT_OK
