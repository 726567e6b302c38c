"""``pages``: the storehouse as a static site, a page per slot and an index."""

from __future__ import annotations

import argparse
import json
import logging

from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_OK, Failure
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.site.build import DEFAULT_SITE, SiteError, run

HELP = "write the storehouse's static site (a page per slot, an index)"
DESCRIPTION = (f"Write a static site of the storehouse into --out (default <storehouse>/{DEFAULT_SITE}/): index.html "
               "and <kind>/<slot file stem>.html for every slot, with light curves, sky maps and candidate tables; "
               "nothing in it is fetched from elsewhere. Only pages whose inputs changed are rendered, and only "
               "those whose bytes changed are written (the state is kept in <storehouse>/state/pages.json and state/pages/).")
SECTIONS = ("builder", "pages")
FAILURES = (Failure((SiteError,), EXIT_CONFIG, "{tool}: pages: {error}"),)
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE, *settings.PAGES)


def _main(args: argparse.Namespace) -> int:
    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    summary = run(storehouse, args.site_out or None, args.workers or None)
    log.info("pages: %d pages, %d rendered, %d files written, %d removed, in %.1f s", summary["pages"],
             summary["rendered"], summary["files_written"], summary["files_removed"], summary["seconds"])
    print(json.dumps(summary, indent=1))
    return EXIT_OK
