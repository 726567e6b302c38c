"""``hosts``: GW host candidates and transient host galaxies from the galaxy catalogue."""

from __future__ import annotations

import argparse
import json
import logging

from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_OK, EXIT_OUTPUT, Failure
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.galaxies.query import CatalogueUnreadable
from alert_pipeline.storehouse.messengers.events import Skipped
from alert_pipeline.storehouse.slots import one_writer

HELP = "rank the galaxies of each GW volume and give each transient its host galaxy"
DESCRIPTION = ("From the catalogue loaded by load-galaxies: each gw slot whose sky map has distance layers gets "
               "host_candidates (the galaxies in its 90% credible volume, ranked by probability density per Mpc3 "
               "times a stellar-mass weight) and n_galaxies_90_volume; each transient slot gets host (the galaxy "
               "of smallest projected separation within the kpc and angular limits). Only changed slots are "
               "written.")
SECTIONS = ("builder", "galaxies")
FAILURES = (Failure((Skipped,), EXIT_CONFIG, "{tool}: hosts: {error}"),
            Failure((CatalogueUnreadable,), EXIT_OUTPUT, "{tool}: hosts: {error}; the slots written before are "
                    "kept, the next run computes the rest"))
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE, *settings.GALAXIES)


def _main(args: argparse.Namespace) -> int:
    from alert_pipeline.storehouse.enrich import hosts  # LSDB and Arrow with it

    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    chosen = hosts.HostSettings(args.catalogue, args.host_candidates_top, args.host_max_kpc, args.host_cap_arcmin,
                                args.dask_scheduler or None)
    with one_writer(storehouse, "hosts"):
        summary = hosts.run(storehouse, chosen)
    log.info("hosts: %s", json.dumps(summary))
    print(json.dumps(summary, indent=1))
    return EXIT_OK
