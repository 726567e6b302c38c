"""The incremental build: after any sequence of appended nights the storehouse equals a
full build from scratch, slot for slot; a kill at any step leaves nothing ahead of disk."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import psycopg
import pytest

from devtools import fink_samples

from .test_builder import edge_case_alerts, event_row, insert_rows, run_builder
from .test_builder_minor_body import minor_body_cases

KINDS = ("transient", "minor_body")


def snapshot(store: Path) -> dict[str, object]:
    """Every slot, index and roster, without the build time stamps."""
    found: dict[str, object] = {}
    for kind in KINDS:
        for path in sorted((store / kind).glob("*.json")):
            data = json.loads(path.read_text())
            data.pop("built_at", None)
            if isinstance(data.get("provenance"), dict):
                data["provenance"].pop("built_at", None)
            found[f"{kind}/{path.name}"] = data
    return found


def nights() -> list[list[dict]]:
    """Night 0: the edge cases and minor bodies; then new objects, new alerts of old
    objects, a label change, Solar-System rows of an old designation, a duplicate candid."""
    rng = random.Random(27)
    first = edge_case_alerts() + minor_body_cases()
    candids = iter(range(5_000_000_000_000_000_000, 2**63))
    old_sn = next(a for a in first if a["v:classification"] == "SN candidate")
    old_unknown = next(a for a in first if a["v:classification"] == "Unknown"
                       and a["i:objectId"] != old_sn["i:objectId"])
    old_body = next(a for a in first if a.get("i:ssnamenr") == "2015BQ311")
    second = fink_samples.dataset(fink_samples.Composition(single={"sn": 2, "kilonova": 1, "unknown": 2}, cross=[],
                                                           solar_system_objects=1, mixed_with_solar_system=0), seed=3)
    second.append(fink_samples.fink_alert(rng, old_sn["i:objectId"], "SN candidate", old_sn["i:jd"] + 3,
                                          old_sn["i:ra"], old_sn["i:dec"], next(candids), 2))
    second.append(fink_samples.fink_alert(rng, old_unknown["i:objectId"], "Kilonova candidate",
                                          old_unknown["i:jd"] + 1, old_unknown["i:ra"], old_unknown["i:dec"],
                                          next(candids), 1))  # the label changes: unknown -> kilonova
    third = [fink_samples.fink_alert(rng, "ZTF24aaaaaaq", "Solar System MPC", old_body["i:jd"] + 2, 40.0, 10.0,
                                     next(candids), 1, ssnamenr="2015BQ311"),  # a new object of an old body
             dict(second[0])]  # a duplicate candid of the night before
    return [first, second, third]


def build(pg_url: str, table: str, store: Path, *extra: str) -> dict:
    done = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, *extra)
    assert done.returncode == 0, done.stderr
    return {"out": json.loads(done.stdout), "err": done.stderr}


def test_incremental_builds_equal_a_full_build_after_every_night(pg_url, table, tmp_path):
    store = tmp_path / "incremental"
    for number, night in enumerate(nights()):
        rows = [event_row(a) for a in night]
        if number == 1:
            rows.append(("fink_transients", "2024-01-01T00:00:00Z", 0.0, 0.0, 19.0, "{not json"))  # malformed
        insert_rows(pg_url, table, rows)
        done = build(pg_url, table, store)
        assert ("build: incremental" if number else "build: full, no build state") in done["err"]
        fresh = tmp_path / f"full-{number}"
        build(pg_url, table, fresh, "--full")
        assert snapshot(store) == snapshot(fresh), f"night {number}"
    nothing = build(pg_url, table, store)
    assert "nothing new since row" in nothing["err"]
    state = json.loads((store / "state" / "build.json").read_text())
    with psycopg.connect(pg_url) as connection:
        assert state["high_water"] == connection.execute(f"SELECT max(id) FROM {table}").fetchone()[0]


def test_the_new_rows_touch_only_their_groups(pg_url, table, tmp_path):
    first, second, _ = nights()
    insert_rows(pg_url, table, [event_row(a) for a in first])
    store = tmp_path / "store"
    build(pg_url, table, store)
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*.json") if p.parent.name in KINDS}
    extra = [a for a in second if a["i:objectId"] in {x["i:objectId"] for x in first}]
    insert_rows(pg_url, table, [event_row(a) for a in extra])
    build(pg_url, table, store)
    changed = {p.stem for p, stamp in before.items() if p.stat().st_mtime_ns != stamp
               and p.name not in ("index.json", "roster.json")}
    assert changed == {a["i:objectId"] for a in extra}


@pytest.mark.parametrize("point", ["before-build-sync", "before-build-index", "before-build-state"])
def test_a_kill_at_any_step_then_a_rerun_gives_the_clean_build(pg_url, table, tmp_path, point):
    first, second, third = nights()
    insert_rows(pg_url, table, [event_row(a) for a in first])
    store = tmp_path / "store"
    build(pg_url, table, store)
    mark = json.loads((store / "state" / "build.json").read_text())["high_water"]
    insert_rows(pg_url, table, [event_row(a) for a in second + third])
    killed = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table,
                         env=os.environ | {"LSST_CONSUMER_TEST_CRASH": f"{point}:1"})
    assert killed.returncode == -9, killed.stderr
    assert json.loads((store / "state" / "build.json").read_text())["high_water"] == mark  # never ahead of disk
    build(pg_url, table, store)
    clean = tmp_path / "clean"
    build(pg_url, table, clean, "--full")
    assert snapshot(store) == snapshot(clean)


def test_a_truncated_table_or_a_lost_rows_table_gives_a_full_build(pg_url, table, tmp_path):
    first, second, _ = nights()
    insert_rows(pg_url, table, [event_row(a) for a in first + second])
    store = tmp_path / "store"
    build(pg_url, table, store)
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"DROP TABLE {table}_tk_rows")
    again = build(pg_url, table, store)
    assert "build: full, the builder's rows table lacks rows of this source already built" in again["err"]
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"DELETE FROM {table} WHERE id > (SELECT min(id) + 20 FROM {table})")
    shrunk = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--allow-shrink")
    assert shrunk.returncode == 0, shrunk.stderr
    assert "build: full, the table was truncated or restored" in shrunk.stderr


def test_a_read_only_role_falls_back_to_a_full_build_with_a_warning(pg_url, table, tmp_path):
    insert_rows(pg_url, table, [event_row(a) for a in edge_case_alerts()])
    role = f"reader_{table}"
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'reader'")
        connection.execute(f"GRANT SELECT ON {table} TO {role}")
    dsn = pg_url.replace("://", f"://{role}:reader@", 1) if "@" not in pg_url.split("://", 1)[1] else \
        pg_url.split("://", 1)[0] + f"://{role}:reader@" + pg_url.split("@", 1)[1]
    store = tmp_path / "store"
    for _ in range(2):
        done = build(dsn, table, store)
        assert "every build is a full build" in done["err"] and "build: full" in done["err"]
    assert len(list((store / "transient").glob("ZTF*.json"))) > 3
    assert not (store / "state" / "build.json").exists()


def _rows_table_indexes(pg_url: str, table: str) -> list[tuple[str, str]]:
    with psycopg.connect(pg_url) as connection:
        return sorted(connection.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass", (f"{table}_tk_rows",)).fetchall())


def test_a_full_build_makes_the_rows_tables_indexes_again_and_a_killed_one_keeps_them(pg_url, table, tmp_path):
    """A full build drops the rows table's secondary indexes before its insert and makes
    them again after it, inside the build's transaction: after it, and after a full build
    killed before its commit, the table has the same indexes, and they are used."""
    first, second, _ = nights()
    insert_rows(pg_url, table, [event_row(a) for a in first])
    store = tmp_path / "store"
    build(pg_url, table, store)
    made = _rows_table_indexes(pg_url, table)
    assert sorted(definition.split(" USING ")[1] for _, definition in made) == \
        ["btree (designation)", "btree (id)", "btree (object_id)"]
    killed = run_builder("--dsn", pg_url, "--storehouse", str(tmp_path / "killed"), "--table", table, "--full",
                         env=os.environ | {"LSST_CONSUMER_TEST_CRASH": "before-build-index:1"})  # before the commit
    assert killed.returncode == -9, killed.stderr
    assert _rows_table_indexes(pg_url, table) == made
    build(pg_url, table, store, "--full")
    assert _rows_table_indexes(pg_url, table) == made
    insert_rows(pg_url, table, [event_row(a) for a in second])
    build(pg_url, table, store)  # the incremental build finds the touched groups through them
    clean = tmp_path / "clean"
    build(pg_url, table, clean, "--full")
    assert snapshot(store) == snapshot(clean)
