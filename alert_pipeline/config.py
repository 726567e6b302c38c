"""The consumer's configuration: script defaults → TOML file → environment → command line.

The later source wins. Any librdkafka setting passes through in ``kafka_config``
(``security.protocol``, ``sasl.*``, ``ssl.*`` …). Secrets may come from the TOML file,
from ``LSST_CONSUMER_KAFKA_<KEY>`` variables or from files named by
``LSST_CONSUMER_KAFKA_<KEY>_FILE``; ``masked()`` hides them in anything that is shown.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .decode import FRAMINGS

# Exit codes, documented in --help and the README.
EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected error (a bug): the traceback is in the log
EXIT_CONFIG = 2  # configuration error (bad option, unreadable config file)
EXIT_BROKER = 3  # broker unreachable, authentication failed, unknown topic
EXIT_OUTPUT = 4  # output not writable (permissions, disk full): the batch was not committed

ENV_PREFIX = "LSST_CONSUMER_"
KAFKA_ENV_PREFIX = "LSST_CONSUMER_KAFKA_"
REGISTRY_KEY = "schema.registry.url"
_SECRET = re.compile(r"password|secret|user\.info|token|(^|\.)key$", re.IGNORECASE)

#: Consumer settings chosen for cron runs; the user's kafka_config may override them.
#: session.timeout.ms: a group join waits up to half the session timeout on some brokers
#: (measured on the local Tansu broker: 3.6 s at 6 s, 5.6 s at 10 s, ~23 s at librdkafka's
#: 45 s default), and after a crash the next run waits one session timeout for the dead
#: member's partitions. 10 s is above Apache Kafka's 6 s minimum and keeps both short.
KAFKA_DEFAULTS: dict[str, Any] = {
    "session.timeout.ms": 10000,
    "heartbeat.interval.ms": 2000,
    "fetch.wait.max.ms": 100,
    "allow.auto.create.topics": False,
}
#: Settings the delivery guarantees depend on; these always win.
KAFKA_REQUIRED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
}


def clock_from_environment(environ: Mapping[str, str] | None = None) -> Callable[[], dt.datetime] | None:
    """``LSST_CONSUMER_TEST_START_TIME`` (ISO 8601) makes the run's clock start there and
    tick normally: for testing day changes and for replaying a night. None when unset."""
    environ = os.environ if environ is None else environ
    start_text = environ.get(f"{ENV_PREFIX}TEST_START_TIME")
    if not start_text:
        return None
    start = dt.datetime.fromisoformat(start_text.replace("Z", "+00:00")).astimezone(dt.UTC)
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


NUMERIC_SETTINGS: dict[str, type] = {
    "idle_timeout": float, "connect_timeout": float, "max_runtime": float,
    "max_messages": int, "batch_size": int, "workers": int, "ledger_window_days": int,
}


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass
class ConsumerConfig:
    kafka_config: dict[str, Any]
    topics: list[str]
    output_dir: str
    max_messages: int | None = None
    idle_timeout: float = 60.0
    max_runtime: float | None = None
    connect_timeout: float = 30.0
    stop_at_end: bool = True
    batch_size: int = 500
    workers: int = 1
    framing: str = "auto"
    schema_version: str | None = None
    instance_id: str = ""
    ledger_window_days: int = 7
    log_level: str = "INFO"
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def registry_url(self) -> str | None:
        return self.kafka_config.get(REGISTRY_KEY)

    def librdkafka_config(self) -> dict[str, Any]:
        """What reaches librdkafka: defaults, the user's settings (minus the schema
        registry URL, which is ours), then the settings exactly-once depends on."""
        config = dict(KAFKA_DEFAULTS)
        config.update({key: value for key, value in self.kafka_config.items() if key != REGISTRY_KEY})
        config.update(KAFKA_REQUIRED)
        return config

    def masked(self) -> dict[str, Any]:
        """The configuration with every secret replaced by '***', for logs."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["kafka_config"] = mask_secrets(self.kafka_config)
        return shown


