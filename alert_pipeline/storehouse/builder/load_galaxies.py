"""``load-galaxies``: GLADE+ text or a CSV of galaxies into the storehouse's HATS catalogue."""

from __future__ import annotations

import argparse
import json
import logging

from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED, EXIT_OK, Failure
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.galaxies import GalaxyFileError
from alert_pipeline.storehouse.slots import one_writer

HELP = "load a galaxy catalogue (GLADE+ text or a CSV) as a HATS catalogue"
DESCRIPTION = ("Read GLADE+ as its authors publish it (40 whitespace-separated fields, 'null' for missing) or a CSV "
               "whose header names ra, dec and d_L or z (optional mass in Msun or M* in 1e10 Msun, names), streamed; "
               "skip and count bad rows (wrong field count, a missing position or distance, a distance <= 0, off "
               "the sky); store the rest as a HATS catalogue under <storehouse>/catalogues/NAME/ (hats-import), "
               "built aside and swapped in whole: a failed load leaves the stored catalogue as it was. LSDB opens "
               "it as it is (lsdb.open_catalog).")
SECTIONS = ("builder", "galaxies")
FAILURES = (Failure((GalaxyFileError,), EXIT_INPUT_UNUSED, "{tool}: load-galaxies: {error}; nothing was loaded, "
                     "the stored catalogue is unchanged"),)
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE, settings.CATALOGUE, settings.DASK_SCHEDULER)
    parser.add_argument("files", metavar="FILE", nargs="+", help="GLADE+ text files or CSV files of galaxies: one "
                        "catalogue of all of them (a file of another format exits 9 with nothing loaded)")


def _main(args: argparse.Namespace) -> int:
    from alert_pipeline.storehouse.galaxies import store  # Arrow and hats-import with it

    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    with one_writer(storehouse, "load-galaxies", create=True):
        summary = store.load(storehouse, args.catalogue, args.files, args.dask_scheduler or None)
    log.info("load-galaxies: %d galaxies stored as %s; skipped %s", summary["rows"], args.catalogue,
             summary["bad_rows"])
    print(json.dumps(summary, indent=1))
    return EXIT_OK
