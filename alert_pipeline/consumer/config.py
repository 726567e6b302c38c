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
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from alert_pipeline.consumer import clients
from alert_pipeline.consumer.avro import DECODERS, resolve_decoder
from alert_pipeline.consumer.clients import KAFKA_ENV_PREFIX, REGISTRY_ENV_PREFIX, REGISTRY_PREFIX
from alert_pipeline.consumer.decode import FRAMINGS, framing_problem
from alert_pipeline.consumer.ledger import DEFAULT_WINDOW_DAYS
from alert_pipeline.consumer.limits import Limits
from alert_pipeline.errors import ConfigError
from alert_pipeline.masking import is_secret_key, mask_secrets
from alert_pipeline.settings import (
    CONSUMER_SECTION,
    SECTIONS,
    MiB,
    Setting,
    add_setting_arguments,
    between,
    checked,
    choice,
    control_characters,
    non_empty,
    read_config_file,
    section_table,
    setting,
    settings_of,
    toml_value,
)

ENV_PREFIX = "LSST_CONSUMER_"


def _instance_name(value: str) -> str | None:
    if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        return "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


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


@dataclass
class ConsumerConfig:
    """The effective configuration. Every field after ``topics`` is a setting (see
    ``setting``); ``SETTINGS`` lists them for the parser, the environment and the checks."""

    kafka_config: dict[str, Any]
    topics: list[str]
    output_dir: str = setting("./lsst_alerts", "where data/, cutouts/, quarantine/ and state/ go", non_empty,
                              metavar="DIR")
    max_messages: int | None = setting(None, "stop after N messages", between(1, 2**62), metavar="N")
    idle_timeout: float = setting(60.0, "stop after this long without a message, counted once partitions are "
                                  "assigned", between(0.1, 7 * 86400), metavar="SECONDS")
    max_runtime: float | None = setting(None, "stop after this long in all", between(0.1, 30 * 86400),
                                        metavar="SECONDS")
    connect_timeout: float = setting(30.0, "give up when the broker cannot be reached for this long",
                                     between(0.1, 3600), metavar="SECONDS")
    stop_at_end: bool = setting(True, "stop once every assigned partition is read to its end "
                                "(--no-stop-at-end: keep reading until --idle-timeout)")
    batch_size: int = setting(500, "messages written and committed together", between(1, 100_000),
                              metavar="N")
    workers: int = setting(1, "processes that decode and stage cutouts", between(1, 64), metavar="N")
    framing: str = setting("auto", "message framing (auto: detected per message)", choices=FRAMINGS)  # checked by decode
    decoder: str = setting("auto", "Avro decoder: cavro (faster) or fastavro (the reference); auto = cavro when "
                           "installed", _decoder, choices=DECODERS)
    schema_version: str | None = setting(None, "schema for --framing schemaless, e.g. 11.1", _version,
                                         metavar="X.Y")
    instance_id: str = setting("", "name of this instance when several share an output dir", _instance_name,
                               metavar="NAME")
    ledger_window_days: int = setting(DEFAULT_WINDOW_DAYS, "days of the de-duplication ledger kept: an alert written "
                                      "longer ago than this is written again if it comes back", between(1, 3650),
                                      metavar="DAYS")
    retention_days: int = setting(30, "days of CSV, Parquet, cutout, quarantine and report files --retention "
                                  "keeps", between(1, 36500), metavar="DAYS")
    light_curves: bool = setting(True, "keep each alert's light curve (its prvDiaSources and diaSource) as a FITS "
                                 "table beside its cutouts, for the report's sparklines (--no-light-curves: a "
                                 "file fewer per alert)")
    parquet: bool = setting(False, "also write each day's rows as Parquet, typed, beside the CSV "
                            "(data/lsst_alerts_YYYYMMDD[_INSTANCE].parquet)")
    log_level: str = setting("INFO", "log verbosity", choice(*LOG_LEVELS), choices=LOG_LEVELS)
    metrics_file: str | None = setting(None, "write Prometheus metrics of each run to this *.prom file "
                                       "(node_exporter textfile collector)", _metrics_path, metavar="PATH")
    # Limits: what one message may cost (see the README's troubleshooting section).
    max_message_bytes: int = setting(64 * MiB, "largest message read from a file",
                                     between(1024, 2**31), metavar="BYTES")
    max_decompressed_bytes: int = setting(Limits.max_decompressed_bytes, "largest size one message may inflate to",
                                          between(1024, 2**33), metavar="BYTES")
    max_records_per_message: int = setting(Limits.max_records_per_message, "most alerts one container message may hold",
                                           between(1, 10**6), metavar="N")
    max_cutout_bytes: int = setting(16 * MiB, "largest cutout written", between(2880, 2**31),
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
        lines = [f"topic = {toml_value(shown.pop('topics'))}"]
        kafka = shown.pop("kafka_config")
        for name, value in shown.items():
            lines.append(f"# {name}: not set" if value is None else f"{name} = {toml_value(value)}")
        lines.append("\n[kafka_config]")
        lines += [f"{toml_value(key)} = {toml_value(value)}" for key, value in sorted(kafka.items())]
        return "\n".join(lines) + "\n"


def _settings() -> tuple[Setting, ...]:
    return settings_of(ConsumerConfig, env_prefix=ENV_PREFIX)


#: The connection: where the alerts come from. Their defaults are the script's
#: ``kafka_config`` and ``topic`` (README, "Configuration").
CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting("bootstrap_servers", str, "Kafka brokers", non_empty, "HOST:PORT", None, kafka_key="bootstrap.servers",
            env_prefix=ENV_PREFIX),
    Setting("topic", str, "topic to read; repeatable (environment: comma-separated)", non_empty, "TOPIC", None, env_prefix=ENV_PREFIX,
            repeatable=True),
    Setting("group_id", str, "consumer group", non_empty, "GROUP", None, kafka_key="group.id", env_prefix=ENV_PREFIX),
)


