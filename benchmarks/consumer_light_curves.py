"""What keeping each alert's light curve costs the consumer: the same messages through the
consumer's loop (``runner.run`` over a ``MemorySource``) with ``light_curves`` on (the
default: a FITS table beside the three cutouts) and off, rounds alternating in this one
process, on disk and on tmpfs; prints the best round of each and the ratio.

    .venv/bin/python benchmarks/consumer_light_curves.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _common import CASES, framed_alerts

from alert_pipeline.config import ConsumerConfig
from alert_pipeline.consumer import AlertConsumer
from alert_pipeline.runner import run
from alert_pipeline.sources import MemorySource, Message


def seconds(values: list[bytes], output_dir: str, light_curves: bool) -> float:
    config = ConsumerConfig(kafka_config={"bootstrap.servers": "-", "group.id": "-"}, topics=["-"],
                            output_dir=output_dir, light_curves=light_curves)
    consumer = AlertConsumer(config)
    messages = [Message(value, {"topic": "bench", "partition": 0, "offset": i}) for i, value in enumerate(values)]
    start = time.perf_counter()
    written = run(consumer, MemorySource(messages)).written
    elapsed = time.perf_counter() - start
    consumer.close()
    assert written == len(values)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    roots = {"disk": tempfile.gettempdir()}
    if os.path.isdir("/dev/shm"):
        roots["tmpfs"] = "/dev/shm"
    print(f"{'case':<32} {'output':<6} {'without/s':>10} {'with/s':>8} {'ratio':>6}")
    for case in CASES:
        values = framed_alerts(case, args.count)
        for label, root in roots.items():
            timings: dict[bool, list[float]] = {False: [], True: []}
            with tempfile.TemporaryDirectory(dir=root) as work:
                for round_number in range(args.rounds):
                    for light_curves in (False, True):  # alternating, so drift hits both
                        timings[light_curves].append(
                            seconds(values, os.path.join(work, f"{light_curves}-{round_number}"), light_curves))
            without, with_ = (len(values) / min(timings[flag]) for flag in (False, True))
            print(f"{case:<32} {label:<6} {without:>10.0f} {with_:>8.0f} {with_ / without:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
