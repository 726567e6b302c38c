"""Offline decode → row → CSV + 3 FITS files (durable batches), beside bare decoding.

For each case it alternates, in this one process, the bare ``fastavro.schemaless_reader``
baseline and the consumer's loop (``runner.run`` over a ``MemorySource``: decode, FITS
check, row, staged cutouts, syncfs, CSV, ledger, the next batch decoded while one is
written) over the same in-memory messages, and prints the best of the rounds and the ratio.

    .venv/bin/python benchmarks/consumer_decode_write.py [--count N] [--rounds R]

Two output locations are measured: the disk (what a user gets here) and, when present, a
tmpfs (/dev/shm), which shows the code's own cost without this machine's disk; on this
VM the disk (mounted with online discard) is what limits case (b): ~145 kB per alert.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from _common import CASES, bare_decode_seconds, consumer_loop_seconds, framed_alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    roots = {"disk": tempfile.gettempdir()}
    if os.path.isdir("/dev/shm"):
        roots["tmpfs"] = "/dev/shm"
    print(f"{'case':<32} {'output':<6} {'bare decode/s':>14} {'pipeline/s':>11} {'ratio':>6}")
    for case in CASES:
        values = framed_alerts(case, args.count)
        for label, root in roots.items():
            with tempfile.TemporaryDirectory(dir=root) as work:
                bare, ours = [], []
                for round_number in range(args.rounds):  # a fresh directory each round, as a night
                    bare.append(bare_decode_seconds(values))  # only adds files
                    ours.append(consumer_loop_seconds(values, os.path.join(work, f"out{round_number}"),
                                                      batch_size=args.batch_size))
            bare_rate, our_rate = len(values) / min(bare), len(values) / min(ours)
            print(f"{case:<32} {label:<6} {bare_rate:>14.0f} {our_rate:>11.0f} {our_rate / bare_rate:>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
