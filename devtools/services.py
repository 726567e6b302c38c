"""Local services for trying the pipeline on your own alerts (``scripts/local_services.sh``).

``run DIR`` starts the embedded Kafka-protocol broker (Tansu) and PostgreSQL (its data in
``DIR/pgdata``, kept across restarts), creates the consumer's default topic, writes
``DIR/services.env`` (the variables the consumer, the builder and the tests read) and stays
up until SIGTERM or SIGINT, then stops both and removes the file. ``produce DIR FILE...``
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


def run(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    broker = start_broker()
    try:
        with postgres_server(str(directory)) as database_url:
            _create_topic(broker.bootstrap_servers)
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


def _create_topic(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(TOPIC, num_partitions=1)])[TOPIC].result(timeout=30)


def produce(directory: Path, files: list[str]) -> int:
    from confluent_kafka import Producer

    from alert_pipeline.sources import read_message_files

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
