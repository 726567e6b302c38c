"""``load-messengers``: the messenger kinds' events (every kind of the registry), from files and GCN Kafka."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from alert_pipeline.errors import ConfigError
from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED, EXIT_OK
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.slots import one_writer

_KINDS = ", ".join(kind.name for kind in kinds.messenger_kinds())
HELP = f"load messenger events ({_KINDS}) from files and/or GCN Kafka"
DESCRIPTION = (f"Load messenger events into the {_KINDS} kinds, from "
               "files (format recognised from the content) and, with --gcn, from GCN Kafka (GCN_CLIENT_ID, "
               "GCN_CLIENT_SECRET or their _FILE variants; GCN_KAFKA_<KEY> settings).")
SECTIONS = ("builder", "gcn")
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE)
    parser.add_argument("--gcn", action="store_true", help="also read new notices from GCN Kafka")
    add_settings(parser, *settings.GCN)
    parser.add_argument("--accept-mock", action="store_true", help="load mock GW events (MS…) too")
    parser.add_argument("files", nargs="*", metavar="FILE")


def _main(args: argparse.Namespace) -> int:
    """Files, then GCN; a JSON summary. A file or GCN topic of which nothing could be
    loaded is named (ERROR, ``unused_files``/``unused_topics``) and ends the command with
    EXIT_INPUT_UNUSED, once everything else is written. GcnError and OSError reach the
    builder's failure table."""
    if not args.files and not args.gcn:
        raise ConfigError(f"{os.path.basename(sys.argv[0] or 'transient_kind_builder.py')} load-messengers: "
                          "give FILE(s) and/or --gcn")
    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    with one_writer(storehouse, "load-messengers", create=True):
        summary = _load(args, storehouse)
    print(json.dumps(summary, indent=1))
    return _unused_input_code(summary)


def _load(args: argparse.Namespace, storehouse: str) -> dict:
    """The files, then GCN, into the storehouse; the summary."""
    from alert_pipeline.storehouse.messengers.gcn import consume, settings_from_environment
    from alert_pipeline.storehouse.messengers.load import load_files
    summary: dict = {}
    if args.files:
        report, rosters = load_files(storehouse, args.files, args.accept_mock)
        summary["files"] = {**report.as_dict(), "rosters": rosters}
        summary["unused_files"] = list(report.unused)  # [{file, reason, detail}]
        log.info("messenger files loaded: %s", json.dumps(report.as_dict()))
    if args.gcn:
        topics = tuple(topic.strip() for topic in args.topics.split(",") if topic.strip())
        gcn_settings = settings_from_environment(os.environ, topics)
        log.info("reading GCN Kafka: %s", json.dumps(gcn_settings.masked()))
        run = consume(storehouse, gcn_settings, args.idle_timeout, args.accept_mock)
        summary["gcn"] = {"messages": run.messages, **run.report.as_dict(), "rosters": run.rosters}
        summary["unused_topics"] = run.missing_topics
        log.info("GCN notices read: %d, %s", run.messages, json.dumps(run.report.as_dict()))
    return summary


def _unused_input_code(summary: dict) -> int:
    """EXIT_INPUT_UNUSED, each unused file and topic named at ERROR, when the summary has
    any: under cron an exit code is read, a warning is not."""
    for unused in summary.get("unused_files", []):
        log.error("messenger file not used, nothing of it could be loaded: %s: %s (%s)", unused.get("file"),
                  unused.get("detail"), unused.get("reason"))
    for topic in summary.get("unused_topics", []):
        log.error("GCN topic not used, it does not exist: %s", topic)
    if summary.get("unused_files") or summary.get("unused_topics"):
        return EXIT_INPUT_UNUSED
    return EXIT_OK
