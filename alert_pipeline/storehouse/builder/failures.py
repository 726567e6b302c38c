"""The builder's exception → exit-code table, shared by every sub-command (a sub-command's
own ``FAILURES`` come first). ``exitcodes.run_mapped`` walks it; the first rung that
catches an error gives the code and the log line. The database driver's errors have their
rung when the driver is loaded: a command that never loaded it cannot have raised them, and
a failed run need not load it to say so (``failures``)."""

from __future__ import annotations

import sys

from alert_pipeline.errors import ConfigError
from alert_pipeline.exitcodes import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_OUTPUT,
    EXIT_SERVICE,
    EXIT_SHRINK,
    Failure,
    first_line,
)
from alert_pipeline.storehouse.fink.db import BuildError, ShrinkRefused, TableNameError
from alert_pipeline.storehouse.messengers.gcn import GcnError

FAILURES: tuple[Failure, ...] = (
    Failure((ConfigError,), EXIT_CONFIG, "{tool}: configuration error: {error}"),
    Failure((TableNameError,), EXIT_CONFIG, "{tool}: {error}"),
    Failure((GcnError,), EXIT_SERVICE, "{tool}: {error}; nothing of the batch in hand was committed"),
    Failure((ShrinkRefused,), EXIT_SHRINK, "{tool} refused to remove slots: {error}"),
    Failure((BuildError,), EXIT_DATABASE, "{tool} failed: {error}"),
    Failure((OSError,), EXIT_OUTPUT, "{tool} failed: cannot read or write a file: {error}"),
)
#: The driver's rung, put before the file errors' when the driver is loaded.
DRIVER_SAYS = "{tool} failed: database error: {error}"


def failures() -> tuple[Failure, ...]:
    """``FAILURES`` with the database driver's rung when a command loaded the driver."""
    driver = sys.modules.get("psycopg")
    if driver is None:
        return FAILURES
    return (*FAILURES[:-1], Failure((driver.Error,), EXIT_DATABASE, DRIVER_SAYS, first_line), FAILURES[-1])
