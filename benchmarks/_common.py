"""Shared by the consumer benchmarks: the alert cases, the bare-decode baseline, the
consumer's loop in this process, and a timed run of the consumer command against a broker."""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import fastavro  # noqa: E402

from alert_pipeline.consumer.decode import bundled_schema  # noqa: E402
from devtools.factory import AlertFactory  # noqa: E402

#: name → alert() arguments: (a) no history, (b) 30 prvDiaSources, 30 prvDiaForcedSources.
CASES = {
    "a: v11.1, no history": dict(n_prv_sources=0, n_prv_forced=0, cutout_size=60),
    "b: v11.1, 30+30 history": dict(n_prv_sources=30, n_prv_forced=30, cutout_size=60),
    "c: v10.0 deep drilling, 350+350": dict(version="10.0", n_prv_sources=350, n_prv_forced=350, cutout_size=30,
                                           psf_cutouts=True),
}


#: Alerts shaped as Rubin's, made from the lsst-alert-packet schema of the newest version
#: (devtools.factory): 30×30 cutouts laid out as Rubin's 2026 ones (image, variance, PSF);
#: DMTN-102 ("LSST Alerts: Key Numbers", section 2.3) puts a packet at ≲ 82 KB, and a
#: deep-drilling field's DIAObject has hundreds of detections within the 12 months a
#: packet carries.
RUBIN_CASES = {
    "rubin: v11.1, 82 kB, 25+25 history": dict(n_prv_sources=25, n_prv_forced=25, cutout_size=30, psf_cutouts=True),
    "rubin deep field: v11.1, 350+350": dict(n_prv_sources=350, n_prv_forced=350, cutout_size=30, psf_cutouts=True),
}
#: Rubin's alert rate (DMTN-102, section 2.2): 10,000 alerts a visit on average, ~1,000
#: visits a night, a visit every ~40 s (30 s exposure plus overheads, as a night's
#: observing runs).
RUBIN_ALERTS_PER_NIGHT = 10_000_000
RUBIN_ALERTS_PER_VISIT = 10_000
RUBIN_SECONDS_PER_VISIT = 40


def framed_alerts(case: str, count: int, seed: int = 0) -> list[bytes]:
    """``count`` Confluent-framed alerts of one case (v11.1 unless the case names a version)."""
    options = dict(CASES[case] if case in CASES else RUBIN_CASES[case])
    factory = AlertFactory(options.pop("version", "11.1"), seed=seed)
    return [factory.frame(factory.alert(**options)) for _ in range(count)]


def bare_decode_seconds(values: list[bytes]) -> float:
    """The baseline: fastavro.schemaless_reader with each message's writer schema (from its
    Confluent schema id, looked up before the clock starts), nothing else."""
    schemas = {value[1:5]: bundled_schema(struct.unpack(">I", value[1:5])[0]) for value in values}
    start = time.perf_counter()
    for value in values:
        schema = schemas[value[1:5]]
        stream = io.BytesIO(value)
        stream.seek(5)
        fastavro.schemaless_reader(stream, schema)
    return time.perf_counter() - start


def _decode_part(values: list[bytes]) -> float:
    return bare_decode_seconds(values)


def two_process_decode_speedup(values: list[bytes]) -> float:
    """How much faster two processes decode the same messages than one: the ceiling for
    any ``--workers 2`` gain on this machine (it is not 2 when the cores share a physical
    core or memory bandwidth)."""
    from multiprocessing import get_context

    one = bare_decode_seconds(values)
    half = len(values) // 2
    with get_context("fork").Pool(2) as pool:
        pool.map(_decode_part, [values[:2], values[2:4]])  # warm both workers
        start = time.perf_counter()
        pool.map(_decode_part, [values[:half], values[half:]])
        two = time.perf_counter() - start
    return one / two


def consumer_loop_seconds(values: list[bytes], output_dir: str, **settings: object) -> float:
    """The consumer's loop (``runner.run`` over a ``MemorySource``: decode, FITS check, row,
    staged cutouts, durable batches) over in-memory message values, as Kafka hands them over."""
    from alert_pipeline.consumer.config import ConsumerConfig
    from alert_pipeline.consumer.processing import AlertConsumer
    from alert_pipeline.consumer.runner import run
    from alert_pipeline.consumer.sources import MemorySource, Message
    config = ConsumerConfig(kafka_config={"bootstrap.servers": "-", "group.id": "-"}, topics=["-"],
                            output_dir=output_dir, **settings)
    consumer = AlertConsumer(config)
    messages = [Message(value, {"topic": "bench", "partition": 0, "offset": i}) for i, value in enumerate(values)]
    start = time.perf_counter()
    written = run(consumer, MemorySource(messages)).written
    elapsed = time.perf_counter() - start
    consumer.close()
    assert written == len(values)
    return elapsed


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 0) -> None:
    """Every value into ``topic`` (created on first use), in large batches, flushed; with
    ``partitions``, value i goes to partition i % partitions (the topic must have them)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 4194304,
                         "message.max.bytes": 8388608})
    for index, value in enumerate(values):
        if partitions:
            producer.produce(topic, value, partition=index % partitions)
        else:
            producer.produce(topic, value)
        producer.poll(0)
    producer.flush(60)


def consumer_command_seconds(output_dir: str, *args: str, **env: str) -> float:
    """Wall seconds of one ``lsst_alert_consumer.py`` run writing into ``output_dir``, with
    short group timeouts (a local broker) and ``env`` (e.g. the topic and group) on top."""
    return consumer_command_cost(output_dir, *args, **env)[0]


def consumer_command_cost(output_dir: str, *args: str, **env: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, every thread) of one consumer run, as
    ``consumer_command_seconds`` runs it. The CPU figure hardly moves when other jobs
    share the machine; the wall figure does."""
    environment = dict(os.environ, LSST_CONSUMER_OUTPUT_DIR=output_dir, LSST_CONSUMER_LOG_LEVEL="WARNING",
                       LSST_CONSUMER_KAFKA_SESSION_TIMEOUT_MS="2000", LSST_CONSUMER_KAFKA_HEARTBEAT_INTERVAL_MS="500",
                       **env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(REPO, "lsst_alert_consumer.py"), *args], env=environment,
                   check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