SETTINGS: tuple[Setting, ...] = CONNECTION_SETTINGS + _settings()


SETTINGS_BY_NAME = {item.name: item for item in SETTINGS}


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
    return checked(setting, raw)


#: The tables of the one configuration file, one per part of the pipeline. The consumer's
#: settings are its top-level keys (the file as it always was) or its [consumer] table;
#: the builder reads the others (``alert_pipeline.storehouse.builder.settings``).


def consumer_table(document: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The consumer's settings in the file: its top-level keys, then its [consumer] table
    (the later wins). The other tools' sections are theirs and left alone."""
    flat = {key: value for key, value in document.items() if key not in SECTIONS}
    sectioned = section_table(document, CONSUMER_SECTION, path)
    if "kafka_config" in flat and "kafka_config" in sectioned and isinstance(flat["kafka_config"], Mapping) \
            and isinstance(sectioned["kafka_config"], Mapping):
        sectioned["kafka_config"] = {**flat["kafka_config"], **sectioned["kafka_config"]}
    return {**flat, **sectioned}


def kafka_key_from_env(suffix: str) -> str:
    """Confluent's env naming: ``SASL_PASSWORD`` → ``sasl.password``; ``__`` → ``-``;
    ``___`` → ``_`` (e.g. ``SSL_KEY___PASSWORD`` would be ``ssl.key_password``)."""
    return suffix.lower().replace("___", "\0").replace("__", "-").replace("_", ".").replace("\0", "_")


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {"kafka_config": {}}
    for item in SETTINGS:
        value = environ.get(item.variable)
        if value:
            found[item.name] = [part.strip() for part in value.split(",") if part.strip()] \
                if item.repeatable else value
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
    for item in SETTINGS:
        value = getattr(args, item.name, None)
        if value is not None:
            found[item.name] = value
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


def _checked_kafka_config(kafka: dict[str, Any]) -> dict[str, Any]:
    """librdkafka and registry settings are text, numbers or booleans; a TOML table or
    list (``bootstrap.servers = {a = 1}``) is refused here, naming the key."""
    for key, value in kafka.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"kafka_config {key!r} must be text, a number or a boolean, "
                              f"not a {'table' if isinstance(value, Mapping) else type(value).__name__}")
        if not is_secret_key(key):
            control_characters(f"kafka_config {key!r}", value)
    return kafka


def _validated(merged: dict[str, Any]) -> ConsumerConfig:
    topics = merged.pop("topic", None)
    if isinstance(topics, str):
        topics = [topics]
    if not topics or not isinstance(topics, list) or not all(isinstance(t, str) and t.strip() for t in topics):
        raise ConfigError("no topic configured: set topic in the config file, LSST_CONSUMER_TOPIC or --topic")
    for topic in topics:
        control_characters("topic", topic)
    kafka = _checked_kafka_config(dict(merged.pop("kafka_config", {})))
    for required in ("bootstrap.servers", "group.id"):
        if not kafka.get(required):
            raise ConfigError(f"kafka_config lacks {required!r}")
    values = {name: checked(SETTINGS_BY_NAME[name], raw) for name, raw in merged.items()}
    config = ConsumerConfig(kafka_config=kafka, topics=list(topics), **values)
    problem = framing_problem(config.framing, config.schema_version)
    if problem:
        raise ConfigError(problem)
    clients.check_librdkafka(config.kafka_config)
    clients.check_registry(config.kafka_config, config.connect_timeout)
    return config
