"""``rebuild-index``: each kind's index.json again from the slot files on disk."""

from __future__ import annotations

import argparse
import logging
import os

from alert_pipeline.errors import ConfigError
from alert_pipeline.exitcodes import EXIT_OK
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.builder import settings
from alert_pipeline.storehouse.builder._common import add_settings, required
from alert_pipeline.storehouse.layout import StorehouseLayout
from alert_pipeline.storehouse.slots import one_writer

HELP = "rebuild index.json from the slots on disk"
DESCRIPTION = "Rebuild <storehouse>/<kind>/index.json from the slot files."
SECTIONS = ("builder",)
log = logging.getLogger("transient_kind_builder")


def _add_parser_args(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, settings.STOREHOUSE)
    parser.add_argument("--kind", choices=kinds.names(), help="rebuild only this kind's index (default: all)")


def _main(args: argparse.Namespace) -> int:
    storehouse = required(args, settings.STOREHOUSE, "no storehouse")
    if not os.path.isdir(storehouse):  # a mistyped --storehouse: nothing is created
        raise ConfigError(f"rebuild-index: no storehouse at {storehouse} (nothing to rebuild)")
    with one_writer(storehouse, "rebuild-index"):
        for kind in [args.kind] if args.kind else kinds.names():
            if not args.kind and kind not in kinds.built_from_rows() and not os.path.isdir(StorehouseLayout.at(storehouse).kind(kind)):
                continue  # a kind never loaded into this storehouse
            spec = kinds.spec(kind)
            index = spec.store(storehouse).rebuild_index(spec.index_fields)
            log.info("%s index rebuilt: %d slots in %s", kind, index["count"], storehouse)
    return EXIT_OK
