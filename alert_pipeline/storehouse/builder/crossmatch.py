"""``crossmatch``: the transients against every messenger kind's events."""

from __future__ import annotations

import argparse
import json
import logging

from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_OK, Failure
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.enrich import crossmatch as matching
from alert_pipeline.storehouse.kinds import match_rules
from alert_pipeline.storehouse.messengers.events import Skipped
from alert_pipeline.storehouse.slots import one_writer

HELP = f"match the transients with the messenger events ({', '.join(kind.name for kind in kinds.messenger_kinds())})"
DESCRIPTION = ("Record in each transient slot (multimessenger) and each messenger slot (transients) every "
               "coincidence in time and sky, with n_chance; only changed slots are written. The rules: the flags "
               "below or the [crossmatch] table of --config.")
SECTIONS = ("builder", "crossmatch")
FAILURES = (Failure((ValueError, Skipped), EXIT_CONFIG, "{tool}: crossmatch: {error}"),)
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE, *settings.CROSSMATCH)


def _main(args: argparse.Namespace) -> int:
    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    rules = match_rules().from_values({setting.name: getattr(args, setting.name) for setting in settings.CROSSMATCH})
    with one_writer(storehouse, "crossmatch"):
        summary = matching.run(storehouse, rules)
    log.info("crossmatch: %s", json.dumps({key: summary[key] for key in ("coincidences_by_kind", "skipped",
                                                                         "slots_written")}))
    print(json.dumps(summary, indent=1))
    return EXIT_OK
