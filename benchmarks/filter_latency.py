"""Median µs per filter ``run()`` on LSST loci of 1, 10 and 100 alerts, beside a reference
that computes the same median through ``locus.timeseries('lsst')`` as the bundled DevKit
filters do. Both run in this process, interleaved, on the same loci.

    .venv/bin/python benchmarks/filter_latency.py [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from antares_devkit.models import DevkitAlert, DevKitLocus  # noqa: E402

import antares_extendedness_filter as flt  # noqa: E402


def make_locus(n_alerts: int, seed: int) -> DevKitLocus:
    rng = random.Random(seed)
    alerts = [DevkitAlert(id=f"lsst_alert:{i}", mjd=61000.0 + i,
                          properties={"ant_survey": 4, "lsst_diaSource_extendedness": rng.random(),
                                      "lsst_diaSource_ssObjectId": 0, "ant_mag": 20.0, "ant_passband": "r"})
              for i in range(n_alerts)]
    return DevKitLocus(id=f"bench{n_alerts}", ra=1.0, dec=2.0, alerts=alerts)


def reference(locus: DevKitLocus) -> float:
    """The bundled filters' idiom (it prints on every call; silenced here)."""
    with contextlib.redirect_stdout(io.StringIO()):
        series = locus.timeseries("lsst")
    return float(np.ma.median(series["lsst_diaSource_extendedness"].data))


def time_us(call, locus, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call(locus)
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    the_filter = flt.LsstExtendednessFilter()
    flt.REQUIRE_SSSOURCE = False  # these loci pass, so the timing includes tagging
    print(f"{'alerts':>6} {'filter run() µs':>16} {'timeseries ref µs':>18} {'speed-up':>9}")
    for n_alerts in (1, 10, 100, 351):  # 351: a deep-drilling alert with 350 prvDiaSources
        locus = make_locus(n_alerts, n_alerts)
        assert abs(flt.evaluate(locus)["median"] - reference(locus)) < 1e-12  # same answer
        ours = time_us(the_filter.run, locus, args.repeat)
        theirs = time_us(reference, locus, max(20, args.repeat // 10))
        print(f"{n_alerts:>6} {ours:>16.1f} {theirs:>18.1f} {theirs / ours:>8.0f}x")


if __name__ == "__main__":
    main()
