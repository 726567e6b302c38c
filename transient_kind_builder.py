#!/usr/bin/env python3
"""Transient kind builder: Fink ZTF alerts in PostgreSQL → event-storehouse slots.

Two kinds, built from the same rows in one pass: "transient" (one slot per ZTF object of
class SN candidate, Kilonova candidate or Unknown) and "minor_body" (one slot per
Minor Planet Center designation for Solar System MPC alerts, one per ZTF object for
Solar System candidates).

``build`` is the default sub-command; the list above is every sub-command with its own
module in alert_pipeline/storehouse/builder/, and `<sub-command> --help` says the rest.
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
