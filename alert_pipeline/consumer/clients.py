"""The Kafka and schema-registry clients' configuration, from the user's ``kafka_config``:
what librdkafka gets, what confluent-kafka's ``SchemaRegistryClient`` gets, and both
libraries' verdict on them before the run starts.

Plain dicts in, plain dicts out: the consumer's configuration (``alert_pipeline.consumer.config``)
calls these; nothing here knows about it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from alert_pipeline.errors import ConfigError
from alert_pipeline.kafka_settings import KAFKA_DEFAULTS, KAFKA_REQUIRED
from alert_pipeline.masking import mask_text

KAFKA_ENV_PREFIX = "LSST_CONSUMER_KAFKA_"
REGISTRY_ENV_PREFIX = "LSST_CONSUMER_SCHEMA_REGISTRY_"
REGISTRY_PREFIX = "schema.registry."
#: SchemaRegistryClient settings that must be numbers (text from the environment is converted).
REGISTRY_NUMBERS = ("timeout", "cache.capacity", "cache.latest.ttl.sec", "max.retries", "retries.wait.ms",
                    "retries.max.wait.ms")

def librdkafka_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    """What reaches librdkafka: defaults, the user's settings (minus the schema registry's,
    which are ours), then the settings exactly-once depends on."""
    config = dict(KAFKA_DEFAULTS)
    config.update({key: value for key, value in kafka_config.items() if not key.startswith(REGISTRY_PREFIX)})
    config.update(KAFKA_REQUIRED)
    return config


def registry_config(kafka_config: Mapping[str, Any], connect_timeout: float) -> dict[str, Any] | None:
    """confluent-kafka's ``SchemaRegistryClient`` configuration: every ``schema.registry.*``
    setting without its prefix, or None without a registry URL.

    ``basic.auth.credentials.source`` is read here, as Confluent's Java clients read it:
    ``USER_INFO`` and ``URL`` are what the Python client does anyway; ``SASL_INHERIT`` uses
    the Kafka ``sasl.username``/``sasl.password``. Requests time out after
    ``connect_timeout`` unless ``schema.registry.timeout`` says otherwise (the client's own
    default is to wait forever)."""
    settings = {key[len(REGISTRY_PREFIX):]: value for key, value in kafka_config.items()
                if key.startswith(REGISTRY_PREFIX)}
    if not settings.get("url"):
        return None
    source = str(settings.pop("basic.auth.credentials.source", "USER_INFO")).upper()
    if source == "SASL_INHERIT":
        settings["basic.auth.user.info"] = (f"{kafka_config.get('sasl.username', '')}:"
                                            f"{kafka_config.get('sasl.password', '')}")
    elif source not in ("USER_INFO", "URL"):
        raise ConfigError(f"schema.registry.basic.auth.credentials.source = {source!r}: must be USER_INFO, "
                          "URL or SASL_INHERIT")
    for key in REGISTRY_NUMBERS:
        if isinstance(settings.get(key), str):
            try:
                settings[key] = float(settings[key]) if "." in settings[key] else int(settings[key])
            except ValueError:
                raise ConfigError(f"schema.registry.{key} = {settings[key]!r}: expected a number") from None
    settings.setdefault("timeout", connect_timeout)
    return settings


def check_registry(kafka_config: Mapping[str, Any], connect_timeout: float) -> None:
    """confluent-kafka's verdict on the ``schema.registry.*`` settings, now rather than at
    the first Confluent-framed message (building a client connects to nothing)."""
    stray = [key for key in kafka_config if key.startswith(REGISTRY_PREFIX)]
    registry = registry_config(kafka_config, connect_timeout)
    if registry is None:
        if stray:
            raise ConfigError(f"{', '.join(sorted(stray))} given without schema.registry.url "
                              f"(or {REGISTRY_ENV_PREFIX}URL)")
        return
    from confluent_kafka.schema_registry import SchemaRegistryClient

    for key in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"):
        path = registry.get(key)
        if isinstance(path, str) and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ConfigError(f"schema.registry.{key} = {path!r}: cannot read that file")
    try:
        SchemaRegistryClient(registry)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"schema registry settings are not valid: {mask_text(str(exc))}") from None
    except OSError as exc:  # ssl.* files that cannot be read
        raise ConfigError(f"schema registry TLS settings: cannot read {exc.filename or 'a file'}: "
                          f"{exc.strerror or exc}; check schema.registry.ssl.*") from None


def check_librdkafka(kafka_config: Mapping[str, Any]) -> None:
    """librdkafka's own verdict on every key and value, now rather than mid-run (creating a
    consumer object connects to nothing until it is used). A setting this build of
    librdkafka cannot serve ("Failed to create consumer: no provider for SASL mechanism …")
    is left to the run, which reports it as a broker error."""
    from confluent_kafka import Consumer, KafkaException

    try:
        Consumer({**librdkafka_config(kafka_config), "log_level": 0}).close()  # a check: no log lines
    except (KafkaException, TypeError, ValueError) as exc:
        detail = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        if not detail.startswith("Failed to create"):
            raise ConfigError(f"kafka_config is not valid for librdkafka: {mask_text(detail)}") from None
