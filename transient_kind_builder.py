#!/usr/bin/env python3
"""Transient kind builder: Fink ZTF alerts in PostgreSQL → event-storehouse slots.

Two kinds, built from the same rows in one pass: "transient" (one slot per ZTF object of
class SN candidate, Kilonova candidate or Unknown) and "minor_body" (one slot per
Minor Planet Center designation for Solar System MPC alerts, one per ZTF object for
Solar System candidates).

Sub-commands (``build`` is the default):

  build          read the events table, write <storehouse>/<kind>/<slot>.json slots,
                 remove slots no longer in the source, rebuild index.json and write
                 roster.json, for both kinds (--kind restricts it to one)
  rebuild-index  rebuild <storehouse>/<kind>/index.json from the slot files on disk
  load-fink      insert Fink API output (JSON list from /api/v1/latests, or CSV) into the
                 events table, skipping alerts (candids) already there
  load-messengers  gravitational waves, neutrinos and cosmic rays into the gw, neutrino
                 and uhecr kinds: from files (IGWN alert JSON, LVK sky-map FITS, IceCat-1
                 CSV, IceCube GCN notices, Auger and Telescope Array lists, a plain CSV;
                 recognised from their content) and, with --gcn, from GCN Kafka
  crossmatch     record in both slots every transient that aligns in time and sky with a
                 gw, neutrino or uhecr event (rules: flags or [crossmatch] in --config)
  tns            refine the transient slots with the spectroscopic classes of a Transient
                 Name Server file (public objects CSV or .zip, or a search export)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import psycopg

from alert_pipeline import kinds
from alert_pipeline.exitcodes import (
    BUILDER,
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_INPUT_UNUSED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_SERVICE,
    EXIT_SHRINK,
    help_text,
)
from alert_pipeline.fink import (
    DEFAULT_SOURCE,
    DEFAULT_TABLE,
    KINDS,
    BuildError,
    ShrinkRefused,
    TableNameError,
    build,
    load_fink,
    rebuild_index,
)
from alert_pipeline.fink.db import mask_secrets_in
from alert_pipeline.masking import configure_logging

COMMANDS = ("build", "rebuild-index", "load-fink", "load-messengers", "crossmatch", "tns")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=program_name(), description=__doc__.split("\n\n")[0],
                                  epilog=__doc__.split("\n\n", 1)[1] + "\n" + help_text(BUILDER),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")

    def database_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dsn", default=os.environ.get("DATABASE_URL"),
                         help="PostgreSQL connection string (default: $DATABASE_URL)")
        sub.add_argument("--table", default=DEFAULT_TABLE, help=f"events table (default {DEFAULT_TABLE})")
        sub.add_argument("--source", default=DEFAULT_SOURCE, help=f"rows' source tag (default {DEFAULT_SOURCE})")

    build_cmd = commands.add_parser("build", help="build the transient and minor_body slots (default)",
                                    description="Build the transient and minor_body slots from the events table.")
    database_options(build_cmd)
    build_cmd.add_argument("--storehouse", required=True, metavar="DIR", help="the event storehouse directory")
    build_cmd.add_argument("--kind", choices=KINDS, help="build only this kind (default: both)")
    build_cmd.add_argument("--allow-shrink", action="store_true",
                           help="remove slots even when more than half of those on disk would go")
    build_cmd.add_argument("--full", action="store_true",
                           help="rebuild every group from all rows (default: only the groups that rows added since "
                                "the last build touch; deleted or edited rows are seen only by a full build)")
    index_cmd = commands.add_parser("rebuild-index", help="rebuild index.json from the slots on disk",
                                    description="Rebuild <storehouse>/<kind>/index.json from the slot files.")
    index_cmd.add_argument("--storehouse", required=True, metavar="DIR")
    index_cmd.add_argument("--kind", choices=kinds.names(), help="rebuild only this kind's index (default: all)")
    load_cmd = commands.add_parser("load-fink", help="load Fink API output into the events table",
                                   description="Insert Fink alerts (JSON list or CSV from the Fink API) into the "
                                               "events table, skipping candids already present.")
    database_options(load_cmd)
    load_cmd.add_argument("files", nargs="+", metavar="FILE")
    messengers = commands.add_parser(
        "load-messengers", help="load GW, neutrino and cosmic-ray events (files and/or GCN Kafka)",
        description="Load gravitational-wave, neutrino and cosmic-ray events into the gw, neutrino and uhecr "
                    "kinds, from files (format recognised from the content) and, with --gcn, from GCN Kafka "
                    "(GCN_CLIENT_ID, GCN_CLIENT_SECRET or their _FILE variants; GCN_KAFKA_<KEY> settings).")
    messengers.add_argument("--storehouse", required=True, metavar="DIR", help="the event storehouse directory")
    messengers.add_argument("--gcn", action="store_true", help="also read new notices from GCN Kafka")
    messengers.add_argument("--gcn-topics", metavar="T1,T2", help="GCN topics (env GCN_TOPICS; default: "
                            "igwn.gwalert and the two IceCube track topics)")
    messengers.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                            help="stop reading GCN after this long without a message (default 60)")
    messengers.add_argument("--accept-mock", action="store_true", help="load mock GW events (MS…) too")
    messengers.add_argument("files", nargs="*", metavar="FILE")
    match_cmd = commands.add_parser(
        "crossmatch", help="match the transients with the gw, neutrino and uhecr events",
        description="Record in each transient slot (multimessenger) and each messenger slot (transients) "
                    "every coincidence in time and sky, with n_chance; only changed slots are written.")
    match_cmd.add_argument("--storehouse", required=True, metavar="DIR", help="the event storehouse directory")
    match_cmd.add_argument("--config", metavar="FILE", help="TOML file whose [crossmatch] table sets the rules")
    tns_cmd = commands.add_parser(
        "tns", help="refine the transient slots with a TNS file",
        description="Match the transient slots with a TNS file (by internal name, else by position) and record "
                    "the TNS name, type, redshift and discovery date; supernova and kilonova types refine the "
                    "subtype. The catalogue is kept under <storehouse>/state/tns/, so a daily delta file "
                    "updates only the objects it names.")
    tns_cmd.add_argument("--storehouse", required=True, metavar="DIR", help="the event storehouse directory")
    tns_cmd.add_argument("--radius-arcsec", type=float, default=1.5, metavar="ARCSEC",
                         help="the largest separation of a position match (default 1.5)")
    tns_cmd.add_argument("file", metavar="FILE_OR_DIR",
                         help="tns_public_objects.csv (or .zip), a daily tns_public_objects_YYYYMMDD.csv delta, a TNS "
                              "search export, or a directory of TNS public objects files (those not applied yet are "
                              "applied in date order)")
    from alert_pipeline.messengers.crossmatch import Rules

    for name, text in Rules.help().items():
        match_cmd.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, metavar="X",
                               help=f"{text} (default {getattr(Rules(), name):g})")
    return top


def program_name() -> str:
    """The name the user typed (``transient-kind-builder`` from the console script), for usage lines."""
    return os.path.basename(sys.argv[0] or "") or "transient_kind_builder.py"


def with_command(argv: list[str]) -> list[str] | None:
    """``argv`` with ``build`` put first when it starts with an option (or is empty), as
    documented; None when its first word names no command (never run as ``build``)."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        return ["build", *argv]
    return argv if argv[0] in (*COMMANDS, "-h", "--help") else None


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    command_line = with_command(given)
    if command_line is None:
        print(f"{program_name()}: '{given[0]}' is not a command; the commands are {', '.join(COMMANDS)} "
              "(see --help)", file=sys.stderr)
        return EXIT_CONFIG
    args = parser().parse_args(command_line)
    configure_logging(logging.INFO)
    log = logging.getLogger("transient_kind_builder")
    if args.command in ("build", "load-fink") and not args.dsn:
        print("transient_kind_builder: no database: pass --dsn or set DATABASE_URL", file=sys.stderr)
        return EXIT_CONFIG
    from alert_pipeline.messengers.gcn import GcnError

    try:
        if args.command == "load-messengers":
            return _load_messengers(args, log)
        if args.command == "crossmatch":
            return _crossmatch(args, log)
        if args.command == "tns":
            return _tns(args, log)
        if args.command == "rebuild-index":
            for kind in [args.kind] if args.kind else kinds.names():
                if not args.kind and kind not in KINDS and not os.path.isdir(os.path.join(args.storehouse, kind)):
                    continue  # a kind never loaded into this storehouse
                index = rebuild_index(args.storehouse, kind)
                log.info("%s index rebuilt: %d slots in %s", kind, index["count"], args.storehouse)
        elif args.command == "load-fink":
            report = load_fink(args.dsn, args.files, args.table, args.source)
            log.info("Fink load: read=%d inserted=%d already_present=%d skipped=%s", report.read, report.inserted,
                     report.already_present, dict(report.skipped))
        else:
            report = build(args.dsn, args.storehouse, args.table, args.source, allow_shrink=args.allow_shrink,
                           kinds=[args.kind] if args.kind else KINDS, full=args.full)
            for kind, done in report.kinds.items():
                log.info("%s kind built: %d rows read, %d slots written, %d unchanged, %d removed", kind,
                         report.rows_read, done.written, done.unchanged, done.removed)
            rosters = {kind: done.roster.as_dict() for kind, done in report.kinds.items()}
            print(json.dumps({"rosters": rosters}, indent=1))  # each kind's roster once
    except TableNameError as exc:
        log.error("Transient kind builder: %s", exc)
        return EXIT_CONFIG
    except GcnError as exc:
        log.error("Transient kind builder: %s; nothing of the batch in hand was committed", exc)
        return EXIT_SERVICE
    except ShrinkRefused as exc:
        log.error("Transient kind builder refused to remove slots: %s", exc)
        return EXIT_SHRINK
    except BuildError as exc:
        log.error("Transient kind builder failed: %s", exc)
        return EXIT_DATABASE
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.error("Transient kind builder failed: database error: %s", mask_secrets_in(detail, args.dsn or ""))
        return EXIT_DATABASE
    except OSError as exc:
        log.error("Transient kind builder failed: cannot read or write a file: %s", exc)
        return EXIT_OUTPUT
    return EXIT_OK


