#!/usr/bin/env python3
"""LSST Alert Consumer: the filtered alert stream → daily CSV files and FITS cutouts.

Reads LSST alerts (Confluent-framed or container-file Avro, any lsst-alert-packet schema
v3.0–v11.1, or ANTARES locus messages) from Kafka and writes, under ``output_dir``:

    data/lsst_alerts_YYYYMMDD.csv            one row per alert (UTC processing day)
    cutouts/<diaSourceId>_<kind>_<YYYYMMDD>_<HHMMSS>.fits
    quarantine/                              messages that could not be used, with why

Every alert is written exactly once, even across crashes (see alert_pipeline/consumer/store.py).

Configuration: the defaults below, then a TOML file (--config), then LSST_CONSUMER_*
environment variables, then command-line flags. To add CSV columns, subclass
``LSSTAlertConsumer`` and extend ``process_alert`` (see the README).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from alert_pipeline.consumer.config import build_parser, load_config
from alert_pipeline.consumer.processing import AlertConsumer
from alert_pipeline.errors import ConfigError
from alert_pipeline.exitcodes import (
    CONSUMER,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_RETENTION,
    Failure,
    help_text,
    run_mapped,
)
from alert_pipeline.masking import configure_logging

# Defaults, as the README shows them; override them in a config file, the environment
# or on the command line rather than here.
kafka_config: dict[str, Any] = {
    "bootstrap.servers": "localhost:9092",
    "group.id": "lsst-alert-consumer",
    "auto.offset.reset": "earliest",
}
topic = "lsst-extendedness-filtered"
TOOL = "LSST Alert Consumer"

EXIT_CODES_HELP = help_text(CONSUMER) + """

offline: --from-file FILE... processes message files (.frames, .avro or one framed
message per file) without Kafka.

replay: --from-time/--to-time re-read a window of the topics (Kafka message time) into
--output-dir without reading or moving the consumer group's offsets.

merge: --merge DIR... unions the output directories of instances on other machines into
--output-dir, each alert once (a batch redelivered to another instance is in two of them).

every run appends one line to OUTPUT_DIR/state/runs.jsonl (--history shows them) and,
with --metrics-file, writes Prometheus metrics."""


class LSSTAlertConsumer(AlertConsumer):
    """The consumer. Extend ``process_alert`` to add columns::

        class MyConsumer(LSSTAlertConsumer):
            def process_alert(self, alert):
                record = super().process_alert(alert)
                dia_source = alert.get("diaSource") or {}
                record["snr"] = dia_source.get("snr")
                record["prv_candidates"] = len(alert.get("prvDiaSources") or [])
                return record
    """

    def process_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """One CSV row (a dict, the README's standard columns) for one decoded alert.

        ``self.cutout_paths`` holds this alert's cutout paths and ``self.timestamp`` the
        processing time; keys you add become extra columns after the standard ones.
        """
        return super().process_alert(alert)


def main(argv: Sequence[str] | None = None, consumer_class: type[AlertConsumer] = LSSTAlertConsumer) -> int:
    """Run the consumer; returns the exit code (see EXIT_CODES_HELP)."""
    typed = os.path.basename(sys.argv[0] or "") or "lsst_alert_consumer.py"  # lsst-alert-consumer, as installed
    parser = build_parser(typed, __doc__.split("\n\n")[0], EXIT_CODES_HELP)
    add = parser.add_argument
    add("--from-file", nargs="+", metavar="FILE", help="process message files instead of Kafka")
    add("--from-time", type=_utc_argument, metavar="TIME",
        help="replay the topics from this Kafka message time (ISO 8601 UTC, inclusive) without the group")
    add("--to-time", type=_utc_argument, metavar="TIME", help="replay up to this time (exclusive)")
    add("--history", nargs="?", type=_count_argument, const=10, metavar="N",
        help="print the last N runs (default 10) from state/runs.jsonl and exit")
    add("--merge", nargs="+", metavar="DIR",
        help="union these output directories (consumers on other machines) into --output-dir, each alert once")
    add("--retention", action="store_true",
        help="delete the output files older than --retention-days and exit (the cron wrapper's retention step)")
    add("--dry-run", action="store_true", help="with --retention: list the files it would delete, delete nothing")
    args = parser.parse_args(argv)
    try:
        config = load_config({"kafka_config": kafka_config, "topic": topic}, args)
        window = _replay_window(args)
    except (ConfigError, ValueError) as exc:
        print(f"LSST Alert Consumer: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_level)
    if args.show_config:
        print(config.masked_toml(), end="")
        return EXIT_OK
    if args.show_output_dir:
        print(os.path.abspath(config.output_dir))
        return EXIT_OK
    if args.history:
        from alert_pipeline.consumer.history import history_table, last_runs
        from alert_pipeline.consumer.layout import HISTORY_FILE
        print(f"runs recorded in {os.path.abspath(os.path.join(config.output_dir, HISTORY_FILE))}:", file=sys.stderr)
        print(history_table(last_runs(config.output_dir, args.history)))
        return EXIT_OK
    if args.merge:
        return _merge(args.merge, config.output_dir)
    if args.retention or args.dry_run:
        return _retention(config.output_dir, config.retention_days, args.dry_run)
    from alert_pipeline.consumer.session import run_session
    return run_session(config, consumer_class, args.from_file, window)


def _merge(sources: list[str], destination: str) -> int:
    from alert_pipeline.consumer.merge import merge
    log = logging.getLogger("lsst_alert_consumer")

    def body() -> int:
        report = merge(sources, destination)
        log.info("LSST Alert Consumer merged %s into %s: %s", ", ".join(sources), destination, report.line())
        return EXIT_OK

    return run_mapped(body, (Failure((ValueError,), EXIT_CONFIG, "{tool}: --merge: {error}"),
                             Failure((OSError,), EXIT_OUTPUT, "{tool} merge failed: {error}")), log, TOOL)


def _retention(output_dir: str, days: int, dry_run: bool) -> int:
    from alert_pipeline.consumer.layout import OutputLayout
    from alert_pipeline.consumer.retention import RetentionError, apply_retention
    log = logging.getLogger("lsst_alert_consumer")
    log.info("%s: files older than %d days%s under %s", "dry run" if dry_run else "retention", days,
             " that retention would delete" if dry_run else "", os.path.abspath(output_dir))

    def body() -> int:
        problems = apply_retention(OutputLayout.at(output_dir), days, dry_run)
        for problem in problems:
            log.error("retention: could not clean %s", problem)
        return EXIT_RETENTION if problems else EXIT_OK

    return run_mapped(body, (Failure((RetentionError,), EXIT_CONFIG, "retention: {error}"),), log, TOOL)


def _replay_window(args: argparse.Namespace):  # noqa: ANN202 - TimeWindow | None, imported lazily
    if args.from_time is None and args.to_time is None:
        return None
    if args.from_file:
        raise ConfigError("--from-time/--to-time replay Kafka topics; they cannot be used with --from-file")
    from alert_pipeline.consumer.replay import TimeWindow
    return TimeWindow(args.from_time, args.to_time)


def _utc_argument(text: str):  # noqa: ANN202 - datetime
    from alert_pipeline.consumer.replay import parse_utc
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count_argument(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of runs from 1 to 100000")
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
