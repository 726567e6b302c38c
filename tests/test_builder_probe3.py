"""Builds that lost rows (issue 33, items 8 and 9, and the concurrent builds), against the
real PostgreSQL of the fixtures: two sources in one events table, a row committed after a
later one, a sequence reset, two builds at once, and what a build with nothing new says."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from devtools import fink_samples

from .test_builder import REPO, edge_case_alerts, event_row, insert_rows
from .test_builder_incremental import build, snapshot

OTHER_SOURCE = "fink_mirror"
#: How long a test waits for a build subprocess to reach a state before failing (a guard
#: against a hang, not a measure of speed).
PATIENCE_SECONDS = 120


def alerts_of(object_id: str, count: int, seed: int, label: str = "SN candidate") -> list[dict]:
    """``count`` alerts of one object (candids unique to the seed)."""
    rng = random.Random(seed)
    candids = iter(range(6_000_000_000_000_000_000 + seed * 10**6, 2**63))
    return fink_samples.object_alerts(rng, object_id, [label], count, candids)


def one_more(alerts: list[dict], seed: int) -> dict:
    """A new alert of the object of ``alerts``, a day after its latest."""
    latest = max(alerts, key=lambda alert: alert["i:jd"])
    return fink_samples.fink_alert(random.Random(seed), latest["i:objectId"], latest["v:classification"],
                                   latest["i:jd"] + 1, latest["i:ra"], latest["i:dec"],
                                   7_000_000_000_000_000_000 + seed, 2)


def slot(store: Path, object_id: str) -> dict:
    return json.loads((store / "transient" / f"{object_id}.json").read_text())


def equals_a_full_build(pg_url: str, table: str, store: Path, fresh: Path, *extra: str) -> None:
    build(pg_url, table, fresh, "--full", *extra)
    assert snapshot(store) == snapshot(fresh)


def test_each_source_of_a_shared_table_builds_from_its_own_rows(pg_url, table, tmp_path):
    """Item 8: A full, B full, A again, one new alert of a B object, B's build: the slot
    holds all 16 alerts, not the new one alone."""
    mirror_alerts = alerts_of("ZTF22aaaamir", 15, seed=1)
    insert_rows(pg_url, table, [event_row(alert) for alert in edge_case_alerts()])  # source A: 355 rows
    insert_rows(pg_url, table, [event_row(alert, OTHER_SOURCE) for alert in mirror_alerts])
    store_a, store_b = tmp_path / "a", tmp_path / "b"
    build(pg_url, table, store_a)
    build(pg_url, table, store_b, "--source", OTHER_SOURCE)
    assert slot(store_b, "ZTF22aaaamir")["n_alerts"] == 15
    build(pg_url, table, store_a)
    insert_rows(pg_url, table, [event_row(one_more(mirror_alerts, seed=2), OTHER_SOURCE)])
    done = build(pg_url, table, store_b, "--source", OTHER_SOURCE)
    assert slot(store_b, "ZTF22aaaamir")["n_alerts"] == 16
    assert "build: incremental, 1 new row since" in done["err"]
    equals_a_full_build(pg_url, table, store_b, tmp_path / "b-full", "--source", OTHER_SOURCE)
    again = build(pg_url, table, store_a)  # A's rows and mark are untouched by B's builds
    assert "build: incremental, nothing new" in again["err"]
    equals_a_full_build(pg_url, table, store_a, tmp_path / "a-full")


def test_a_row_committed_after_a_later_one_is_built(pg_url, table, tmp_path):
    """Item 9: writer 1 holds ids uncommitted (one under a savepoint), writer 2 commits a
    larger id, the build marks it, writer 1 commits: the next build reads writer 1's rows."""
    slow_alerts, fast_alerts = alerts_of("ZTF23aaaslow", 5, seed=3), alerts_of("ZTF23aaafast", 4, seed=4)
    insert_rows(pg_url, table, [event_row(alert) for alert in slow_alerts + fast_alerts])
    store = tmp_path / "store"
    build(pg_url, table, store)
    insert = f"INSERT INTO {table} (source, event_time, latitude, longitude, magnitude, extra_json) " \
             "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
    late = [one_more(slow_alerts, seed=5), one_more(slow_alerts, seed=6)]
    with psycopg.connect(pg_url) as writer_1, psycopg.connect(pg_url, autocommit=True) as writer_2:
        held = [writer_1.execute(insert, event_row(late[0])).fetchone()[0]]
        with writer_1.transaction():  # a savepoint: this row carries a sub-transaction's id
            held.append(writer_1.execute(insert, event_row(late[1])).fetchone()[0])
        committed = writer_2.execute(insert, event_row(one_more(fast_alerts, seed=7))).fetchone()[0]
        assert max(held) < committed
        during = build(pg_url, table, store)
        assert json.loads((store / "state" / "build.json").read_text())["high_water"] == committed
        writer_1.commit()
    after = build(pg_url, table, store)
    assert slot(store, "ZTF23aaaslow")["n_alerts"] == 7
    assert slot(store, "ZTF23aaafast")["n_alerts"] == 5
    equals_a_full_build(pg_url, table, store, tmp_path / "full")
    assert "build: incremental, 1 new row since" in during["err"]
    assert "build: incremental, 2 new rows" in after["err"]


