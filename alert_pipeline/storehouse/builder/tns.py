"""``tns``: refine the transient slots with a Transient Name Server file."""

from __future__ import annotations

import argparse
import json
import logging

from alert_pipeline.errors import ConfigError
from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_INPUT_UNUSED, EXIT_OK, Failure
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.enrich import tns
from alert_pipeline.storehouse.slots import one_writer

HELP = "refine the transient slots with a TNS file"
DESCRIPTION = ("Match the transient slots with a TNS file (by internal name, else by position) and record the TNS "
               "name, type, redshift and discovery date; supernova and kilonova types refine the subtype. The "
               "catalogue is kept under <storehouse>/state/tns/, so a daily delta file updates only the objects "
               "it names.")
SECTIONS = ("builder", "tns")
FAILURES = (Failure((tns.TnsFileError,), EXIT_INPUT_UNUSED, "{tool}: tns: {error}; that file was not used, nothing "
                     "was changed"),
            Failure((tns.TnsSetupError,), EXIT_CONFIG, "{tool}: tns: {error}; nothing was changed"))
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE, *settings.TNS)
    parser.add_argument("file", metavar="FILE_OR_DIR", nargs="?",
                        help="required but with --show-config: tns_public_objects.csv (or .zip), a daily tns_public_objects_YYYYMMDD.csv delta, a TNS "
                             "search export (it updates the objects it lists), or a directory: it applies "
                             f"{tns.DIRECTORY_NAMES} not applied yet, in date order; every other entry is named "
                             "in the log. A file that cannot be used (missing, another format, corrupt, "
                             "superseded) exits 9")


def _main(args: argparse.Namespace) -> int:
    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    if not args.file:  # optional for argparse only, so that --show-config needs none
        raise ConfigError("tns: no TNS file or directory given (FILE_OR_DIR)")
    with one_writer(storehouse, "tns"):
        summary = tns.apply(storehouse, args.file, args.radius_arcsec)
    applied = sum(done["status"] == "applied" for done in summary["files"])
    log.info("tns: %d %s applied, %s matched (%s), %d slots written (%d restored), %d disagreements",
             applied, "file" if applied == 1 else "files", summary["matched"],
             summary["by_match"], summary["slots_written"], summary["slots_restored"], summary["disagreement_count"])
    print(json.dumps(summary, indent=1))
    unused = [left for left in summary["files_left_out"] if not left.get("ignored")]
    for left in unused:
        log.error("tns: %s was not used: %s", left["file"], left["reason"])
    return EXIT_INPUT_UNUSED if unused else EXIT_OK
