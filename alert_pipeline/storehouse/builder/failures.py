"""The builder's exception → exit-code table, shared by every sub-command (a sub-command's
own ``FAILURES`` come first). ``exitcodes.run_mapped`` walks it; the first rung that
catches an error gives the code and the log line."""

from __future__ import annotations

import psycopg

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
from alert_pipeline.storehouse.fink.build import ShrinkRefused
from alert_pipeline.storehouse.fink.db import BuildError, TableNameError
from alert_pipeline.storehouse.messengers.gcn import GcnError

FAILURES: tuple[Failure, ...] = (
    Failure((ConfigError,), EXIT_CONFIG, "{tool}: configuration error: {error}"),
    Failure((TableNameError,), EXIT_CONFIG, "{tool}: {error}"),
    Failure((GcnError,), EXIT_SERVICE, "{tool}: {error}; nothing of the batch in hand was committed"),
    Failure((ShrinkRefused,), EXIT_SHRINK, "{tool} refused to remove slots: {error}"),
    Failure((BuildError,), EXIT_DATABASE, "{tool} failed: {error}"),
    Failure((psycopg.Error,), EXIT_DATABASE, "{tool} failed: database error: {error}", first_line),
    Failure((OSError,), EXIT_OUTPUT, "{tool} failed: cannot read or write a file: {error}"),
)