def test_rows_written_after_a_sequence_reset_are_built(pg_url, table, tmp_path):
    """Item 9: ids freed by a rolled-back load are handed out again after a sequence reset,
    below the mark: the next build still reads them."""
    alerts = alerts_of("ZTF23aareset", 6, seed=8)
    insert_rows(pg_url, table, [event_row(alert) for alert in alerts[:3]])
    with psycopg.connect(pg_url) as connection:  # ids consumed, then rolled back: a gap
        for alert in alerts_of("ZTF23aaagone", 5, seed=9):
            connection.execute(f"INSERT INTO {table} (source, event_time, latitude, longitude, magnitude, "
                               "extra_json) VALUES (%s, %s, %s, %s, %s, %s)", event_row(alert))
        connection.rollback()
    insert_rows(pg_url, table, [event_row(alert) for alert in alerts[3:]])
    store = tmp_path / "store"
    build(pg_url, table, store)
    mark = json.loads((store / "state" / "build.json").read_text())["high_water"]
    with psycopg.connect(pg_url, autocommit=True) as connection:
        gap = connection.execute(f"SELECT max(id) FROM {table} WHERE id < %s", (mark - 2,)).fetchone()[0]
        connection.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, gap))
    insert_rows(pg_url, table, [event_row(one_more(alerts, seed=10))])
    with psycopg.connect(pg_url) as connection:
        assert connection.execute(f"SELECT max(id) FROM {table}").fetchone()[0] == mark  # the new row is below
    done = build(pg_url, table, store)
    assert slot(store, "ZTF23aareset")["n_alerts"] == 7
    equals_a_full_build(pg_url, table, store, tmp_path / "full")
    assert f"build: incremental, 1 new row since row {mark} (ids {gap + 1} to {gap + 1}, some committed late" \
        in done["err"]


def test_a_build_with_nothing_new_names_the_last_row(pg_url, table, tmp_path):
    insert_rows(pg_url, table, [event_row(alert) for alert in alerts_of("ZTF23aaquiet", 3, seed=11)])
    store = tmp_path / "store"
    build(pg_url, table, store)
    with psycopg.connect(pg_url) as connection:
        last = connection.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    done = build(pg_url, table, store)
    assert f"build: incremental, nothing new since row {last}\n" in done["err"]
    assert f"rows {last + 1} to {last}" not in done["err"]


def test_an_older_builders_state_and_rows_table_give_one_full_build(pg_url, table, tmp_path):
    """A state without a transaction mark and a rows table without sources (an older
    builder's) are not trusted: one full build, then incremental again."""
    alerts = alerts_of("ZTF23aaolder", 4, seed=12)
    insert_rows(pg_url, table, [event_row(alert) for alert in alerts])
    store = tmp_path / "store"
    build(pg_url, table, store)
    state_path = store / "state" / "build.json"
    state = json.loads(state_path.read_text())
    del state["transactions"]
    state_path.write_text(json.dumps(state))
    insert_rows(pg_url, table, [event_row(one_more(alerts, seed=13))])
    assert "build: full, the build state has no transaction mark" in build(pg_url, table, store)["err"]
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"ALTER TABLE {table}_tk_rows DROP COLUMN source")
    insert_rows(pg_url, table, [event_row(one_more(alerts, seed=14))])
    assert "build: full, the builder's rows table lacks rows of this source" in build(pg_url, table, store)["err"]
    insert_rows(pg_url, table, [event_row(one_more(alerts, seed=15))])
    assert "build: incremental, 1 new row since" in build(pg_url, table, store)["err"]
    assert slot(store, "ZTF23aaolder")["n_alerts"] == 7
    equals_a_full_build(pg_url, table, store, tmp_path / "full")


def start_build(pg_url: str, table: str, store: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as handle:
        return subprocess.Popen([sys.executable, str(REPO / "transient_kind_builder.py"), "--dsn", pg_url,
                                 "--storehouse", str(store), "--table", table],
                                stdout=subprocess.DEVNULL, stderr=handle)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what}")
        time.sleep(0.1)


def test_concurrent_builds_wait_for_each_other(pg_url, table, tmp_path):
    """Three real builds at once (two of one storehouse, one of another storehouse on the
    same table): the later ones say they wait, then each ends as a full build would."""
    insert_rows(pg_url, table, [event_row(alert) for alert in edge_case_alerts()])
    first_store, other_store = tmp_path / "first", tmp_path / "other"
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "same_store", "same_table")}
    with psycopg.connect(pg_url) as blocker:
        # The test holds the events table: the first build takes its locks, then waits on it.
        blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        builds = {"first": start_build(pg_url, table, first_store, logs["first"])}
        with psycopg.connect(pg_url, autocommit=True) as watcher:
            wait_for(lambda: watcher.execute("SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) "
                                             "AND NOT granted", (table,)).fetchone()[0] == 1,
                     "the first build to wait on the table")
        builds["same_store"] = start_build(pg_url, table, first_store, logs["same_store"])
        builds["same_table"] = start_build(pg_url, table, other_store, logs["same_table"])
        wait_for(lambda: "another command is writing the storehouse" in logs["same_store"].read_text()
                 and "another build of the events table" in logs["same_table"].read_text(),
                 "the second and third builds to say they wait")
        blocker.rollback()
    for name, process in builds.items():
        assert process.wait(timeout=300) == 0, logs[name].read_text()
    assert "deadlock" not in "".join(log.read_text() for log in logs.values())
    assert "build: incremental, nothing new" in logs["same_store"].read_text()
    equals_a_full_build(pg_url, table, first_store, tmp_path / "full")
    assert snapshot(other_store) == snapshot(tmp_path / "full")
