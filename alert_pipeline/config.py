"""The consumer's configuration: script defaults → TOML file → environment → command line.

Every setting is declared once, in ``SETTINGS``: its type, default, check, command-line
flag, ``LSST_CONSUMER_<NAME>`` variable and TOML key all come from that one line. The
later source wins. Any librdkafka setting passes through in ``kafka_config``
(``security.protocol``, ``sasl.*``, ``ssl.*`` …), also as ``LSST_CONSUMER_KAFKA_<KEY>``
with Confluent's env naming (``_`` → ``.``, ``__`` → ``-``, ``___`` → ``_``) and, for
secrets, ``LSST_CONSUMER_KAFKA_<KEY>_FILE``. ``mask_secrets``/``mask_text`` hide
secrets in everything that is shown or written.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from . import clients
from .avro import DECODERS, resolve_decoder
from .clients import KAFKA_ENV_PREFIX, REGISTRY_ENV_PREFIX, REGISTRY_PREFIX
from .decode import FRAMINGS, framing_problem
from .errors import ConfigError
from .ledger import DEFAULT_WINDOW_DAYS
from .limits import Limits
from .masking import is_secret_key, mask_secrets, mask_text

ENV_PREFIX = "LSST_CONSUMER_"
MiB = 1024 * 1024


# ----------------------------------------------------------------------------- checks
def _between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not math.isfinite(value) or not low <= value <= high:
            return f"must be at least {low:g} and at most {high:g}"
        return None
    return check


def _choice(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _instance_name(value: str) -> str | None:
    if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        return "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _metrics_path(value: str) -> str | None:
    if not value.endswith(".prom"):
        return "must end in .prom (node_exporter's textfile collector reads only *.prom files)"
    if not os.path.isdir(os.path.dirname(os.path.abspath(value))):
        return "its directory does not exist"
    return None


def _decoder(value: str) -> str | None:
    try:
        resolve_decoder(value)
    except ValueError as exc:
        return str(exc)
    return None


def _version(value: str) -> str | None:
    return None if re.fullmatch(r"\d{1,2}\.\d{1,2}", value) else "must look like 11.1"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setting(default: Any, help: str, check: Callable[[Any], str | None] | None = None, *,
            metavar: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A ``ConsumerConfig`` field that is also a setting: TOML key = field name, flag
    ``--name-with-dashes``, variable ``LSST_CONSUMER_NAME``; ``check`` returns a problem."""
    return field(default=default, metadata={"help": help, "check": check, "metavar": metavar,
                                            "choices": choices})


