"""The day's rows as a user loads them: pandas with the README's Int64 recipe, and the
``--parquet`` copy (typed, one file per day, replaced atomically, never blocking the CSV)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from alert_pipeline.consumer.sources import write_frames_file
from devtools.factory import AlertFactory
from tests.conftest import REPO
from tests.test_hostile_input import offline_env, read_rows, run_script

#: Real Rubin diaObjectIds (public Lasair-LSST object pages); float64 cannot hold them.
REAL_OBJECT_IDS = (170635519425249637, 313853517460144141)


def _night(tmp_path: Path, seed: int = 1) -> tuple[Path, list[dict]]:
    """Two alerts of real Rubin object ids, one Solar-System alert (no diaObjectId), a band
    that a spreadsheet would take for a formula."""
    factory = AlertFactory("11.1", seed=seed)
    packets = [factory.alert(cutouts=False) for _ in REAL_OBJECT_IDS]
    for packet, object_id in zip(packets, REAL_OBJECT_IDS, strict=True):
        packet["diaSource"]["diaObjectId"] = packet["diaObject"]["diaObjectId"] = object_id
    packets[1]["diaSource"]["band"] = "+r"
    asteroid = factory.alert(cutouts=False, solar_system=True)
    asteroid["ssSource"]["designation"] = "2015 BQ311"
    packets.append(asteroid)
    frames = tmp_path / f"night{seed}.frames"
    write_frames_file(str(frames), [factory.frame(packet) for packet in packets])
    return frames, packets


def _readme_recipe() -> str:
    text = (REPO / "docs" / "consumer.md").read_text()
    section = text[text.index("## Reading the CSV in pandas"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_pandas_recipe_keeps_every_id_digit(tmp_path):
    frames, packets = _night(tmp_path)
    out = tmp_path / "out"
    done = run_script(REPO / "lsst_alert_consumer.py", offline_env(out), "--from-file", str(frames))
    assert done.returncode == 0, done.stderr
    (csv_path,) = (out / "data").glob("*.csv")
    naive = pd.read_csv(csv_path)
    assert naive["diaObjectId"].dtype == "float64"  # the trap the README warns about
    assert int(naive["diaObjectId"][0]) != REAL_OBJECT_IDS[0]
    recipe = _readme_recipe().replace("lsst_alerts/data/lsst_alerts_20261120.csv", str(csv_path))
    namespace: dict = {}
    exec(compile(recipe, "README recipe", "exec"), namespace)  # noqa: S102 - the documented code, as a user runs it
    alerts = namespace["alerts"]
    assert list(alerts["diaObjectId"][:2]) == list(REAL_OBJECT_IDS)
    assert pd.isna(alerts["diaObjectId"][2])
    assert list(alerts["diaSourceId"]) == [p["diaSource"]["diaSourceId"] for p in packets]
    assert alerts["ssObjectId"][2] == packets[2]["ssSource"]["ssObjectId"]
    assert str(alerts["timestamp"].dtype).startswith("datetime64")


def test_parquet_is_typed_exact_and_follows_the_csv(tmp_path):
    frames, packets = _night(tmp_path)
    out = tmp_path / "out"
    env = offline_env(out, LSST_CONSUMER_TEST_START_TIME="2026-02-10T02:03:15Z")
    done = run_script(REPO / "lsst_alert_consumer.py", env, "--parquet", "--from-file", str(frames))
    assert done.returncode == 0, done.stderr
    path = out / "data" / "lsst_alerts_20260210.parquet"
    assert "parquet: wrote lsst_alerts_20260210.parquet" in done.stderr
    table = pq.read_table(path)
    types = {field.name: str(field.type) for field in table.schema}
    assert types["diaSourceId"] == types["diaObjectId"] == types["ssObjectId"] == "int64"
    assert types["ra"] == types["psFlux"] == "double" and types["filterName"] == "string"
    assert types["timestamp"] == "timestamp[ms, tz=UTC]"
    rows = table.to_pylist()
    assert [row["diaObjectId"] for row in rows] == [*REAL_OBJECT_IDS, None]
    assert [row["diaSourceId"] for row in rows] == [p["diaSource"]["diaSourceId"] for p in packets]
    assert rows[1]["filterName"] == "+r"  # the CSV's spreadsheet apostrophe is not data
    assert read_rows(out)[1]["filterName"] == "'+r"
    assert rows[2]["designation"] == "2015 BQ311" and rows[2]["ssObjectId"] == packets[2]["ssSource"]["ssObjectId"]
    assert rows[0]["timestamp"].isoformat() == "2026-02-10T02:03:15+00:00"
    assert [row["ra"] for row in rows] == [float(row["ra"]) for row in read_rows(out)]

    made = path.stat().st_mtime_ns
    again = run_script(REPO / "lsst_alert_consumer.py", env, "--parquet", "--from-file", str(frames))
    assert again.returncode == 0 and "duplicates_skipped=3" in again.stderr
    assert path.stat().st_mtime_ns == made  # nothing new: not rewritten
    more, _ = _night(tmp_path, seed=2)
    third = run_script(REPO / "lsst_alert_consumer.py", env, "--parquet", "--from-file", str(more))
    assert third.returncode == 0, third.stderr
    assert pq.read_table(path).num_rows == len(read_rows(out)) == 6


def test_a_parquet_that_cannot_be_written_loses_no_row(tmp_path):
    """The Parquet name taken by a directory: exit 4 with a message, the CSV rows are written
    and committed (a rerun skips them all), and once the obstacle is gone the next run
    makes the Parquet file without writing a row twice."""
    frames, packets = _night(tmp_path)
    out = tmp_path / "out"
    env = offline_env(out, LSST_CONSUMER_TEST_START_TIME="2026-02-10T02:03:15Z")
    blocker = out / "data" / "lsst_alerts_20260210.parquet"
    blocker.mkdir(parents=True)
    (blocker / "keep.txt").write_text("not ours")
    done = run_script(REPO / "lsst_alert_consumer.py", env, "--parquet", "--from-file", str(frames))
    assert done.returncode == 4, done.stderr
    assert "the CSV files are written and committed, but their Parquet copy could not be written" in done.stderr
    assert len(read_rows(out)) == 3 and (blocker / "keep.txt").read_text() == "not ours"
    (blocker / "keep.txt").unlink()
    blocker.rmdir()
    again = run_script(REPO / "lsst_alert_consumer.py", env, "--parquet", "--from-file", str(frames))
    assert again.returncode == 0 and "duplicates_skipped=3" in again.stderr
    assert pq.read_table(blocker).num_rows == 3 and len(read_rows(out)) == 3


def test_pd_read_parquet_as_the_readme_calls_it_keeps_every_id_digit(tmp_path):
    """The README's plain ``pd.read_parquet(path)``: the ids come back as pandas' nullable
    Int64, every digit of the real Rubin ids kept, nulls as <NA> (not float64 with NaN)."""
    frames, packets = _night(tmp_path)
    out = tmp_path / "out"
    env = offline_env(out, LSST_CONSUMER_TEST_START_TIME="2026-02-10T02:03:15Z")
    done = run_script(REPO / "lsst_alert_consumer.py", env, "--parquet", "--from-file", str(frames))
    assert done.returncode == 0, done.stderr
    alerts = pd.read_parquet(out / "data" / "lsst_alerts_20260210.parquet")
    for column in ("diaObjectId", "ssObjectId", "alertId", "diaSourceId"):
        assert str(alerts[column].dtype) == "Int64", column
    assert list(alerts["diaObjectId"][:2]) == list(REAL_OBJECT_IDS)
    assert pd.isna(alerts["diaObjectId"][2]) and pd.isna(alerts["ssObjectId"][0])
    assert alerts["ssObjectId"][2] == packets[2]["ssSource"]["ssObjectId"]
    assert list(alerts["diaSourceId"]) == [p["diaSource"]["diaSourceId"] for p in packets]
    assert str(alerts["timestamp"].dtype) == "datetime64[ms, UTC]" and alerts["ra"].dtype == "float64"
    assert alerts["filterName"][1] == "+r"


def _append_raw(path: Path, row: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(row)


def test_a_day_whose_csv_is_malformed_is_named_and_the_other_days_get_their_parquet(tmp_path):
    """One row of bytes that are not UTF-8 in one day, one 200 KB cell in another: exit 4
    naming both days, no traceback; the good day gets its Parquet file and no CSV row is
    touched (a later run makes the rest once the rows are repaired)."""
    out = tmp_path / "out"
    days = ("2026-02-10", "2026-02-11", "2026-02-12")
    for seed, day in enumerate(days, start=1):
        frames, _ = _night(tmp_path, seed=seed)
        env = offline_env(out, LSST_CONSUMER_TEST_START_TIME=f"{day}T02:03:15Z")
        assert run_script(REPO / "lsst_alert_consumer.py", env, "--from-file", str(frames)).returncode == 0
    data = out / "data"
    _append_raw(data / "lsst_alerts_20260210.csv", b"1,2,\xff\xfe not utf-8\n")
    _append_raw(data / "lsst_alerts_20260211.csv", b"1,2," + b"x" * 200_000 + b"\n")
    before = {path.name: path.read_bytes() for path in data.glob("*.csv")}

    done = run_script(REPO / "lsst_alert_consumer.py", offline_env(out), "--parquet", "--from-file",
                      str(_night(tmp_path, seed=9)[0]))
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert "day 20260210 has no Parquet file: lsst_alerts_20260210.csv line 5: bytes that are not UTF-8" in done.stderr
    assert "day 20260211 has no Parquet file: lsst_alerts_20260211.csv line" in done.stderr
    assert "field larger than field limit" in done.stderr
    assert not (data / "lsst_alerts_20260210.parquet").exists()
    assert not (data / "lsst_alerts_20260211.parquet").exists()
    good = pq.read_table(data / "lsst_alerts_20260212.parquet").to_pylist()
    assert [row["diaObjectId"] for row in good] == [*REAL_OBJECT_IDS, None]
    for name, content in before.items():
        assert (data / name).read_bytes() == content  # not one CSV byte lost or changed
