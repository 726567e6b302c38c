"""An attacker's day files (issue 33, the day-file findings) through the real entry points,
``lsst_alert_consumer.py --merge`` and ``--parquet``: a day CSV that is one line of
gigabytes (NUL bytes after a crash), a FIFO / a link to ``/dev/zero`` / a directory named
like a day CSV, a header naming a column twice, and files that are not the consumer's.

Each run is a child process with a memory limit (``RLIMIT_AS``) and a time limit, so a
regression fails the test instead of taking the machine; huge inputs are sparse files.
Every test checks that nothing already in the destination was lost or changed."""

from __future__ import annotations

import csv
import os
import random
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from alert_pipeline.consumer.records import COLUMNS
from alert_pipeline.consumer.sources import write_frames_file
from devtools.factory import AlertFactory
from tests.conftest import REPO
from tests.peak import RUN_AND_MEASURE
from tests.test_hostile_input import offline_env

#: The address space of a run under test: far above a merge or a Parquet refresh of a few
#: alerts (with pyarrow and pandas loaded), far below one line of 4 GiB read whole.
ADDRESS_SPACE = 1536 << 20
#: A day CSV left as NUL bytes by a crash: sparse, so it costs no disk.
HUGE = 4 << 30
TIMEOUT = 120


def run_bounded(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The consumer with ``args`` in a child process of at most ``ADDRESS_SPACE`` and
    ``TIMEOUT`` seconds (a hang on a FIFO fails the test as ``TimeoutExpired``)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run([sys.executable, "-c", RUN_AND_MEASURE, str(REPO / "lsst_alert_consumer.py"), *args],
                          env=env, capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=limit)


def consumer_dir(tmp_path: Path, out: Path, day: str, seed: int, count: int = 3, *extra: str) -> Path:
    """``out`` after the consumer wrote ``count`` alerts with cutouts on ``day`` (YYYY-MM-DD)."""
    factory = AlertFactory("11.1", seed=seed)
    frames = tmp_path / f"night{seed}.frames"
    write_frames_file(str(frames), [factory.frame(factory.alert(cutout_size=20)) for _ in range(count)])
    env = offline_env(out, LSST_CONSUMER_TEST_START_TIME=f"{day}T02:03:15Z")
    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), *extra, "--from-file", str(frames)],
                          env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return out


def make_sparse(path: Path) -> None:
    """``path`` as ``HUGE`` NUL bytes (``truncate -s 4G``): one line, no disk used."""
    with open(path, "wb") as handle:
        handle.truncate(HUGE)


def merge_into(destination: Path, *sources: Path) -> subprocess.CompletedProcess:
    return run_bounded(offline_env(destination), "--merge", *map(str, sources))


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every regular file under ``directory``: (size, bytes) — the bytes of small files only,
    so a sparse 4 GiB file is compared by size and its first MiB."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                found[str(path.relative_to(directory))] = (path.stat().st_size, handle.read(1 << 20))
    return found


def assert_kept(before: dict[str, tuple[int, bytes]], directory: Path) -> None:
    after = snapshot(directory)
    for name, content in before.items():
        assert after.get(name) == content, f"{name} was lost or changed"


