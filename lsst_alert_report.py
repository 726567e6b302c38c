#!/usr/bin/env python3
"""LSST Alert Report: a day's alerts, cutouts and quarantine as static HTML pages.

For each day's CSV files (every instance and column layout) it writes, under
``OUTPUT_DIR/reports/``:

    lsst_alerts_YYYYMMDD.html        summary, plots, quarantine and the first page of alerts
    lsst_alerts_YYYYMMDD_pN.html     further pages (at most --page-size alerts each)
    lsst_alerts_YYYYMMDD_*.png       sky map, extendedness histogram, alerts per band
    lsst_alerts_night_YYYYMMDD*.html the alerts of one observing night (--night)
    thumbs/<cutout>.n.png / .u.png   thumbnails, north up (.n) or orientation unknown (.u)
    thumbs/<light curve>.lc.png      each alert's light curve

Relative links only: the folder opens offline and can be copied or served as it is.
Without --date or --night, every day that has a CSV (or quarantined messages) and no
up-to-date report is (re)made.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from alert_pipeline.consumer.config import configured_setting
from alert_pipeline.consumer.layout import OutputLayout
from alert_pipeline.errors import ConfigError
from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_OK, EXIT_OUTPUT, REPORT, Failure, help_text, run_mapped
from alert_pipeline.masking import configure_logging

EXIT_CODES_HELP = help_text(REPORT) + """

The output directory defaults to the consumer's: LSST_CONSUMER_OUTPUT_DIR, else output_dir in
the config file (--config or LSST_CONSUMER_CONFIG), else ./lsst_alerts."""


def _day(text: str) -> str:
    return _checked_day(text, "%Y%m%d", "a UTC processing day as YYYYMMDD, e.g. 20261120")


def _night(text: str) -> str:
    return _checked_day(text, "%Y-%m-%d", "an observing night as YYYY-MM-DD (Rubin's dayObs), e.g. 2026-03-18")


def _checked_day(text: str, layout: str, expected: str) -> str:
    """The day as YYYYMMDD, or argparse's usage error (exit 2) saying what was wrong."""
    from alert_pipeline.report.night import parse_day
    try:
        return parse_day(text, layout)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: expected {expected}") from None


def _page_size(text: str) -> int:
    if not text.isdigit() or not 10 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 10 to 1000")
    return int(text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="lsst_alert_report.py", description=__doc__.split("\n\n")[0],
                                  epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--output-dir", metavar="DIR", help="the consumer's output directory (see below)")
    top.add_argument("--config", metavar="FILE", help="the consumer's TOML configuration file")
    which = top.add_mutually_exclusive_group()
    which.add_argument("--date", type=_day, metavar="YYYYMMDD", help="report this UTC processing day (default: "
                       "every day with a CSV or quarantined messages and no up-to-date report)")
    which.add_argument("--night", type=_night, metavar="YYYY-MM-DD", help="report the alerts observed in this "
                       "night (Rubin's dayObs: the date at UTC-12 h), whichever day processed them")
    top.add_argument("--site", metavar="DIR", help="the event storehouse's site (transient_kind_builder.py pages): "
                     "every report page links its index.html when it exists; the link is relative, so publish "
                     "both under one root (the cron wrapper passes its storehouse's site)")
    from alert_pipeline.report.build import PAGE_SIZE
    top.add_argument("--page-size", type=_page_size, default=PAGE_SIZE, metavar="N",
                     help=f"alerts per page (default {PAGE_SIZE})")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(logging.INFO)
    log = logging.getLogger("lsst_alert_report")
    try:
        output_dir = Path(args.output_dir or configured_setting("output_dir", args.config))
    except ConfigError as exc:
        log.error("LSST Alert Report: configuration error: %s", exc)
        return EXIT_CONFIG
    layout = OutputLayout.at(output_dir)
    if not os.path.isdir(layout.data):
        log.error("LSST Alert Report: %s has no data/ directory: is it the consumer's output directory?", output_dir)
        return EXIT_CONFIG
    from alert_pipeline.report import build_report, days_to_report
    from alert_pipeline.report.build import NoAlertsObserved, report_days
    if args.date and args.date not in report_days(output_dir):
        log.error("LSST Alert Report: no CSV for %s in %s (and no message quarantined that day)", args.date,
                  layout.data)
        return EXIT_CONFIG
    if not (args.date or args.night or report_days(output_dir)):
        # Not "up to date": there is nothing to report, and the reports/ directory may not exist.
        log.warning("LSST Alert Report: no data: no day CSV (and no quarantined message) in %s, so no report; "
                    "has the consumer written anything into this output directory?", layout.data)
        return EXIT_OK
    days = [args.date or args.night] if args.date or args.night else days_to_report(output_dir)

    def build() -> int:
        for day in days:
            result = build_report(output_dir, day, args.page_size, observing_night=bool(args.night),
                                  site=Path(args.site) if args.site else None)
            log.info("LSST Alert Report %s: %d alerts, %d pages, %d thumbnails, %d unreadable cutouts: %s",
                     day, result.alerts, result.pages, result.thumbnails, result.unreadable, result.path)
        if not days:
            log.info("LSST Alert Report: every day's report is up to date in %s", layout.reports)
        return EXIT_OK

    reports = str(layout.reports).replace("{", "{{").replace("}", "}}")
    return run_mapped(build, (Failure((NoAlertsObserved,), EXIT_CONFIG, "{tool}: {error}"),
                              Failure((OSError,), EXIT_OUTPUT, "{tool} failed: cannot write the report ({error}). Check "
                                      f"free space and permissions of {reports}.")), log, "LSST Alert Report")


if __name__ == "__main__":
    sys.exit(main())
