"""Settings declared once: the machinery every tool's configuration is made with.

A setting (``Setting``) is declared once, as a dataclass field (``setting``) or a
``Setting`` line: its type, default, check, command-line flag, environment variable,
TOML key and help all come from that declaration. One TOML file holds every tool's
settings, a table per part (``SECTIONS``); the later source wins: declared default →
file → environment → command line (``resolve_section``). The consumer's settings
(``alert_pipeline.consumer.config``) and the builder's (``alert_pipeline.storehouse.builder.settings``)
are both made here; this module imports neither.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from alert_pipeline.errors import ConfigError
from alert_pipeline.masking import mask_text

MiB = 1024 * 1024


def between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not math.isfinite(value) or not low <= value <= high:
            return f"must be at least {low:g} and at most {high:g}"
        return None
    return check


def choice(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def setting(default: Any, help: str, check: Callable[[Any], str | None] | None = None, *,
            metavar: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field that is also a setting (``settings_of``): TOML key = field name,
    flag ``--name-with-dashes``, variable the section's prefix + NAME; ``check`` returns a problem."""
    return field(default=default, metadata={"help": help, "check": check, "metavar": metavar,
                                            "choices": choices})


def toml_value(value: Any) -> str:
    """A TOML value: text as a basic string (JSON's escapes are TOML's), numbers, booleans,
    lists of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


@dataclass(frozen=True)
class Setting:
    """A setting as the parser, the environment and the TOML file see it: a ConsumerConfig
    field, or (``CONNECTION_SETTINGS``) one whose value lands in ``kafka_config[kafka_key]``
    or, for ``topic``, in the topics."""

    name: str
    kind: type
    help: str
    check: Callable[[Any], str | None] | None
    metavar: str | None
    choices: tuple[str, ...] | None
    default: Any = None
    kafka_key: str | None = None
    repeatable: bool = False  # several values: a repeated flag, a comma-separated variable
    #: The environment variable: ``env`` when given, else ``env_prefix`` + NAME; none when both are empty.
    env: str | None = None
    env_prefix: str | None = None
    #: The flag when it is not ``--name-with-dashes`` (``--gcn-topics`` for [gcn] ``topics``).
    option: str | None = None
    #: A TOML value is checked as it is, never converted: ``check`` refuses what is not fit
    #: (a cross-match rule given as ``"14"`` or ``true`` is named, not read as 14 or 1).
    strict: bool = False
    #: Shown masked (``mask_text``) by ``--show-config``.
    secret: bool = False

    @property
    def shown_default(self) -> str:
        """``(default …)`` for the help, from the declared default itself."""
        value = self.default
        if value is None or value == "" or self.kind is bool:
            return ""
        if isinstance(value, int) and value >= MiB and value % MiB == 0:
            return f" (default {value // MiB} MiB)"
        return f" (default {value:g})" if isinstance(value, float) else f" (default {value})"

    @property
    def flag(self) -> str:
        return self.option or "--" + self.name.replace("_", "-")

    @property
    def variable(self) -> str | None:
        if self.env:
            return self.env
        return self.env_prefix + self.name.upper() if self.env_prefix else None

    @property
    def help_line(self) -> str:
        """The ``--help`` text: the help, the default and the variable, all from the declaration."""
        return self.help + self.shown_default + (f" (env: {self.variable})" if self.variable else "")


def settings_of(declared: type, **common: Any) -> tuple[Setting, ...]:
    """The settings a dataclass declares: each field whose metadata holds ``setting``'s keys
    (help, check, metavar, choices, …) is one, its default the field's. ``common`` applies
    to all of them (a section's ``env_prefix``), the field's own metadata winning."""
    hints = typing.get_type_hints(declared)
    known = {item.name for item in fields(Setting)}
    found = []
    for item in fields(declared):
        if not item.metadata or "help" not in item.metadata:
            continue
        kind = next(arg for arg in typing.get_args(hints[item.name]) or (hints[item.name],) if arg is not type(None))
        declared_here = {key: value for key, value in item.metadata.items() if key in known}
        found.append(Setting(item.name, kind, default=item.default, **{**common, **declared_here}))
    return tuple(found)


def add_setting_arguments(parser: argparse.ArgumentParser, settings: Sequence[Setting], typed: bool = False) -> None:
    """One flag per setting, its help from the declaration; every flag defaults to None
    (not given), so the file and the environment show through. ``typed``: numbers are
    converted by argparse (the builder's flags, as they always were)."""
    for setting in settings:
        if setting.kind is bool:
            parser.add_argument(setting.flag, dest=setting.name, action=argparse.BooleanOptionalAction, default=None,
                                help=setting.help_line)
            continue
        converter = setting.kind if typed and setting.kind in (int, float) else None
        parser.add_argument(setting.flag, dest=setting.name, metavar=setting.metavar, choices=setting.choices,
                            help=setting.help_line, action="append" if setting.repeatable else "store",
                            **({"type": converter} if converter else {}))


CONSUMER_SECTION = "consumer"
SECTIONS = (CONSUMER_SECTION, "builder", "gcn", "tns", "crossmatch", "galaxies", "pages")


def read_config_file(path: str) -> dict[str, Any]:
    """The whole TOML file (``ConfigError`` naming it when it cannot be read or parsed)."""
    return _read_toml(path)


def section_table(document: Mapping[str, Any], section: str, path: str) -> dict[str, Any]:
    """One section's table of the file (empty when it has none); ``ConfigError`` when the
    section is there but not a table."""
    table = document.get(section, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"the config file {path}: {section} = {table!r} must be a table ([{section}] followed "
                          f"by its settings)")
    return dict(table)


def resolve_section(section: str, settings: Sequence[Setting], table: Mapping[str, Any],
                    environ: Mapping[str, str], given: Mapping[str, Any]) -> dict[str, Any]:
    """One section's effective values: the declared defaults, the file's table, the
    environment, the command line (``given``, None where not given), later winning, each
    checked. ``ConfigError`` names the section, the setting and the problem."""
    by_name = {setting.name: setting for setting in settings}
    unknown = sorted(set(table) - set(by_name), key=str)
    if unknown:
        raise ConfigError(f"unknown {section} setting(s) {', '.join(map(str, unknown))}; "
                          f"known: {', '.join(sorted(by_name))}")
    values: dict[str, Any] = {}
    for setting in settings:
        raw, from_text = setting.default, False
        if setting.name in table:
            raw = table[setting.name]
        if setting.variable and environ.get(setting.variable):
            raw, from_text = environ[setting.variable], True
        if given.get(setting.name) is not None:
            raw, from_text = given[setting.name], isinstance(given[setting.name], str)
        values[setting.name] = checked_in(section, setting, raw, from_text)
    return values


def checked_in(section: str, setting: Setting, raw: Any, from_text: bool) -> Any:
    """``checked`` for a section's setting: text from the environment or the command line
    is converted first, even for a strict setting; the message names the section."""
    if raw is None:
        return None
    try:
        if setting.strict and from_text:
            raw = typed(dataclasses.replace(setting, strict=False), raw)
        return checked(setting, raw)
    except ConfigError as exc:
        raise ConfigError(f"{section} setting {exc}") from None


def section_toml(sections: Sequence[tuple[str, Sequence[Setting], Mapping[str, Any]]]) -> str:
    """Sections of the config file holding ``values`` (``--show-config``): secrets masked,
    settings without a value as comments; it reads back with ``--config``."""
    lines: list[str] = []
    for section, settings, values in sections:
        lines.append(f"{chr(10) if lines else ''}[{section}]")
        for setting in settings:
            value = values.get(setting.name)
            if value is None:
                lines.append(f"# {setting.name}: not set")
            else:
                lines.append(f"{setting.name} = {toml_value(_masked(value) if setting.secret else value)}")
    return "\n".join(lines) + "\n"


def _masked(value: Any) -> str:
    """A secret as shown: a URL's user-info masked, anything else (a ``key=value``
    connection string) as a whole."""
    shown = mask_text(str(value))
    return shown if shown != str(value) or "***" in shown else "***"


def example_lines(settings: Sequence[Setting]) -> list[str]:
    """``config.example.toml``'s lines for some settings: each one's help (and variable) as
    a comment, then ``# key = default``, commented out so that a copy of the example
    follows the declared defaults. Generated, so the example never restates one by hand."""
    lines = []
    for setting in settings:
        variable = f" (env: {setting.variable})" if setting.variable else ""
        lines.append(f"# {setting.help.replace('%%', '%')}{variable}")
        value = setting.default
        lines.append(f"# {setting.name} = " + ("…" if value is None or value == "" else toml_value(value)))
    return lines


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def typed(setting: Setting, value: Any) -> Any:
    """A setting's value as its type: text from the environment or the command line is
    converted, a TOML value must already have the right type (a whole number for an int).
    A strict setting's value is left for its check."""
    kind = setting.kind
    if setting.strict:
        return value
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool and text in ("true", "1", "yes", "false", "0", "no"):
            return text in ("true", "1", "yes")
        try:
            return int(text) if kind is int else float(text) if kind is float else value
        except ValueError:
            pass
    elif isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
        return value
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"{setting.name} = {_shown(setting, value)}: expected "
                      f"{'a whole number' if kind is int else kind.__name__}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def control_characters(name: str, value: Any, secret: bool = False) -> None:
    """Refuse text with control characters (NUL, ESC, BEL, newlines …): no path, topic,
    broker address or name holds one, and they would reach the logs raw. A secret's value
    is not shown (a ``key=value`` connection string ending in a CRLF file's ``\\r``)."""
    if isinstance(value, str) and _CONTROL.search(value):
        shown = "(its value not shown: a secret)" if secret else repr(mask_text(value))
        raise ConfigError(f"{name} = {shown}: contains a control character")


def _shown(setting: Setting, value: Any) -> str:
    """A setting's value as an error message shows it: a secret masked."""
    return repr(_masked(value)) if setting.secret else repr(value)


def checked(setting: Setting, raw: Any) -> Any:
    """A setting's value, typed and checked (``ConfigError`` naming it when it is not fit)."""
    control_characters(setting.name, raw, setting.secret)
    value = None if raw is None else typed(setting, raw)
    problem = setting.check(value) if value is not None and setting.check else None
    if problem:
        raise ConfigError(f"{setting.name} = {_shown(setting, raw)}: {problem}")
    return value
