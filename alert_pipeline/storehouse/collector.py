"""The cyclic garbage collector held off while a step builds large acyclic structures.

A step that makes a few hundred thousand dicts, lists or records (an index parsed, a
catalogue's rows, the site's records) triggers collections that walk every live object
and find nothing to free: held off for that stretch, the collector resumes after it and
frees any cycle made meanwhile then. Reference counting frees everything else as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def held_off() -> Iterator[None]:
    """No collection inside the block (the collector's previous setting restored after it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def freezing() -> Iterator[Callable[[], None]]:
    """A block that may freeze what is alive (``gc.freeze``: later collections skip it) with the
    callable it gives, and thaws it at its end. Only when the process had nothing frozen when
    the block began: ``gc.unfreeze`` thaws everything, and what a caller froze stays frozen."""
    owned = gc.get_freeze_count() == 0

    def freeze() -> None:
        if owned:
            gc.freeze()

    try:
        yield freeze
    finally:
        if owned:
            gc.unfreeze()