def day_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def header_of(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


# ------------------------------------------------------------------ 1: one line of gigabytes
def test_merge_skips_a_day_csv_of_one_huge_line_and_merges_the_other_days(tmp_path):
    """The old merge read the 4 GiB line whole: MemoryError, and the days after it were
    never merged. Now the file is named and counted after reading at most MAX_ROW_BYTES of
    it, and both good days merge; the destination's own files are untouched."""
    east = consumer_dir(tmp_path, tmp_path / "east", "2026-02-10", seed=11)
    west = consumer_dir(tmp_path, tmp_path / "west", "2026-02-12", seed=12)
    crashed = east / "data" / "lsst_alerts_20260102.csv"
    make_sparse(crashed)
    destination = consumer_dir(tmp_path, tmp_path / "merged", "2026-01-02", seed=13)
    before = snapshot(destination)

    done = merge_into(destination, east, west)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    assert f"merge: skipped {crashed}: line 1: a row longer than" in done.stderr
    assert "read=6 added=6" in done.stderr and "skipped_files=1" in done.stderr
    assert "days=20260210,20260212" in done.stderr
    for day in ("20260210", "20260212"):
        assert len(day_rows(destination / "data" / f"lsst_alerts_{day}_merged.csv")) == 3
    assert not (destination / "data" / "lsst_alerts_20260102_merged.csv").exists()
    assert_kept(before, destination)


def test_merge_leaves_a_day_whose_destination_file_is_one_huge_line_and_merges_the_others(tmp_path):
    """The destination's own day file of NUL bytes: its keys cannot be read, so that day is
    not merged (its rows would be written twice), named and counted; the other day merges."""
    first = consumer_dir(tmp_path, tmp_path / "first", "2026-02-10", seed=21)
    second = consumer_dir(tmp_path, tmp_path / "second", "2026-02-11", seed=22)
    destination = tmp_path / "merged"
    (destination / "data").mkdir(parents=True)
    crashed = destination / "data" / "lsst_alerts_20260210.csv"
    make_sparse(crashed)
    before = snapshot(destination)

    done = merge_into(destination, first, second)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"merge: skipped {crashed}: line 1: a row longer than" in done.stderr
    assert "day 20260210 is not merged" in done.stderr
    assert "added=3" in done.stderr and "skipped_files=1" in done.stderr and "days=20260211" in done.stderr
    assert len(day_rows(destination / "data" / "lsst_alerts_20260211_merged.csv")) == 3
    assert not (destination / "data" / "lsst_alerts_20260210_merged.csv").exists()
    assert_kept(before, destination)


def test_parquet_names_a_day_csv_of_one_huge_line_and_makes_the_other_days(tmp_path):
    """``--parquet`` on the same file: the old refresh read the line whole (MemoryError, no
    Parquet for any later day). Now that day is named (exit 4) and the others get theirs."""
    out = consumer_dir(tmp_path, tmp_path / "out", "2026-02-10", seed=31)
    crashed = out / "data" / "lsst_alerts_20260102.csv"
    make_sparse(crashed)
    before = snapshot(out / "data")

    done = run_bounded(offline_env(out, LSST_CONSUMER_TEST_START_TIME="2026-02-11T02:03:15Z"), "--parquet",
                       "--from-file", str(tmp_path / "night31.frames"))
    assert done.returncode == 4, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    assert "day 20260102 has no Parquet file: lsst_alerts_20260102.csv line 1: a row longer than" in done.stderr
    assert "repair or move those files" in done.stderr and "Check free space" not in done.stderr
    assert not (out / "data" / "lsst_alerts_20260102.parquet").exists()
    assert pq.read_table(out / "data" / "lsst_alerts_20260210.parquet").num_rows == 3
    assert_kept(before, out / "data")


def test_the_consumer_writes_beside_a_day_csv_of_one_huge_line(tmp_path):
    """The consumer's own day file left as NUL bytes: its first line is compared with the
    header after reading at most the header's length, so the new rows go to ``_2``."""
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    crashed = out / "data" / "lsst_alerts_20260210.csv"
    make_sparse(crashed)
    factory = AlertFactory("11.1", seed=41)
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), [factory.frame(factory.alert(cutout_size=20)) for _ in range(2)])

    done = run_bounded(offline_env(out, LSST_CONSUMER_TEST_START_TIME="2026-02-10T02:03:15Z"),
                       "--from-file", str(frames))
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(day_rows(out / "data" / "lsst_alerts_20260210_2.csv")) == 2
    assert crashed.stat().st_size == HUGE


# ------------------------------------------------------------------ 2: not a regular file
def _plant(path: Path, kind: str) -> str:
    """A day CSV name that is not a regular file; what the run must call it."""
    if kind == "fifo":
        os.mkfifo(path)
        return "a FIFO"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
        return "a symbolic link"
    path.mkdir()
    return "a directory"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_parquet_never_opens_a_day_csv_that_is_not_a_regular_file(tmp_path, kind):
    """The old refresh opened day CSVs with a plain ``open``: a FIFO hung the run, a link to
    /dev/zero ran out of memory, a directory ended it with exit 4 "check free space" and no
    Parquet for the days after it. Now the day is named with what the path is and every
    other day gets its Parquet file."""
    out = consumer_dir(tmp_path, tmp_path / "out", "2026-02-10", seed=51)
    planted = out / "data" / "lsst_alerts_20260103.csv"
    what = _plant(planted, kind)
    before = snapshot(out / "data")

    done = run_bounded(offline_env(out, LSST_CONSUMER_TEST_START_TIME="2026-02-11T02:03:15Z"), "--parquet",
                       "--from-file", str(tmp_path / "night51.frames"))
    assert done.returncode == 4, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"day 20260103 has no Parquet file: lsst_alerts_20260103.csv: {what}" in done.stderr
    assert not (out / "data" / "lsst_alerts_20260103.parquet").exists()
    assert pq.read_table(out / "data" / "lsst_alerts_20260210.parquet").num_rows == 3
    assert_kept(before, out / "data")