def _tns(args: argparse.Namespace, log: logging.Logger) -> int:
    from alert_pipeline import tns

    if not (args.radius_arcsec > 0 and args.radius_arcsec < 3600):
        log.error("Transient kind builder: tns: --radius-arcsec must be positive and under 3600")
        return EXIT_CONFIG
    try:
        summary = tns.apply(args.storehouse, args.file, args.radius_arcsec)
    except tns.TnsFileError as exc:
        log.error("Transient kind builder: tns: %s; nothing was changed", exc)
        return EXIT_CONFIG
    log.info("tns: %d files applied, %s matched (%s), %d slots written (%d restored), %d disagreements",
             sum(done["status"] == "applied" for done in summary["files"]), summary["matched"],
             summary["by_match"], summary["slots_written"], summary["slots_restored"], summary["disagreement_count"])
    print(json.dumps(summary, indent=1))
    unused = [left for left in summary["files_left_out"] if left["reason"] != tns.NOT_TNS_NAME]
    for left in unused:
        log.error("tns: %s was not used: %s", left["file"], left["reason"])
    return EXIT_INPUT_UNUSED if unused else EXIT_OK


def _crossmatch(args: argparse.Namespace, log: logging.Logger) -> int:
    from alert_pipeline.messengers import matching
    from alert_pipeline.messengers.crossmatch import Rules
    from alert_pipeline.messengers.events import Skipped

    try:
        rules = Rules.from_sources(args.config, {name: getattr(args, name) for name in Rules.help()})
        summary = matching.run(args.storehouse, rules)
    except (ValueError, Skipped) as exc:
        log.error("Transient kind builder: crossmatch: %s", exc)
        return EXIT_CONFIG
    log.info("crossmatch: %s", json.dumps({key: summary[key] for key in ("coincidences_by_kind", "skipped",
                                                                         "slots_written")}))
    print(json.dumps(summary, indent=1))
    return EXIT_OK


