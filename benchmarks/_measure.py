"""Shared by the storehouse benchmarks: ZTF-like object ids and a timed child run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

#: Runs a script (argv) and prints its peak RSS on stderr (a fresh child of a small
#: benchmark process, so ru_maxrss is its own).
_MEASURED = ("import resource, runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_path(sys.argv[0], "
             "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('PEAK', resource.getrusage("
             "resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def ztf_name(number: int) -> str:
    """The ``number``-th ZTF-like object id (ZTF + two digits + seven letters)."""
    letters = ""
    rest = number
    for _ in range(7):
        rest, digit = divmod(rest, 26)
        letters = chr(ord("a") + digit) + letters
    return f"ZTF{20 + number // 10**7:02d}{letters}"


def run_measured(script: str, *args: str) -> tuple[float, float, dict]:
    """Seconds, peak RSS (MB) and the printed JSON of one run of ``script``."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, script, *args], capture_output=True, text=True,
                          check=True)
    elapsed = time.perf_counter() - started
    peak = int(next(line for line in done.stderr.splitlines() if line.startswith("PEAK")).split()[1]) / 1024
    return elapsed, peak, json.loads(done.stdout)