@dataclass
class ConsumerConfig:
    """The effective configuration. Every field after ``topics`` is a setting (see
    ``setting``); ``SETTINGS`` lists them for the parser, the environment and the checks."""

    kafka_config: dict[str, Any]
    topics: list[str]
    output_dir: str = setting("./lsst_alerts", "where data/, cutouts/, quarantine/ and state/ go", _non_empty,
                              metavar="DIR")
    max_messages: int | None = setting(None, "stop after N messages", _between(1, 2**62), metavar="N")
    idle_timeout: float = setting(60.0, "stop after this long without a message, counted once partitions are "
                                  "assigned", _between(0.1, 7 * 86400), metavar="SECONDS")
    max_runtime: float | None = setting(None, "stop after this long in all", _between(0.1, 30 * 86400),
                                        metavar="SECONDS")
    connect_timeout: float = setting(30.0, "give up when the broker cannot be reached for this long",
                                     _between(0.1, 3600), metavar="SECONDS")
    stop_at_end: bool = setting(True, "stop once every assigned partition is read to its end "
                                "(--no-stop-at-end: keep reading until --idle-timeout)")
    batch_size: int = setting(500, "messages written and committed together", _between(1, 100_000),
                              metavar="N")
    workers: int = setting(1, "processes that decode and stage cutouts", _between(1, 64), metavar="N")
    framing: str = setting("auto", "message framing (auto: detected per message)", choices=FRAMINGS)  # checked by decode
    decoder: str = setting("auto", "Avro decoder: cavro (faster) or fastavro (the reference); auto = cavro when "
                           "installed", _decoder, choices=DECODERS)
    schema_version: str | None = setting(None, "schema for --framing schemaless, e.g. 11.1", _version,
                                         metavar="X.Y")
    instance_id: str = setting("", "name of this instance when several share an output dir", _instance_name,
                               metavar="NAME")
    ledger_window_days: int = setting(DEFAULT_WINDOW_DAYS, "days of the de-duplication ledger kept: an alert written "
                                      "longer ago than this is written again if it comes back", _between(1, 3650),
                                      metavar="DAYS")
    retention_days: int = setting(30, "days of CSV, Parquet, cutout, quarantine and report files --retention "
                                  "keeps", _between(1, 36500), metavar="DAYS")
    light_curves: bool = setting(True, "keep each alert's light curve (its prvDiaSources and diaSource) as a FITS "
                                 "table beside its cutouts, for the report's sparklines (--no-light-curves: a "
                                 "file fewer per alert)")
    parquet: bool = setting(False, "also write each day's rows as Parquet, typed, beside the CSV "
                            "(data/lsst_alerts_YYYYMMDD[_INSTANCE].parquet)")
    log_level: str = setting("INFO", "log verbosity", _choice(*LOG_LEVELS), choices=LOG_LEVELS)
    metrics_file: str | None = setting(None, "write Prometheus metrics of each run to this *.prom file "
                                       "(node_exporter textfile collector)", _metrics_path, metavar="PATH")
    # Limits: what one message may cost (see the README's troubleshooting section).
    max_message_bytes: int = setting(64 * MiB, "largest message read from a file",
                                     _between(1024, 2**31), metavar="BYTES")
    max_decompressed_bytes: int = setting(Limits.max_decompressed_bytes, "largest size one message may inflate to",
                                          _between(1024, 2**33), metavar="BYTES")
    max_records_per_message: int = setting(Limits.max_records_per_message, "most alerts one container message may hold",
                                           _between(1, 10**6), metavar="N")
    max_cutout_bytes: int = setting(16 * MiB, "largest cutout written", _between(2880, 2**31),
                                    metavar="BYTES")

    def registry_config(self) -> dict[str, Any] | None:
        """The schema-registry client's settings (``clients.registry_config``), or None."""
        return clients.registry_config(self.kafka_config, self.connect_timeout)

    def librdkafka_config(self) -> dict[str, Any]:
        """What reaches librdkafka (``clients.librdkafka_config``)."""
        return clients.librdkafka_config(self.kafka_config)

    def masked(self) -> dict[str, Any]:
        """The configuration with every secret replaced by '***', for logs."""
        shown = {item.name: getattr(self, item.name) for item in fields(self)}
        shown["kafka_config"] = mask_secrets(self.kafka_config)
        return shown

    def masked_toml(self) -> str:
        """The effective configuration as the TOML a config file holds (``--show-config``),
        secrets masked: it reads back with ``--config`` once the secrets are filled in.
        Settings without a value are listed as comments."""
        shown = self.masked()
        lines = [f"topic = {_toml_value(shown.pop('topics'))}"]
        kafka = shown.pop("kafka_config")
        for name, value in shown.items():
            lines.append(f"# {name}: not set" if value is None else f"{name} = {_toml_value(value)}")
        lines.append("\n[kafka_config]")
        lines += [f"{_toml_value(key)} = {_toml_value(value)}" for key, value in sorted(kafka.items())]
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    """A TOML value: text as a basic string (JSON's escapes are TOML's), numbers, booleans,
    lists of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
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
    env_prefix: str | None = ENV_PREFIX
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


def _settings() -> tuple[Setting, ...]:
    return settings_of(ConsumerConfig)


#: The connection: where the alerts come from. Their defaults are the script's
#: ``kafka_config`` and ``topic`` (README, "Configuration").
CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting("bootstrap_servers", str, "Kafka brokers", _non_empty, "HOST:PORT", None, kafka_key="bootstrap.servers"),
    Setting("topic", str, "topic to read; repeatable (environment: comma-separated)", _non_empty, "TOPIC", None,
            repeatable=True),
    Setting("group_id", str, "consumer group", _non_empty, "GROUP", None, kafka_key="group.id"),
)
SETTINGS: tuple[Setting, ...] = CONNECTION_SETTINGS + _settings()
SETTINGS_BY_NAME = {item.name: item for item in SETTINGS}


# ----------------------------------------------------------------------------- sources
def build_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--config", metavar="FILE", help="TOML configuration file: its top-level keys or its [consumer] table "
        "(env: LSST_CONSUMER_CONFIG)")
    add_setting_arguments(parser, SETTINGS)
    add("--show-config", action="store_true", help="print the effective configuration (secrets masked) and exit")
    add("--show-output-dir", action="store_true", help="print the effective output directory (absolute) and exit")
    return parser


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


def load_config(
    defaults: Mapping[str, Any], args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ConsumerConfig:
    """Merge the four sources, later winning: ``defaults`` (the script's kafka_config,
    topic, output_dir), the TOML file, the environment, the parsed command line."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = copy.deepcopy(dict(defaults))
    config_file = args.config or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        _merge(merged, consumer_table(read_config_file(config_file), config_file), f"config file {config_file}")
    _merge(merged, _from_environment(environ), "environment")
    _merge(merged, _from_arguments(args), "command line")
    return _validated(merged)


