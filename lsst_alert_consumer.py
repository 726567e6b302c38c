#!/usr/bin/env python3
"""LSST Alert Consumer: the filtered alert stream → daily CSV files and FITS cutouts.

Reads LSST alerts (Confluent-framed or container-file Avro, any lsst-alert-packet schema
v3.0–v11.1, or ANTARES locus messages) from Kafka and writes, under ``output_dir``:

    data/lsst_alerts_YYYYMMDD.csv            one row per alert (UTC processing day)
    cutouts/<diaSourceId>_<kind>_<YYYYMMDD>_<HHMMSS>.fits
    quarantine/                              messages that could not be used, with why

Every alert is written exactly once, even across crashes (see alert_pipeline/outputs.py).

Configuration: the defaults below, then a TOML file (--config), then LSST_CONSUMER_*
environment variables, then command-line flags. To add CSV columns, subclass
``LSSTAlertConsumer`` and extend ``process_alert`` (see the README).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from alert_pipeline.config import (
    EXIT_BROKER,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_OUTPUT,
    ConfigError,
    ConsumerConfig,
    build_parser,
    load_config,
)
from alert_pipeline.consumer import AlertConsumer

# Defaults, as the README shows them; override them in a config file, the environment
# or on the command line rather than here.
kafka_config: dict[str, Any] = {
    "bootstrap.servers": "localhost:9092",
    "group.id": "lsst-alert-consumer",
    "auto.offset.reset": "earliest",
}
topic = "lsst-extendedness-filtered"
output_dir = "./lsst_alerts"

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}  the run finished (also with nothing to read, or with quarantined messages)
  {EXIT_FAILURE}  unexpected error (a bug; the traceback is logged)
  {EXIT_CONFIG}  configuration error (also: an input file that cannot be read, another
     consumer of the same instance running on the output directory)
  {EXIT_BROKER}  broker error: unreachable, authentication failed, unknown topic
  {EXIT_OUTPUT}  output error: directory not writable or disk full (that batch not committed)

offline: --from-file FILE... processes message files (.frames, .avro or one framed
message per file) without Kafka."""


class LSSTAlertConsumer(AlertConsumer):
    """The consumer. Extend ``process_alert`` to add columns::

        class MyConsumer(LSSTAlertConsumer):
            def process_alert(self, alert):
                record = super().process_alert(alert)
                dia_source = alert.get("diaSource") or {}
                record["snr"] = dia_source.get("snr")
                record["prv_candidates"] = len(alert.get("prvDiaSources") or [])
                return record
    """

    def process_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """One CSV row (a dict, the README's 16 columns) for one decoded alert.

        ``self.cutout_paths`` holds this alert's cutout paths and ``self.timestamp`` the
        processing time; keys you add become extra columns after the standard ones.
        """
        return super().process_alert(alert)


def main(argv: Sequence[str] | None = None, consumer_class: type[AlertConsumer] = LSSTAlertConsumer) -> int:
    """Run the consumer; returns the exit code (see EXIT_CODES_HELP)."""
    parser = build_parser("lsst_alert_consumer.py", __doc__.split("\n\n")[0], EXIT_CODES_HELP)
    parser.add_argument("--from-file", nargs="+", metavar="FILE", help="process message files instead of Kafka")
    args = parser.parse_args(argv)
    try:
        config = load_config({"kafka_config": kafka_config, "topic": topic, "output_dir": output_dir}, args)
    except ConfigError as exc:
        print(f"LSST Alert Consumer: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S%z")
    if args.show_config:
        print(config.masked())
        return EXIT_OK
    if args.show_output_dir:
        print(os.path.abspath(config.output_dir))
        return EXIT_OK
    return _run(config, args.from_file, consumer_class)


def _run(config: ConsumerConfig, files: list[str] | None, consumer_class: type[AlertConsumer]) -> int:
    """Build the source and the consumer, run them, and turn every outcome into an exit code."""
    from alert_pipeline.kafka_source import BrokerError, KafkaSource, describe
    from alert_pipeline.runner import run
    from alert_pipeline.sources import FileSource, InputError
    from alert_pipeline.store import InstanceBusyError

    log = logging.getLogger("lsst_alert_consumer")
    log.info("LSST Alert Consumer starting: %s", describe(config) if not files else f"files={len(files)}")
    try:
        source = FileSource(files, config.max_message_bytes) if files else KafkaSource(config)
        app = consumer_class(config)
    except (InputError, InstanceBusyError) as exc:
        log.error("LSST Alert Consumer failed: %s", exc)
        return EXIT_CONFIG
    except OSError as exc:
        log.error("LSST Alert Consumer failed: output directory %s is not usable: %s", config.output_dir, exc)
        return EXIT_OUTPUT
    try:
        summary = run(app, source, _test_clock())
        if files:
            log.info("LSST Alert Consumer finished: written=%d duplicates_skipped=%d quarantined=%d cutouts=%d "
                     "files=%s", summary.written, summary.duplicates, summary.quarantined, summary.cutouts,
                     ",".join(sorted(summary.csv_files)))
        else:
            log.info("LSST Alert Consumer finished: %s", summary.line())
        return EXIT_OK
    except BrokerError as exc:
        log.error("LSST Alert Consumer failed: %s", exc)
        return exc.exit_code
    except OSError as exc:
        log.error("LSST Alert Consumer failed: cannot write output (%s); the batch was not committed and will "
                  "be read again next run. Check free space and permissions of %s.", exc, config.output_dir)
        return EXIT_OUTPUT
    except Exception:  # noqa: BLE001 - last resort: say so, with the traceback
        log.exception("LSST Alert Consumer failed with an unexpected error")
        return EXIT_FAILURE
    finally:
        app.close()


def _test_clock():  # noqa: ANN202 - a test hook, None in production
    """The tests' movable clock when ``LSST_CONSUMER_TEST_START_TIME`` is set, else None."""
    if not os.environ.get("LSST_CONSUMER_TEST_START_TIME"):
        return None
    from alert_pipeline.devtools.clock import clock_from_environment

    return clock_from_environment()


if __name__ == "__main__":
    sys.exit(main())
