"""Local services for trying the pipeline on your own alerts (``scripts/local_services.sh``).

``run DIR`` starts the embedded Kafka-protocol broker (Tansu) and PostgreSQL (its data in
``DIR/pgdata``, kept across restarts), creates the consumer's default topic, writes sample
inputs for the README's "Try your own alerts" steps when they are not there yet
(``DIR/night.frames``: a night of LSST alerts; ``DIR/fink_latests.json``: Fink alerts for
``load-fink``), then ``DIR/services.env`` (the variables the consumer, the builder and the
tests read) and stays up until SIGTERM or SIGINT, then stops both and removes the file. ``produce DIR FILE...``
publishes the messages of alert files (``.frames``, ``.avro`` container files, or one message
per file) to the topic, exactly the bytes the consumer would read from them with --from-file.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from .local import postgres_server, start_broker

TOPIC = "lsst-extendedness-filtered"
ENV_FILE = "services.env"
#: The sample inputs ``run`` leaves in DIR (the README's commands name them).
SAMPLE_ALERTS, SAMPLE_FINK = "night.frames", "fink_latests.json"
SAMPLE_ALERT_COUNT = 40


def run(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    broker = start_broker()
    try:
        with postgres_server(str(directory)) as database_url:
            _create_topic(broker.bootstrap_servers)
            write_samples(directory)
            settings = {"LSST_CONSUMER_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "LSST_CONSUMER_TOPIC": TOPIC,
                        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "DATABASE_URL": database_url,
                        "TEST_DATABASE_URL": database_url}
            env_file = directory / ENV_FILE
            temp = env_file.with_suffix(".tmp")
            temp.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
            os.replace(temp, env_file)
            print(f"local services up: Kafka {broker.bootstrap_servers} (topic {TOPIC}), PostgreSQL {database_url}",
                  flush=True)
            try:
                stopped.wait()
            finally:
                env_file.unlink(missing_ok=True)
    finally:
        broker.stop()
    print("local services stopped", flush=True)
    return 0


def write_samples(directory: Path) -> None:
    """The sample inputs, each written once (a user's edited copy is never replaced): alerts
    of the current schema with cutouts, some Solar-System ones, and a small Fink roster."""
    import json

    from alert_pipeline.consumer.sources import write_frames_file
    from alert_pipeline.durable import write_atomically

    from . import fink_samples
    from .factory import AlertFactory

    alerts = directory / SAMPLE_ALERTS
    if not alerts.exists():
        factory = AlertFactory("11.1", seed=2026)
        temp = alerts.with_suffix(".tmp")
        write_frames_file(str(temp), [factory.frame(factory.alert(cutout_size=30, solar_system=index % 8 == 7))
                                      for index in range(SAMPLE_ALERT_COUNT)])
        os.replace(temp, alerts)
    fink = directory / SAMPLE_FINK
    if not fink.exists():
        roster = fink_samples.Composition(single={"sn": 6, "kilonova": 2, "unknown": 10}, cross=[],
                                          solar_system_objects=4, mixed_with_solar_system=1)
        write_atomically(str(fink), json.dumps(fink_samples.dataset(roster, seed=1)).encode())


def _create_topic(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(TOPIC, num_partitions=1)])[TOPIC].result(timeout=30)


def produce(directory: Path, files: list[str]) -> int:
    from confluent_kafka import Producer

    from alert_pipeline.consumer.sources import read_message_files
    env = dict(line.split("=", 1) for line in (directory / ENV_FILE).read_text().splitlines() if "=" in line)
    producer = Producer({"bootstrap.servers": env["LSST_CONSUMER_BOOTSTRAP_SERVERS"], "message.max.bytes": 67108864})
    sent = 0
    for message in read_message_files(files, 64 * 1024 * 1024):
        if message.value is None or message.problem:
            print(f"skipped {message.origin}: {message.problem}", file=sys.stderr)
            continue
        producer.produce(env["LSST_CONSUMER_TOPIC"], message.value)
        producer.poll(0)
        sent += 1
    left = producer.flush(30)
    print(f"published {sent - left} messages to {env['LSST_CONSUMER_TOPIC']} at "
          f"{env['LSST_CONSUMER_BOOTSTRAP_SERVERS']}")
    return 0 if left == 0 else 1


if __name__ == "__main__":
    command, where, *rest = sys.argv[1:]
    sys.exit(run(Path(where)) if command == "run" else produce(Path(where), rest))
