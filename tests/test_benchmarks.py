"""Every benchmark script runs, at its smallest scale, and prints its ratio line(s).

Nothing else runs the benchmarks, so a refactor that breaks one (as the consumer
benchmarks once broke on a moved function) would go unseen until someone measured.
Each script runs here as a child process, with the arguments of its tiniest scale,
in a temporary working and temporary-files directory, and must exit 0, print the
lines that carry its ratios, and leave no new file in the repository. The figures
themselves mean nothing at this scale: only that every part of the script ran.
The scripts that need Kafka or PostgreSQL start their own (devtools.local).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
#: A hang guard for one tiny run (they take seconds), not a speed requirement.
RUN_TIMEOUT_S = 600
#: A ratio as the consumer benchmarks print it: 0.83, 1.30x, 411894040.00.
RATIO = r"\d+\.\d+x?"
#: A ratio in the words of the storehouse and report benchmarks, whose wording changes more
#: often: "ratio 0.729", "1.89 × the read floor", "3.76x the floor".
NAMED_RATIO = r"(?:ratio \d+\.\d+|\d+\.\d+ ?[x×] )"
#: Where consumer_floors.py writes: tmpfs when this machine has one (faster), else disk.
FLOORS_OUTPUT = "tmpfs" if os.path.isdir("/dev/shm") else "disk"
#: The consumer benchmarks' table rows: one per alert case (a, b, c), ending in the ratio.
CASE_ROWS = [rf"^{case}: .*\s{RATIO}$" for case in ("a", "b", "c")]

#: script → (the arguments of its smallest scale, patterns of the lines that carry its
#: ratios; each must match at least one printed line).
TINY: dict[str, tuple[list[str], list[str]]] = {
    "consumer_decode_write.py": (["--count", "2", "--rounds", "1"], CASE_ROWS),
    "consumer_light_curves.py": (["--count", "2", "--rounds", "1"], CASE_ROWS),
    "consumer_end_to_end.py": (["--count", "4"],
                               [rf"b/a = {RATIO}$", rf"c/a = {RATIO}$", rf"is {RATIO} one process$"]),
    "consumer_floors.py": (["--count", "4", "--rounds", "1", "--output", FLOORS_OUTPUT],
                           [rf"round 1: .* ratio {RATIO};", rf"Kafka path: median {RATIO} \(rounds {RATIO}-{RATIO}\)x",
                            r"^Rubin: \d+ alerts/s/core", r"a night of 10,000,000 alerts = \d+ GB"]),
    "consumer_instances.py": (["--count", "4", "--repeat", "1"], [rf"ratio {RATIO} one instance$"]),
    "filter_latency.py": (["--repeat", "1"], [rf"^\s+{alerts}\s.*\s\d+x$" for alerts in (1, 10, 100, 351)]),
    "crossmatch_scale.py": (["--transients", "50", "--maps", "1", "--neutrinos", "20", "--cosmic-rays", "20"],
                            [rf"ratio {RATIO} the floor", r"first run .* slots written", r"rerun .* slots written",
                             rf"first run ratio {RATIO} \(match floor \+ write floor\)",
                             rf"rerun ratio {RATIO} the first run"]),
    "tns_scale.py": (["--tns", "40", "--slots", "20"], [rf"first run.*{NAMED_RATIO}", rf"rerun.*{NAMED_RATIO}"]),
    "volume_levels.py": (["--transients", "20"], [rf"volume_fields: .* ratio {RATIO} the floor"]),
    "builder_scale.py": (["--scales", "200:20"],
                         [rf"nothing new.*{NAMED_RATIO}", rf"1 % new.*{NAMED_RATIO}", rf"--full.*{NAMED_RATIO}",
                          rf"write floor: .*full build {NAMED_RATIO}"]),
    "enrichment_storage.py": (["--slots", "40", "--shares", "0.1"],
                              [rf"{step} .*sidecar/merge {RATIO}$" for step in ("enrich", "rebuild", "read")]),
    "site_scale.py": (["--transients", "30", "--maps", "1", "--neutrinos", "5", "--cosmic-rays", "5"],
                      [rf"first build / floor: {NAMED_RATIO}", rf"rerun, nothing new.*{NAMED_RATIO}",
                       rf"rerun after one new event.*{NAMED_RATIO}", r"GW night: .* until gw/S230518h.html is written"]),
    "galaxies_scale.py": (["--rows", "2000"], [rf"ratio {RATIO} the floor", r"load-galaxies: .* peak RSS"]),
    "report_thumbnails.py": (["--alerts", "2"],
                             [rf"1 process.*{NAMED_RATIO}", rf"as run.*{NAMED_RATIO}", rf"{NAMED_RATIO}.*the consume"]),
}


def repository_files() -> set[Path]:
    """Every file of the work tree but git's, the virtual environment's, the tools' caches
    and bytecode (which other runs in this checkout may write at any time)."""
    skipped = {".git", ".venv", ".pytest_cache", ".ruff_cache", "__pycache__"}
    found = set()
    for directory, subdirectories, files in os.walk(REPO):
        subdirectories[:] = [name for name in subdirectories if name not in skipped]
        found.update(Path(directory, name) for name in files)
    return found


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path: an embedded PostgreSQL under pytest's
    long tmp_path finds no Unix socket path short enough (108 bytes at most)."""
    directory = Path(tempfile.mkdtemp(prefix="bench-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_every_benchmark_script_has_a_tiny_scale_here():
    scripts = {path.name for path in BENCHMARKS.glob("*.py") if not path.name.startswith("_")}
    assert scripts == set(TINY)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_at_a_tiny_scale_and_prints_its_ratios(script, short_tmp):
    arguments, ratio_lines = TINY[script]
    environment = {name: value for name, value in os.environ.items() if name != "TEST_DATABASE_URL"}
    # Its own embedded PostgreSQL (builder_scale.py drops and creates tables), temporary
    # files under short_tmp, and no bytecode written beside the benchmark modules.
    environment.update(TMPDIR=str(short_tmp), PYTHONDONTWRITEBYTECODE="1")
    before = repository_files()
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], cwd=short_tmp, env=environment,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    missing = [pattern for pattern in ratio_lines if not any(re.search(pattern, line) for line in lines)]
    assert not missing, f"no line matches {missing} in:\n{done.stdout}"
    assert repository_files() - before == set()