def mask_secrets(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {key: ("***" if _SECRET.search(key) and value else value) for key, value in settings.items()}


def build_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--config", metavar="FILE", help="TOML configuration file (env: LSST_CONSUMER_CONFIG)")
    add("--bootstrap-servers", metavar="HOST:PORT", help="Kafka brokers (env: LSST_CONSUMER_BOOTSTRAP_SERVERS)")
    add("--topic", action="append", metavar="TOPIC", help="topic to read; repeatable (env: LSST_CONSUMER_TOPIC, comma-separated)")
    add("--group-id", help="consumer group (env: LSST_CONSUMER_GROUP_ID)")
    add("--output-dir", metavar="DIR", help="where data/, cutouts/ and quarantine/ go (env: LSST_CONSUMER_OUTPUT_DIR)")
    add("--max-messages", type=int, metavar="N", help="stop after N messages")
    add("--idle-timeout", type=float, metavar="SECONDS", help="stop after this long without a message, counted once partitions are assigned (env: LSST_CONSUMER_IDLE_TIMEOUT; default 60)")
    add("--max-runtime", type=float, metavar="SECONDS", help="stop after this long in all")
    add("--connect-timeout", type=float, metavar="SECONDS", help="give up when the broker cannot be reached for this long (env: LSST_CONSUMER_CONNECT_TIMEOUT; default 30)")
    add("--no-stop-at-end", dest="stop_at_end", action="store_false", default=None, help="keep reading after catching up (until --idle-timeout)")
    add("--batch-size", type=int, metavar="N", help="messages written and committed together (default 500)")
    add("--workers", type=int, metavar="N", help="processes that decode and stage cutouts (default 1)")
    add("--framing", choices=FRAMINGS, help="message framing (default auto-detect)")
    add("--schema-version", metavar="X.Y", help="schema for --framing schemaless")
    add("--instance-id", metavar="NAME", help="name of this instance when several share an output dir (env: LSST_CONSUMER_INSTANCE_ID)")
    add("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log verbosity (env: LSST_CONSUMER_LOG_LEVEL)")
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
        _merge(merged, _read_toml(config_file))
    _merge(merged, _from_environment(environ))
    _merge(merged, _from_arguments(args))
    return _validated(merged)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {"kafka_config": {}}
    simple = {
        "BOOTSTRAP_SERVERS": ("kafka_config", "bootstrap.servers"),
        "GROUP_ID": ("kafka_config", "group.id"),
        "OUTPUT_DIR": (None, "output_dir"),
        "IDLE_TIMEOUT": (None, "idle_timeout"),
        "CONNECT_TIMEOUT": (None, "connect_timeout"),
        "INSTANCE_ID": (None, "instance_id"),
        "LOG_LEVEL": (None, "log_level"),
        "SCHEMA_REGISTRY_URL": ("kafka_config", REGISTRY_KEY),
    }
    for suffix, (section, key) in simple.items():
        value = environ.get(ENV_PREFIX + suffix)
        if value:
            (found[section] if section else found)[key] = value
    if environ.get(f"{ENV_PREFIX}TOPIC"):
        found["topic"] = [topic.strip() for topic in environ[f"{ENV_PREFIX}TOPIC"].split(",") if topic.strip()]
    for name, value in environ.items():
        if not name.startswith(KAFKA_ENV_PREFIX):
            continue
        key = name[len(KAFKA_ENV_PREFIX) :]
        if key.endswith("_FILE"):
            key, value = key[: -len("_FILE")], _read_secret_file(name, value)
        found["kafka_config"][key.lower().replace("_", ".")] = value
    return found


def _read_secret_file(variable: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"{variable} names {path}, which cannot be read: {exc.strerror}") from exc


def _from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {"kafka_config": {}}
    if args.bootstrap_servers:
        found["kafka_config"]["bootstrap.servers"] = args.bootstrap_servers
    if args.group_id:
        found["kafka_config"]["group.id"] = args.group_id
    if args.topic:
        found["topic"] = args.topic
    for name in ("output_dir", "max_messages", "idle_timeout", "max_runtime", "connect_timeout", "stop_at_end",
                 "batch_size", "workers", "framing", "schema_version", "instance_id", "log_level"):
        value = getattr(args, name, None)
        if value is not None:
            found[name] = value
    return found


def _merge(into: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if key == "kafka_config":
            into.setdefault("kafka_config", {}).update(value)
        else:
            into[key] = value


def _validated(merged: dict[str, Any]) -> ConsumerConfig:
    topics = merged.pop("topic", None)
    if isinstance(topics, str):
        topics = [topics]
    if not topics:
        raise ConfigError("no topic configured: set topic in the config file, LSST_CONSUMER_TOPIC or --topic")
    kafka = {str(key): value for key, value in merged.pop("kafka_config", {}).items()}
    for required in ("bootstrap.servers", "group.id"):
        if not kafka.get(required):
            raise ConfigError(f"kafka_config lacks {required!r}")
    known = {f.name for f in fields(ConsumerConfig)} - {"kafka_config", "topics", "extras"}
    extras = {key: merged.pop(key) for key in list(merged) if key not in known}
    try:
        config = ConsumerConfig(kafka_config=kafka, topics=list(topics), extras=extras, **merged)
        for name, kind in NUMERIC_SETTINGS.items():  # the environment gives text
            value = getattr(config, name)
            if value is not None:
                setattr(config, name, kind(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    if config.workers < 1 or config.batch_size < 1:
        raise ConfigError("workers and batch_size must be at least 1")
    if config.framing not in FRAMINGS:
        raise ConfigError(f"framing must be one of {', '.join(FRAMINGS)}")
    if config.framing == "schemaless" and not config.schema_version:
        raise ConfigError("framing 'schemaless' needs schema_version (e.g. 11.1)")
    return config

