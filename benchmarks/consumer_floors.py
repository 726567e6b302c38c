"""The consumer against its floors, in one run: decode (fastavro and the chosen decoder),
a bare 3-file cutout write on the output filesystem, then the offline (--from-file) and
Kafka paths, with the output on tmpfs and on disk.

Targets (issue "past the fastavro floor"), printed as ratios measured side by side:

* Kafka path, output on tmpfs: >= 1.3x the bare fastavro decode rate of the same messages;
* Kafka path, output on disk: >= 0.8x min(bare fastavro decode, bare 3-file write);
* offline path within 10 % of the Kafka path, or faster.

Each consumer run's fixed costs (start-up, group join, end detection) are measured by the
same run over an empty topic / an empty file and subtracted.

    .venv/bin/python benchmarks/consumer_floors.py [--count 3000] [--case "b: v11.1, 30+30 history"] [--repeat 2] [--output tmpfs disk]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable

from _common import CASES, bare_decode_seconds, consumer_command_seconds, framed_alerts, produce
from confluent_kafka import Producer

from alert_pipeline.consumer.avro import resolve_decoder
from alert_pipeline.consumer.decode import AlertDecoder
from alert_pipeline.consumer.sources import write_frames_file
from alert_pipeline.durable import sync_filesystem
from devtools.local import start_broker


def decoder_seconds(values: list[bytes], name: str) -> float:
    """The consumer's own decoder alone (framing, schema lookup, record) over the messages."""
    decoder = AlertDecoder(decoder=name)
    decoder.decode(values[0])  # schemas parsed before the clock starts
    start = time.perf_counter()
    for value in values:
        decoder.decode(value)
    return time.perf_counter() - start


def disk_floor_seconds(values: list[bytes], directory: str) -> float:
    """The three cutouts of every alert written as files (temp + rename), one syncfs per 500."""
    cutouts = [[alert[field] for field in ("cutoutScience", "cutoutTemplate", "cutoutDifference")]
               for alert in (AlertDecoder().decode(value)[0] for value in values)]
    os.makedirs(os.path.join(directory, "tmp"))
    os.makedirs(os.path.join(directory, "out"))
    start = time.perf_counter()
    for index, parts in enumerate(cutouts):
        for kind, data in enumerate(parts):
            temp = os.path.join(directory, "tmp", f"{index}_{kind}")
            with open(temp, "wb") as handle:
                handle.write(data)
            os.replace(temp, os.path.join(directory, "out", f"{index}_{kind}.fits"))
        if index % 500 == 499:
            sync_filesystem(directory)
    sync_filesystem(directory)
    return time.perf_counter() - start


def rates_on(work: str, values: list[bytes], repeat: int, topic: str, empty: str,
             kafka: dict[str, str]) -> tuple[float, ...]:
    """alerts/s with the output in ``work``: the 3-file floor, the offline path, the Kafka
    path with one and with two worker processes (consumer runs net of their fixed costs),
    each the best of ``repeat`` rounds; a round runs all four in turn, so a disk that slows
    down or speeds up during the benchmark favours none of them."""
    frames, nothing = os.path.join(work, "night.frames"), os.path.join(work, "empty.frames")
    write_frames_file(frames, values)
    write_frames_file(nothing, [])
    runs = iter(range(1_000_000))

    def fresh(name: str) -> str:
        return os.path.join(work, f"{name}-{next(runs)}")

    def kafka_run(topic_name: str, *flags: str) -> float:
        return consumer_command_seconds(fresh("kafka"), *flags, LSST_CONSUMER_TOPIC=topic_name,
                                LSST_CONSUMER_GROUP_ID=f"b-{uuid.uuid4().hex[:8]}", **kafka)

    measurements: list[Callable[[], float]] = [
        lambda: disk_floor_seconds(values, fresh("floor")),
        lambda: consumer_command_seconds(fresh("offline"), "--from-file", frames)
        - consumer_command_seconds(fresh("offline0"), "--from-file", nothing),
        lambda: kafka_run(topic) - kafka_run(empty),
        lambda: kafka_run(topic, "--workers", "2") - kafka_run(empty, "--workers", "2"),
    ]
    rounds = [[measure() for measure in measurements] for _ in range(repeat)]
    return tuple(len(values) / min(seconds) for seconds in zip(*rounds, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--case", default="b: v11.1, 30+30 history", choices=list(CASES))
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of every measurement, the best one counts (default %(default)s): this VM's "
                             "speed changes from minute to minute, and floors and paths are treated alike")
    parser.add_argument("--output", nargs="+", choices=("tmpfs", "disk"), default=["tmpfs", "disk"],
                        help="where the consumer runs write (default: both)")
    args = parser.parse_args()
    values = framed_alerts(args.case, args.count)
    chosen = resolve_decoder("auto")

    def best(seconds: Callable[[], float]) -> float:
        return min(seconds() for _ in range(args.repeat))

    fast = len(values) / best(lambda: bare_decode_seconds(values))
    ours = len(values) / best(lambda: decoder_seconds(values, chosen))
    print(f"{len(values)} messages, case {args.case!r}, {sum(map(len, values)) / len(values) / 1024:.0f} kB each; "
          f"decoder auto = {chosen}")
    print(f"  decode floor, bare fastavro.schemaless_reader   {fast:8.0f} alerts/s")
    print(f"  the consumer's decoder ({chosen:8})              {ours:8.0f} alerts/s   {ours / fast:.2f}x fastavro")
    roots = {label: root for label, root in (("tmpfs", "/dev/shm"), ("disk", tempfile.gettempdir()))
             if label in args.output}
    broker = start_broker()
    try:
        topic, empty = f"floors-{uuid.uuid4().hex[:6]}", f"empty-{uuid.uuid4().hex[:6]}"
        produce(broker.bootstrap_servers, topic, values)
        produce(broker.bootstrap_servers, empty, [])
        Producer({"bootstrap.servers": broker.bootstrap_servers}).list_topics(empty, timeout=10)  # creates it
        kafka = dict(LSST_CONSUMER_BOOTSTRAP_SERVERS=broker.bootstrap_servers)
        for label, root in roots.items():
            if not os.path.isdir(root):
                continue
            with tempfile.TemporaryDirectory(dir=root) as work:
                disk, offline, kafka_rate, kafka2_rate = rates_on(work, values, args.repeat, topic, empty, kafka)
            floor = min(fast, disk)
            print(f"output on {label} ({root}):")
            print(f"  3-file write floor                              {disk:8.0f} alerts/s")
            print(f"  offline path (--from-file)                      {offline:8.0f} alerts/s   "
                  f"{offline / kafka_rate:.2f}x the Kafka path (target >= 0.90)")
            print(f"  Kafka path                                      {kafka_rate:8.0f} alerts/s   "
                  f"{kafka_rate / fast:.2f}x bare fastavro, {kafka_rate / floor:.2f}x min(floors)"
                  + ("  (target >= 1.3x bare fastavro)" if label == "tmpfs" else "  (target >= 0.8x min(floors))"))
            print(f"  Kafka path, --workers 2                         {kafka2_rate:8.0f} alerts/s   "
                  f"{kafka2_rate / fast:.2f}x bare fastavro, {kafka2_rate / floor:.2f}x min(floors)", flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
