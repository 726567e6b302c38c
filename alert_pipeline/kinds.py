"""The registry of slot kinds: every kind of the event storehouse, by name.

Each kind's module declares its ``SPEC`` (``storehouse.KindSpec``: name, index fields,
file-name rule and, for kinds built from the events table, the SQL and slot function);
this module lists them, and the builder, its workers and ``rebuild-index`` iterate over
it. A new kind is one module plus one line here. The kind modules are imported on first
use, so importing this module costs nothing and makes no import cycle.
"""

from __future__ import annotations

import functools

from .storehouse import KindSpec


@functools.cache
def registry() -> dict[str, KindSpec]:
    """Every kind, in the order the tools build and list them."""
    from .fink import minor_body, transient
    from .messengers import gw, neutrino, uhecr

    return {spec.name: spec for spec in (transient.SPEC, minor_body.SPEC, gw.SPEC, neutrino.SPEC, uhecr.SPEC)}


def names() -> tuple[str, ...]:
    return tuple(registry())


def spec(name: str) -> KindSpec:
    """The spec of kind ``name`` (KeyError naming the known kinds otherwise)."""
    try:
        return registry()[name]
    except KeyError:
        raise KeyError(f"unknown kind {name!r}; the kinds are {', '.join(registry())}") from None


def built_from_rows() -> tuple[str, ...]:
    """The kinds the builder makes from the events table."""
    return tuple(name for name, kind in registry().items() if kind.rows is not None)