def _load_messengers(args: argparse.Namespace, log: logging.Logger) -> int:
    """Files, then GCN; a JSON summary. A file or GCN topic of which nothing could be
    loaded is named (ERROR, ``unused_files``/``unused_topics``) and ends the command with
    EXIT_INPUT_UNUSED, once everything else is written. GcnError and OSError reach ``main``."""
    from alert_pipeline.messengers.gcn import consume, settings_from_environment
    from alert_pipeline.messengers.load import load_files

    if not args.files and not args.gcn:
        print(f"{program_name()} load-messengers: give FILE(s) and/or --gcn", file=sys.stderr)
        return EXIT_CONFIG
    summary: dict = {}
    if args.files:
        report, rosters = load_files(args.storehouse, args.files, args.accept_mock)
        summary["files"] = {**report.as_dict(), "rosters": rosters}
        summary["unused_files"] = list(getattr(report, "unused", []))  # LoadReport.unused: [{file, reason, detail}]
        log.info("messenger files loaded: %s", json.dumps(report.as_dict()))
    if args.gcn:
        topics = tuple(t.strip() for t in args.gcn_topics.split(",") if t.strip()) if args.gcn_topics else None
        settings = settings_from_environment(os.environ, topics)
        log.info("reading GCN Kafka: %s", json.dumps(settings.masked()))
        run = consume(args.storehouse, settings, args.idle_timeout, args.accept_mock)
        summary["gcn"] = {"messages": run.messages, **run.report.as_dict(), "rosters": run.rosters}
        summary["unused_topics"] = run.missing_topics
        log.info("GCN notices read: %d, %s", run.messages, json.dumps(run.report.as_dict()))
    print(json.dumps(summary, indent=1))
    return _unused_input_code(summary, log)


def _unused_input_code(summary: dict, log: logging.Logger) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
