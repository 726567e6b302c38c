"""A movable clock for the tests: ``LSST_CONSUMER_TEST_START_TIME`` (ISO 8601) makes the
run's clock start there and tick normally, for testing day changes."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping


def clock_from_environment(environ: Mapping[str, str] | None = None) -> Callable[[], dt.datetime] | None:
    """The clock ``LSST_CONSUMER_TEST_START_TIME`` asks for; None when it is unset."""
    environ = os.environ if environ is None else environ
    start_text = environ.get("LSST_CONSUMER_TEST_START_TIME")
    if not start_text:
        return None
    start = dt.datetime.fromisoformat(start_text.replace("Z", "+00:00")).astimezone(dt.UTC)
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)
