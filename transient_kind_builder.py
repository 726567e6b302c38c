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
  load-messengers  gravitational waves, neutrinos, cosmic rays and gamma-ray bursts into
                 the gw, neutrino, uhecr and grb kinds: from files (IGWN alert JSON, LVK
                 sky-map FITS, IceCat-1 CSV, IceCube GCN notices, Auger and Telescope
                 Array lists, GCN VOEvent and JSON notices, a plain CSV; recognised from
                 their content) and, with --gcn, from GCN Kafka
  crossmatch     record in both slots every transient that aligns in time and sky with a
                 messenger event (every messenger kind)
  tns            refine the transient slots with the spectroscopic classes of a Transient
                 Name Server file (public objects CSV or .zip, or a search export)
  paths          print where the storehouse keeps a kind's index, the site … (for scripts)

Settings: every sub-command takes --config FILE (the [builder], [gcn], [tns] and
[crossmatch] tables of the TOML file the consumer also reads; see config.example.toml)
and --show-config; later wins: default < file < variable < flag. Each sub-command is a
module of alert_pipeline/storehouse/builder/.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from alert_pipeline.storehouse import builder
from alert_pipeline.storehouse.builder import COMMANDS, program_name, with_command

__all__ = ["COMMANDS", "main", "parser", "program_name", "with_command"]


def parser():  # noqa: ANN201 - argparse.ArgumentParser
    """The builder's parser (every sub-command), for --help and the tests."""
    return builder.parser(__doc__.split("\n\n")[0], __doc__.split("\n\n", 1)[1])


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns its exit code (see --help)."""
    return builder.main(argv, __doc__.split("\n\n")[0], __doc__.split("\n\n", 1)[1])


if __name__ == "__main__":
    sys.exit(main())
