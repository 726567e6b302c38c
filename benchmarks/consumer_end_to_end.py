"""The consumer against the local broker: (a) offline path, (b) a real run, (c) --workers 2.

Produces M heavy alerts (v11.1, 30 prvDiaSources + 30 prvDiaForcedSources, three 60×60
CCDData cutouts) into a local Tansu broker, then times in one run:

* (a) the offline decode → write path over the same messages (consumer_decode_write.py);
* (b) ``lsst_alert_consumer.py`` reading the topic and writing everything durably with
  commits, minus its fixed costs (start-up, group join, end detection) measured by a run
  over an empty topic with the same settings;
* (c) the same as (b) with ``--workers 2``;
* a bare confluent-kafka loop that only reads the values, for reference.

    .venv/bin/python benchmarks/consumer_end_to_end.py [--count M]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid

from _common import consumer_command_seconds, consumer_loop_seconds, framed_alerts, produce, two_process_decode_speedup
from confluent_kafka import Consumer, Producer

from devtools.local import start_broker


def consumer_run_seconds(bootstrap: str, topic: str, output_dir: str, *extra: str) -> float:
    """One consumer command over ``topic`` in a group of its own."""
    return consumer_command_seconds(output_dir, *extra, LSST_CONSUMER_BOOTSTRAP_SERVERS=bootstrap,
                                    LSST_CONSUMER_TOPIC=topic, LSST_CONSUMER_GROUP_ID=f"bench-{uuid.uuid4().hex[:8]}")


def bare_read_seconds(bootstrap: str, topic: str, count: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 2000, "heartbeat.interval.ms": 500,
                         "fetch.wait.max.ms": 100})
    consumer.subscribe([topic])
    seen, start = 0, None
    while seen < count:
        for message in consumer.consume(500, timeout=0.5):
            if message.error() is None:
                start = start or time.perf_counter()
                message.value()
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--output-root", default=tempfile.gettempdir(),
                        help="where the outputs go (e.g. /dev/shm to leave this machine's disk out)")
    args = parser.parse_args()
    values = framed_alerts("b: v11.1, 30+30 history", args.count)
    broker = start_broker()
    try:
        topic, empty = f"bench-{uuid.uuid4().hex[:6]}", f"empty-{uuid.uuid4().hex[:6]}"
        produce(broker.bootstrap_servers, topic, values)
        produce(broker.bootstrap_servers, empty, [])
        Producer({"bootstrap.servers": broker.bootstrap_servers}).list_topics(empty, timeout=10)
        with tempfile.TemporaryDirectory(dir=args.output_root) as work:
            offline = consumer_loop_seconds(values, os.path.join(work, "offline"), batch_size=500)
            fixed = consumer_run_seconds(broker.bootstrap_servers, empty, os.path.join(work, "fixed"))
            run = consumer_run_seconds(broker.bootstrap_servers, topic, os.path.join(work, "run1"))
            fixed2 = consumer_run_seconds(broker.bootstrap_servers, empty, os.path.join(work, "fixed2"), "--workers", "2")
            run2 = consumer_run_seconds(broker.bootstrap_servers, topic, os.path.join(work, "run2"), "--workers", "2")
        bare = bare_read_seconds(broker.bootstrap_servers, topic, len(values))
    finally:
        broker.stop()
    a = len(values) / offline
    b = len(values) / max(run - fixed, 1e-9)
    c = len(values) / max(run2 - fixed2, 1e-9)
    print(f"messages: {len(values)} heavy v11.1 alerts ({sum(map(len, values)) / len(values) / 1024:.0f} kB each), "
          f"outputs under {args.output_root}")
    print(f"fixed costs (empty topic): {fixed:.2f} s, with --workers 2: {fixed2:.2f} s")
    print(f"(a) offline decode→write:     {a:8.0f} alerts/s")
    print(f"(b) consumer run:             {b:8.0f} alerts/s   b/a = {b / a:.2f}")
    print(f"(c) consumer run, workers 2:  {c:8.0f} alerts/s   c/a = {c / a:.2f}")
    print(f"bare confluent-kafka read:    {len(values) / bare:8.0f} msgs/s (reference)")
    print(f"ceiling for c/a on this machine: bare fastavro decode in 2 processes is "
          f"{two_process_decode_speedup(values):.2f}x one process")


if __name__ == "__main__":
    main()
