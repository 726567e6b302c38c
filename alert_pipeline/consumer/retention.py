"""Retention: delete (or list) the output files older than ``retention_days``.

What is removed is ``layout.RETAINED``: regular files matching a pattern, anywhere below
one of the output's own directories. Those directories are cleaned even when they are
symbolic links (``data/`` on a bigger disk: the consumer writes through them), but no link
*inside* them is followed and links themselves are never removed, so nothing outside them
is touched. A file is old when it was last modified more than ``days`` × 24 h ago.

The two windows: retention keeps the files for ``retention_days``; the ledger keeps the
ids of the alerts written for ``ledger_window_days`` (both declared settings) and is
what makes a redelivered alert a duplicate. A replay (``--from-time``) of alerts written
longer ago than the ledger window writes them again, into the replay day's file; the
consumer warns when a replay starts before the ledger window.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Callable, Iterator

from alert_pipeline.consumer.layout import RETAINED, OutputLayout

DAY_SECONDS = 86400


class RetentionError(ValueError):
    """Retention was asked to work where it must not (``/``, an empty path)."""


def expired_files(layout: OutputLayout, days: int, now: float | None = None,
                  problems: list[str] | None = None) -> Iterator[str]:
    """Every retained file last modified more than ``days`` days before ``now``."""
    if layout.root in ("", os.sep) or os.path.realpath(layout.root) == os.sep:
        raise RetentionError(f"the output directory is {layout.root!r}: refusing to run retention on / or an "
                             "empty path")
    limit = (time.time() if now is None else now) - days * DAY_SECONDS
    for directory, pattern in RETAINED:
        top = layout.path(directory)
        if not os.path.isdir(top):  # follows a link: the directory itself may be one
            continue
        yield from _old_files(top, pattern, limit, problems)


def _old_files(top: str, pattern: str, limit: float, problems: list[str] | None) -> Iterator[str]:
    def failed(error: OSError) -> None:
        if problems is not None:
            problems.append(f"{top} ({pattern}): {error}")

    for here, _directories, files in os.walk(top, onerror=failed):  # never descends through a link
        for name in fnmatch.filter(files, pattern):
            path = os.path.join(here, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_mtime < limit:
                yield path


def apply_retention(layout: OutputLayout, days: int, dry_run: bool = False,
                    show: Callable[[str], None] = print, now: float | None = None) -> list[str]:
    """Delete (``dry_run``: show) the expired files; returns the problems met (empty when
    every expired file is gone)."""
    problems: list[str] = []
    for path in list(expired_files(layout, days, now, problems)):
        if dry_run:
            show(path)
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"{path}: {exc}")
    return problems
