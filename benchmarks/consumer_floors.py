"""The consumer's Kafka path against its floors, in rounds, each round's floors measured
right beside its consumer runs; with the CPU each alert costs and Rubin's rate beside it.

Each round, with the output on tmpfs and then on disk:

* the decode floor: the consumer's own decoder (cavro when installed) over the messages,
  nothing else;
* the Kafka path: ``lsst_alert_consumer.py`` reading the topic and writing everything
  durably with commits (light curves on, the default), minus its fixed costs (start-up,
  group join, end detection), measured by the same run over an empty topic;
* the write floor: the same 4 files per alert (three cutouts and the light-curve table,
  made before the clock starts) written as new files and renamed into place, one
  ``syncfs`` per 500 alerts, as the consumer's batches do.

Targets (issue 39), each the median of the rounds' ratios: Kafka path on tmpfs ≥ 0.8×
the decode floor; on disk ≥ 0.8× min(decode floor, write floor). The machine's speed
drifts from minute to minute (other jobs share its cores), so each round's ratio uses
that round's floors and the spread of the rounds is printed.

The CPU the consumer spends per alert (every thread, net of the empty run's) barely
depends on how busy the machine is: it gives alerts/s/core, and with Rubin's rate
(DMTN-102: 10,000 alerts a visit, a visit every ~40 s, 10 million a night) the cores a
night needs; the bytes written per alert give the disk a night needs.

    .venv/bin/python benchmarks/consumer_floors.py [--count 3000] [--case "b: v11.1, 30+30 history"] [--rounds 3] [--output tmpfs disk]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
import uuid

from _common import (
    CASES,
    RUBIN_ALERTS_PER_NIGHT,
    RUBIN_ALERTS_PER_VISIT,
    RUBIN_CASES,
    RUBIN_SECONDS_PER_VISIT,
    bare_decode_seconds,
    consumer_command_cost,
    framed_alerts,
    produce,
)
from confluent_kafka import Producer

from alert_pipeline.consumer.avro import resolve_decoder
from alert_pipeline.consumer.cutouts import cutout_name
from alert_pipeline.consumer.decode import AlertDecoder
from alert_pipeline.consumer.lightcurve import history_points, lightcurve_fits
from alert_pipeline.consumer.records import CUTOUT_FIELDS, LIGHTCURVE, dia_object_id
from alert_pipeline.durable import create_new, sync_filesystem
from devtools.local import start_broker

BATCH = 500  # alerts per syncfs in the write floor: the consumer's default batch size


def decoder_cost(values: list[bytes], name: str) -> tuple[float, float]:
    """Wall and CPU seconds of the consumer's own decoder alone (framing, schema lookup,
    record) over the messages."""
    decoder = AlertDecoder(decoder=name)
    decoder.decode(values[0])  # schemas parsed before the clock starts
    wall, cpu = time.perf_counter(), time.process_time()
    for value in values:
        decoder.decode(value)
    return time.perf_counter() - wall, time.process_time() - cpu


def alert_files(values: list[bytes]) -> list[list[tuple[str, bytes]]]:
    """Per alert, the 4 files the consumer writes: its cutouts and its light-curve table."""
    stamp = dt.datetime(2026, 12, 7, 3, 0, 0, tzinfo=dt.UTC)
    files = []
    for alert in (AlertDecoder().decode(value)[0] for value in values):
        source_id = alert["diaSource"]["diaSourceId"]
        table = lightcurve_fits(history_points(alert), dia_object_id(alert), source_id)
        files.append([(cutout_name(source_id, kind, stamp), alert[field]) for kind, field in CUTOUT_FIELDS.items()]
                     + [(cutout_name(source_id, LIGHTCURVE, stamp), table)])
    return files


def write_floor_seconds(files: list[list[tuple[str, bytes]]], directory: str) -> float:
    """Every alert's files written as new files in a staging directory and renamed into
    place, one syncfs per BATCH alerts: the least a durable consumer must do."""
    staging, final = os.path.join(directory, "incoming"), os.path.join(directory, "cutouts")
    os.makedirs(staging)
    os.makedirs(final)
    start = time.perf_counter()
    for index, alert in enumerate(files):
        for name, data in alert:
            create_new(os.path.join(staging, name), data)
            os.replace(os.path.join(staging, name), os.path.join(final, name))
        if index % BATCH == BATCH - 1:
            sync_filesystem(directory)
    sync_filesystem(directory)
    return time.perf_counter() - start


def output_bytes(directory: str) -> dict[str, tuple[int, int]]:
    """(bytes, bytes allocated on the filesystem) of a run's CSV files, cutouts and light curves."""
    sizes = {"csv": [0, 0], "cutouts": [0, 0], "light curves": [0, 0]}
    for folder, kind in (("data", "csv"), ("cutouts", None)):
        for entry in os.scandir(os.path.join(directory, folder)):
            stat = entry.stat(follow_symlinks=False)
            part = kind or ("light curves" if f"_{LIGHTCURVE}_" in entry.name else "cutouts")
            sizes[part][0] += stat.st_size
            sizes[part][1] += stat.st_blocks * 512
    return {part: (size, allocated) for part, (size, allocated) in sizes.items()}


