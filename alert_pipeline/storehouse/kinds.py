"""The registry of slot kinds: every kind of the event storehouse, by name.

Each kind's module declares its ``SPEC`` (``storehouse.KindSpec``: name, index fields,
file-name rule and, for kinds built from the events table, the SQL and slot function);
a messenger kind's module declares, besides, its ``KIND_SPEC``
(``messengers.kind.MessengerKind``: how its files and notices are recognised and read,
its roster, its revision rule, its GCN topics, its cross-match rule and settings). This
module lists them, and the builder, its workers, ``rebuild-index``, the messenger
formats, loading, GCN and the cross-match iterate over it. A new messenger kind is one
module plus one line in ``MESSENGER_MODULES``. The kind modules are imported on first
use, so importing this module costs nothing and makes no import cycle.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from alert_pipeline.storehouse.fink import minor_body, transient
from alert_pipeline.storehouse.slots import KindSpec

if TYPE_CHECKING:
    from alert_pipeline.storehouse.messengers.kind import MessengerKind
#: The modules of the messenger kinds, each declaring ``SPEC`` and ``KIND_SPEC``, in the
#: order their formats are recognised, their slots listed and matched. One line per kind.
MESSENGER_MODULES = (
    "alert_pipeline.storehouse.messengers.gw",
    "alert_pipeline.storehouse.messengers.neutrino",
    "alert_pipeline.storehouse.messengers.uhecr",
    "alert_pipeline.storehouse.messengers.grb",
)


def registry() -> dict[str, KindSpec]:
    """Every kind, in the order the tools build and list them."""
    return _registry(MESSENGER_MODULES)


@functools.cache
def _registry(modules: tuple[str, ...]) -> dict[str, KindSpec]:
    specs = (transient.SPEC, minor_body.SPEC, *(module.KIND_SPEC.spec for module in _messenger_modules(modules)))
    return {spec.name: spec for spec in specs}


@functools.cache
def _messenger_modules(modules: tuple[str, ...]) -> tuple[ModuleType, ...]:
    return tuple(importlib.import_module(name) for name in modules)


def messenger_modules() -> tuple[ModuleType, ...]:
    """The messenger kinds' modules, in ``MESSENGER_MODULES``' order."""
    return _messenger_modules(MESSENGER_MODULES)


def messenger_kinds() -> tuple[MessengerKind, ...]:
    """Every messenger kind's declaration, in ``MESSENGER_MODULES``' order."""
    return tuple(_messenger_kinds(MESSENGER_MODULES).values())


def messenger_kind(name: str) -> MessengerKind:
    """The messenger kind ``name`` (KeyError naming the messenger kinds otherwise)."""
    declared = _messenger_kinds(MESSENGER_MODULES)
    try:
        return declared[name]
    except KeyError:
        raise KeyError(f"unknown messenger kind {name!r}; they are {', '.join(declared)}") from None


@functools.cache
def _messenger_kinds(modules: tuple[str, ...]) -> dict[str, MessengerKind]:
    return {module.KIND_SPEC.name: module.KIND_SPEC for module in _messenger_modules(modules)}


def match_rules() -> type:
    """``Rules``: the cross-match rules of every messenger kind, one frozen dataclass made
    from the settings each kind's ``MatchRule`` declares (``messengers.rules.rules_class``)."""
    from alert_pipeline.storehouse.messengers.rules import rules_class
    return rules_class(messenger_kinds())


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
