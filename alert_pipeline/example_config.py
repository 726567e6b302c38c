"""``config.example.toml``, generated from the declarations: ``python -m alert_pipeline.example_config``.

The one configuration file of the pipeline: the consumer's ``[consumer]`` table (its
top-level keys, as before, still work) and the builder's tables (``SECTIONS``: ``[builder]``,
``[gcn]``, ``[tns]`` …). Every setting appears with its help and, commented out,
its declared default, so the example never restates a default by hand; a test checks the
shipped file matches.
"""

from __future__ import annotations

import sys

from alert_pipeline.consumer.config import CONNECTION_SETTINGS, SETTINGS
from alert_pipeline.kafka_settings import KAFKA_DEFAULTS
from alert_pipeline.settings import example_lines, toml_value
from alert_pipeline.storehouse.builder.settings import SECTIONS
from alert_pipeline.storehouse.builder.settings import example as builder_example

HEAD = """\
# The pipeline's configuration: lsst_alert_consumer.py and lsst_alert_report.py read
# [consumer] (--config FILE or LSST_CONSUMER_CONFIG; a file whose consumer settings are its
# top-level keys, as before, works too); transient_kind_builder.py reads
# {builder_tables} (--config FILE).
# Generated from the declarations (python -m alert_pipeline.example_config): each setting's
# help, then its default, commented out ("…" where a setting has none: unset unless given).
# Precedence: the defaults < this file < the variables named < the command line.

[consumer]
# Topic(s) to read: a name or a list (env: LSST_CONSUMER_TOPIC; the script's default below).
topic = "lsst-extendedness-filtered"
"""

KAFKA = """
[consumer.kafka_config]
# Any librdkafka setting may go here; these three are the script's defaults.
"bootstrap.servers" = "localhost:9092"
"group.id" = "lsst-alert-consumer"
"auto.offset.reset" = "earliest"

# A Confluent schema registry for Confluent-framed alerts (optional; without it the
# schemas bundled in lsst-alert-packet are used). Never passed to librdkafka.
# "schema.registry.url" = "https://schema-registry.example.org"
# Behind HTTP basic auth: keep the secret out of this file, set
# LSST_CONSUMER_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE=/path (holding user:secret).
# "schema.registry.ssl.ca.location" = "/etc/ssl/certs/registry-ca.pem"

# ANTARES (SASL_SSL / PLAIN). Keep the password out of this file: set
# LSST_CONSUMER_KAFKA_SASL_PASSWORD, or LSST_CONSUMER_KAFKA_SASL_PASSWORD_FILE=/path.
# "security.protocol" = "SASL_SSL"
# "sasl.mechanism" = "PLAIN"
# "sasl.username" = "your-antares-key"

# The consumer's librdkafka defaults (alert_pipeline/consumer/clients.py; see the README's group timing):
"""


def example() -> str:
    """The whole example file."""
    consumer = [setting for setting in SETTINGS if setting not in CONNECTION_SETTINGS]
    defaults = [f"# {toml_value(key)} = {toml_value(value)}" for key, value in KAFKA_DEFAULTS.items()]
    tables = [f"[{section}]" for section in SECTIONS]
    head = HEAD.replace("{builder_tables}", ", ".join(tables[:-1]) + " and " + tables[-1])
    return head + "\n".join(example_lines(consumer)) + "\n" + KAFKA + "\n".join(defaults) + "\n\n" + \
        builder_example()


if __name__ == "__main__":
    sys.stdout.write(example())