def one_round(values: list[bytes], files: list[list[tuple[str, bytes]]], decoder: str, work: str, number: int,
              kafka: dict[str, str], topic: str, empty: str) -> dict[str, object]:
    """The floors and the Kafka path, side by side, with the output under ``work``."""

    def kafka_run(topic_name: str, name: str) -> tuple[float, float]:
        return consumer_command_cost(os.path.join(work, f"{name}-{number}"), LSST_CONSUMER_TOPIC=topic_name,
                                     LSST_CONSUMER_GROUP_ID=f"b-{uuid.uuid4().hex[:8]}", **kafka)

    decode_wall, decode_cpu = decoder_cost(values, decoder)
    run_wall, run_cpu = kafka_run(topic, "kafka")
    write = write_floor_seconds(files, os.path.join(work, f"floor-{number}"))
    fixed_wall, fixed_cpu = kafka_run(empty, "empty")
    count = len(values)
    return {"decode": count / decode_wall, "write": count / write, "kafka": count / max(run_wall - fixed_wall, 1e-9),
            "fixed": fixed_wall, "cpu": max(run_cpu - fixed_cpu, 1e-9) / count, "decode_cpu": decode_cpu / count,
            "bytes": output_bytes(os.path.join(work, f"kafka-{number}"))}


def spread(values: list[float]) -> str:
    """The median and the range of the rounds."""
    return f"{statistics.median(values):.2f} (rounds {min(values):.2f}-{max(values):.2f})"


def report(label: str, rounds: list[dict[str, object]]) -> None:
    """Each round's figures, then the medians against the targets."""
    on_disk = label == "disk"
    ratios = []
    print(f"output on {label}:")
    for number, r in enumerate(rounds, start=1):
        floor = min(r["decode"], r["write"]) if on_disk else r["decode"]
        ratios.append(r["kafka"] / floor)
        print(f"  round {number}: decode floor {r['decode']:6.0f}/s, 4-file write floor {r['write']:6.0f}/s, "
              f"Kafka path {r['kafka']:6.0f}/s (fixed costs {r['fixed']:.1f} s), ratio {ratios[-1]:.2f}; "
              f"CPU {r['cpu'] * 1e3:.2f} ms/alert (decode {r['decode_cpu'] * 1e3:.2f})", flush=True)
    floor = "min(decode, 4-file write) floors" if on_disk else "the decode floor"
    print(f"  Kafka path: median {spread(ratios)}x {floor}  (target >= 0.8)")
    cpu = [r["cpu"] for r in rounds]
    print(f"  CPU per alert: median {spread([c * 1e3 for c in cpu])} ms, the decoder's alone "
          f"{statistics.median(r['decode_cpu'] for r in rounds) * 1e3:.2f} ms", flush=True)


def rubin(rounds: list[dict[str, object]], count: int) -> None:
    """alerts/s/core and what a night of Rubin needs, from the rounds' medians."""
    per_core = 1 / statistics.median(r["cpu"] for r in rounds)
    per_second = RUBIN_ALERTS_PER_VISIT / RUBIN_SECONDS_PER_VISIT
    night_hours = RUBIN_ALERTS_PER_NIGHT / per_core / 3600
    print(f"Rubin: {per_core:.0f} alerts/s/core (consumer CPU, broker excluded); a visit's {RUBIN_ALERTS_PER_VISIT:,} "
          f"alerts every {RUBIN_SECONDS_PER_VISIT} s = {per_second:.0f} alerts/s needs {per_second / per_core:.1f} cores; "
          f"{RUBIN_ALERTS_PER_NIGHT:,} alerts a night = {night_hours:.1f} core-hours")
    sizes = rounds[-1]["bytes"]
    parts = ", ".join(f"{part} {size / count / 1024:.1f} kB ({allocated / count / 1024:.1f} kB allocated)"
                      for part, (size, allocated) in sizes.items())
    night = sum(allocated for _, allocated in sizes.values()) / count * RUBIN_ALERTS_PER_NIGHT / 1e9
    print(f"Rubin: written per alert: {parts}; a night of {RUBIN_ALERTS_PER_NIGHT:,} alerts = {night:.0f} GB allocated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--case", default="b: v11.1, 30+30 history", choices=[*CASES, *RUBIN_CASES])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of floors + Kafka path (default %(default)s)")
    parser.add_argument("--output", nargs="+", choices=("tmpfs", "disk"), default=["tmpfs", "disk"],
                        help="where the consumer runs write (default: both)")
    args = parser.parse_args()
    values = framed_alerts(args.case, args.count)
    files = alert_files(values)
    decoder = resolve_decoder("auto")
    fastavro_rate = len(values) / bare_decode_seconds(values)
    print(f"{len(values)} messages, case {args.case!r}, {sum(map(len, values)) / len(values) / 1024:.0f} kB each; "
          f"decoder auto = {decoder}; bare fastavro decode {fastavro_rate:.0f}/s (reference)", flush=True)
    roots = {label: root for label, root in (("tmpfs", "/dev/shm"), ("disk", tempfile.gettempdir()))
             if label in args.output and os.path.isdir(root)}
    broker = start_broker()
    try:
        topic, empty = f"floors-{uuid.uuid4().hex[:6]}", f"empty-{uuid.uuid4().hex[:6]}"
        produce(broker.bootstrap_servers, topic, values)
        produce(broker.bootstrap_servers, empty, [])
        Producer({"bootstrap.servers": broker.bootstrap_servers}).list_topics(empty, timeout=10)  # creates it
        kafka = dict(LSST_CONSUMER_BOOTSTRAP_SERVERS=broker.bootstrap_servers)
        every_round = []
        for label, root in roots.items():
            with tempfile.TemporaryDirectory(dir=root) as work:
                rounds = [one_round(values, files, decoder, work, number, kafka, topic, empty)
                          for number in range(args.rounds)]
            report(label, rounds)
            every_round += rounds
        rubin(every_round, len(values))
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
