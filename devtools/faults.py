"""Fault injection for the crash tests: ``LSST_CONSUMER_TEST_CRASH=POINT:N`` kills the
process with SIGKILL the N-th time it reaches ``durable.checkpoint(POINT)``."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def crash_hook_from_environment() -> Callable[[str], None]:
    point, _, nth = os.environ.get("LSST_CONSUMER_TEST_CRASH", "").partition(":")
    wanted = int(nth or 1)
    reached = 0

    def hook(name: str) -> None:
        nonlocal reached
        if name == point:
            reached += 1
            if reached == wanted:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook
