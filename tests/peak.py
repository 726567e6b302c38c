"""A process's own peak memory, for the bounded-memory tests.

``getrusage(RUSAGE_SELF).ru_maxrss`` is no good in a child of a big test runner: Linux
carries the parent's high-water mark across fork and exec. ``VmHWM`` in
``/proc/self/status`` belongs to the process's own memory map, made anew at exec.
"""

from __future__ import annotations

#: Run a script (sys.argv[1:]) and print its own peak RSS on stderr as PEAK_RSS_KB=…
RUN_AND_MEASURE = """
import runpy, sys
from tests.peak import peak_rss_kb
sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    code = stop.code
print(f"PEAK_RSS_KB={peak_rss_kb()}", file=sys.stderr)
sys.exit(code)
"""


def peak_rss_kb() -> int:
    """This process's peak resident set size (kB), since its last exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")
