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

from _common import CASES, consumer_loop_seconds, framed_alerts


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
                        timings[light_curves].append(consumer_loop_seconds(
                            values, os.path.join(work, f"{light_curves}-{round_number}"), light_curves=light_curves))
            without, with_ = (len(values) / min(timings[flag]) for flag in (False, True))
            print(f"{case:<32} {label:<6} {without:>10.0f} {with_:>8.0f} {with_ / without:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