def configured_setting(name: str, config_file: str | None = None, environ: Mapping[str, str] | None = None) -> Any:
    """One of the consumer's settings as the consumer would have it, for the tools beside
    it (the report's ``output_dir``): the declared default, the TOML file, the environment,
    later winning, checked as the consumer checks it."""
    environ = os.environ if environ is None else environ
    setting = SETTINGS_BY_NAME[name]
    raw = setting.default
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        raw = consumer_table(read_config_file(config_file), config_file).get(name, raw)
    if environ.get(setting.variable):
        raw = environ[setting.variable]
    return _checked(setting, raw)


#: The tables of the one configuration file, one per part of the pipeline. The consumer's
#: settings are its top-level keys (the file as it always was) or its [consumer] table;
#: the builder reads the others (``alert_pipeline.builder.settings``).
CONSUMER_SECTION = "consumer"
SECTIONS = (CONSUMER_SECTION, "builder", "gcn", "tns", "crossmatch")


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


def consumer_table(document: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The consumer's settings in the file: its top-level keys, then its [consumer] table
    (the later wins). The other tools' sections are theirs and left alone."""
    flat = {key: value for key, value in document.items() if key not in SECTIONS}
    sectioned = section_table(document, CONSUMER_SECTION, path)
    if "kafka_config" in flat and "kafka_config" in sectioned and isinstance(flat["kafka_config"], Mapping) \
            and isinstance(sectioned["kafka_config"], Mapping):
        sectioned["kafka_config"] = {**flat["kafka_config"], **sectioned["kafka_config"]}
    return {**flat, **sectioned}


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
        values[setting.name] = _checked_in(section, setting, raw, from_text)
    return values


def _checked_in(section: str, setting: Setting, raw: Any, from_text: bool) -> Any:
    """``_checked`` for a section's setting: text from the environment or the command line
    is converted first, even for a strict setting; the message names the section."""
    if raw is None:
        return None
    try:
        if setting.strict and from_text:
            raw = _typed(dataclasses.replace(setting, strict=False), raw)
        return _checked(setting, raw)
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
                lines.append(f"{setting.name} = {_toml_value(_masked(value) if setting.secret else value)}")
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
        lines.append(f"# {setting.name} = " + ("" if value is None or value == "" else _toml_value(value)))
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


def kafka_key_from_env(suffix: str) -> str:
    """Confluent's env naming: ``SASL_PASSWORD`` → ``sasl.password``; ``__`` → ``-``;
    ``___`` → ``_`` (e.g. ``SSL_KEY___PASSWORD`` would be ``ssl.key_password``)."""
    return suffix.lower().replace("___", "\0").replace("__", "-").replace("_", ".").replace("\0", "_")


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {"kafka_config": {}}
    for setting in SETTINGS:
        value = environ.get(setting.variable)
        if value:
            found[setting.name] = [part.strip() for part in value.split(",") if part.strip()] \
                if setting.repeatable else value
    for name, value in environ.items():
        for env_prefix, key_prefix in ((KAFKA_ENV_PREFIX, ""), (REGISTRY_ENV_PREFIX, REGISTRY_PREFIX)):
            if name.startswith(env_prefix) and value:
                suffix = name[len(env_prefix):]
                if suffix.endswith("_FILE"):
                    suffix, value = suffix[: -len("_FILE")], _read_secret_file(name, value)
                found["kafka_config"][key_prefix + kafka_key_from_env(suffix)] = value
    return found


def _read_secret_file(variable: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{variable} names {path}, which cannot be read: {exc}") from exc


def _from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for setting in SETTINGS:
        value = getattr(args, setting.name, None)
        if value is not None:
            found[setting.name] = value
    return found


def _merge(into: dict[str, Any], source: Mapping[str, Any], origin: str) -> None:
    for key, value in source.items():
        setting = SETTINGS_BY_NAME.get(key)
        if key == "kafka_config":
            if not isinstance(value, Mapping):
                raise ConfigError(f"kafka_config in the {origin} must be a table of librdkafka settings")
            into.setdefault("kafka_config", {}).update({str(k): v for k, v in value.items()})
        elif setting is not None and setting.kafka_key:
            into.setdefault("kafka_config", {})[setting.kafka_key] = value
        elif setting is not None:
            into[key] = value
        else:
            raise ConfigError(f"unknown setting {key!r} in the {origin}; known settings: topic, kafka_config, "
                              f"{', '.join(SETTINGS_BY_NAME)}")


def _typed(setting: Setting, value: Any) -> Any:
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
    raise ConfigError(f"{setting.name} = {value!r}: expected {'a whole number' if kind is int else kind.__name__}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _control_characters(name: str, value: Any) -> None:
    """Refuse text with control characters (NUL, ESC, BEL, newlines …): no path, topic,
    broker address or name holds one, and they would reach the logs raw."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise ConfigError(f"{name} = {mask_text(value)!r}: contains a control character")


def _checked_kafka_config(kafka: dict[str, Any]) -> dict[str, Any]:
    """librdkafka and registry settings are text, numbers or booleans; a TOML table or
    list (``bootstrap.servers = {a = 1}``) is refused here, naming the key."""
    for key, value in kafka.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"kafka_config {key!r} must be text, a number or a boolean, "
                              f"not a {'table' if isinstance(value, Mapping) else type(value).__name__}")
        if not is_secret_key(key):
            _control_characters(f"kafka_config {key!r}", value)
    return kafka


def _checked(setting: Setting, raw: Any) -> Any:
    """A setting's value, typed and checked (``ConfigError`` naming it when it is not fit)."""
    _control_characters(setting.name, raw)
    value = None if raw is None else _typed(setting, raw)
    problem = setting.check(value) if value is not None and setting.check else None
    if problem:
        raise ConfigError(f"{setting.name} = {raw!r}: {problem}")
    return value


def _validated(merged: dict[str, Any]) -> ConsumerConfig:
    topics = merged.pop("topic", None)
    if isinstance(topics, str):
        topics = [topics]
    if not topics or not isinstance(topics, list) or not all(isinstance(t, str) and t.strip() for t in topics):
        raise ConfigError("no topic configured: set topic in the config file, LSST_CONSUMER_TOPIC or --topic")
    for topic in topics:
        _control_characters("topic", topic)
    kafka = _checked_kafka_config(dict(merged.pop("kafka_config", {})))
    for required in ("bootstrap.servers", "group.id"):
        if not kafka.get(required):
            raise ConfigError(f"kafka_config lacks {required!r}")
    values = {name: _checked(SETTINGS_BY_NAME[name], raw) for name, raw in merged.items()}
    config = ConsumerConfig(kafka_config=kafka, topics=list(topics), **values)
    problem = framing_problem(config.framing, config.schema_version)
    if problem:
        raise ConfigError(problem)
    clients.check_librdkafka(config.kafka_config)
    clients.check_registry(config.kafka_config, config.connect_timeout)
    return config


