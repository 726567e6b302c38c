#!/usr/bin/env python3
"""LSST Alert Report: a day's alerts, cutouts and quarantine as static HTML pages.

For each day's CSV files (every instance and column layout) it writes, under
``OUTPUT_DIR/reports/``:

    lsst_alerts_YYYYMMDD.html        summary, plots and the first page of alerts
    lsst_alerts_YYYYMMDD_pN.html     further pages (at most --page-size alerts each)
    lsst_alerts_YYYYMMDD_*.png       sky map, extendedness histogram, alerts per band
    thumbs/<cutout>.png              science / template / difference thumbnails

Relative links only: the folder opens offline and can be copied or served as it is.
Without --date, every day that has a CSV and no up-to-date report is (re)made.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from alert_pipeline.config import ConfigError, configured_output_dir
from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_OUTPUT
from alert_pipeline.masking import configure_logging

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}  the reports were written (or were up to date)
  {EXIT_FAILURE}  unexpected error (a bug; the traceback is logged)
  {EXIT_CONFIG}  configuration error: a bad --date, no such output directory, no CSV for --date
  {EXIT_OUTPUT}  the reports could not be written (permissions, disk full)

The output directory defaults to the consumer's: LSST_CONSUMER_OUTPUT_DIR, else output_dir in
the config file (--config or LSST_CONSUMER_CONFIG), else ./lsst_alerts."""


def _day(text: str) -> str:
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date as YYYYMMDD, e.g. 20261120") from None
    return text


def _page_size(text: str) -> int:
    if not text.isdigit() or not 10 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 10 to 1000")
    return int(text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="lsst_alert_report.py", description=__doc__.split("\n\n")[0],
                                  epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--output-dir", metavar="DIR", help="the consumer's output directory (see below)")
    top.add_argument("--config", metavar="FILE", help="the consumer's TOML configuration file")
    top.add_argument("--date", type=_day, metavar="YYYYMMDD", help="report this UTC day (default: every day "
                     "with a CSV and no up-to-date report)")
    top.add_argument("--page-size", type=_page_size, default=200, metavar="N",
                     help="alerts per page (default 200)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(logging.INFO)
    log = logging.getLogger("lsst_alert_report")
    try:
        output_dir = Path(args.output_dir or configured_output_dir("./lsst_alerts", args.config))
    except ConfigError as exc:
        log.error("LSST Alert Report: configuration error: %s", exc)
        return EXIT_CONFIG
    if not (output_dir / "data").is_dir():
        log.error("LSST Alert Report: %s has no data/ directory: is it the consumer's output directory?", output_dir)
        return EXIT_CONFIG
    from alert_pipeline.report import build_report, days_to_report
    from alert_pipeline.report.night import day_files

    if args.date and not day_files(output_dir, args.date):
        log.error("LSST Alert Report: no CSV for %s in %s", args.date, output_dir / "data")
        return EXIT_CONFIG
    days = [args.date] if args.date else days_to_report(output_dir)
    try:
        for day in days:
            result = build_report(output_dir, day, args.page_size)
            log.info("LSST Alert Report %s: %d alerts, %d pages, %d thumbnails, %d unreadable cutouts: %s",
                     day, result.alerts, result.pages, result.thumbnails, result.unreadable, result.path)
    except OSError as exc:
        log.error("LSST Alert Report failed: cannot write the report (%s). Check free space and permissions of %s.",
                  exc, output_dir / "reports")
        return EXIT_OUTPUT
    except Exception:  # noqa: BLE001 - last resort: say so, with the traceback
        log.exception("LSST Alert Report failed with an unexpected error")
        return EXIT_FAILURE
    if not days:
        log.info("LSST Alert Report: every day's report is up to date in %s", output_dir / "reports")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