# ------------------------------------------------------------------ 3: a column named twice
def test_a_header_naming_a_column_twice_gives_a_parquet_file_pandas_reads(tmp_path):
    """The old de-duplication compared each name with the columns of the files before, not
    with the header's own: two fields of one name, and ``pd.read_parquet`` failed
    ("Multiple matches for FieldRef"). Now the second is ``note.1`` and no cell is lost."""
    data = tmp_path / "out" / "data"
    data.mkdir(parents=True)
    header = [*COLUMNS, "note", "note"]
    cells = {"alertId": "170028485706776685", "diaSourceId": "170028485706776685", "ra": "10.5", "dec": "-5.25",
             "filterName": "g", "timestamp": "2026-02-09T03:00:00Z"}
    row = [cells.get(name, "") for name in COLUMNS] + ["first note", "second note"]
    (data / "lsst_alerts_20260209.csv").write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    consumer_dir(tmp_path, tmp_path / "out", "2026-02-10", 61, 3, "--parquet")

    alerts = pd.read_parquet(data / "lsst_alerts_20260209.parquet")
    assert list(alerts.columns)[-2:] == ["note", "note.1"]
    assert alerts["note"][0] == "first note" and alerts["note.1"][0] == "second note"
    assert alerts["alertId"][0] == 170028485706776685 and alerts["dec"][0] == -5.25


# ------------------------------------------------------------------ 4: not the consumer's files
def test_merge_refuses_files_and_rows_that_are_not_the_consumers(tmp_path):
    """The old merge copied anything named like a day file: random bytes and a CSV without
    ``alertId`` verbatim, a row with an extra field under a header with an empty column
    name. Now each such file is skipped, named and counted, and so is each row with more or
    fewer fields than its header; a day file of the first 16 columns (written before the
    three columns of 2026-12) still merges, with its own header."""
    source = consumer_dir(tmp_path, tmp_path / "source", "2026-02-10", seed=71)
    data = source / "data"
    (good,) = data.glob("lsst_alerts_20260210*.csv")
    lines = good.read_text().splitlines(keepends=True)
    noise = data / "lsst_alerts_20260301.csv"
    noise.write_bytes(random.Random(71).randbytes(50_000))
    foreign = data / "lsst_alerts_20260302.csv"
    foreign.write_text("name,value\nfoo,1\n")
    ragged = data / "lsst_alerts_20260303.csv"
    ragged.write_text(lines[0] + lines[1] + lines[2].rstrip("\n") + ",extra\n" + lines[3].rsplit(",", 1)[0] + "\n")
    old_layout = data / "lsst_alerts_20260304.csv"
    old_layout.write_text(",".join(COLUMNS[:16]) + "\n9,9,,10.0,-5.0,61000.1,g,1.0,0.1,,,,,,,2026-03-04T01:00:00Z\n")
    destination = consumer_dir(tmp_path, tmp_path / "merged", "2026-02-10", seed=72)
    before = snapshot(destination)

    done = merge_into(destination, source)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"merge: skipped {noise}: " in done.stderr and f"merge: skipped {foreign}: header: " in done.stderr
    assert f"merge: skipped {ragged} line 3: " in done.stderr and f"merge: skipped {ragged} line 4: " in done.stderr
    assert "skipped_files=2 skipped_rows=2" in done.stderr
    assert "days=20260210,20260303,20260304" in done.stderr
    merged = destination / "data"
    assert not list(merged.glob("lsst_alerts_2026030[12]*"))
    assert header_of(merged / "lsst_alerts_20260303_merged.csv") == list(COLUMNS)
    assert [row["alertId"] for row in day_rows(merged / "lsst_alerts_20260303_merged.csv")] == \
        [line.split(",", 1)[0] for line in lines[1:2]]
    assert header_of(merged / "lsst_alerts_20260304_merged.csv") == list(COLUMNS[:16])
    assert day_rows(merged / "lsst_alerts_20260304_merged.csv")[0]["alertId"] == "9"
    assert_kept(before, destination)
