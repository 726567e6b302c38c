"""The builder under hostile input, through ``transient_kind_builder.py`` against the real
embedded PostgreSQL: one bad row never aborts, no injection, no silent shrink."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from devtools import fink_samples
from tests.test_builder import event_row, insert_rows, read_slots, run_builder

NOW = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def small_dataset(seed: int = 5) -> list[dict]:
    return fink_samples.dataset(fink_samples.Composition(single={"sn": 6, "kilonova": 1, "unknown": 5}, cross=[],
                                                         solar_system_objects=2, mixed_with_solar_system=0),
                                seed=seed)


def extra(object_id: str, candid: str, **more) -> dict:
    return {"object_id": object_id, "candid": candid, "classification": "SN candidate", "jd": 2460370.5,
            "magpsf": 18.0, "filter_id": 1, "n_detections": 1, "fink": {"i:isdiffpos": "t"}, **more}


def nested(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


def deep_json_text(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_bad_rows_are_counted_and_the_build_finishes_with_a_valid_index(pg_url, table, tmp_path):
    alerts = small_dataset()
    rows = [event_row(alert) for alert in alerts]
    bad = [
        ("fink_transients", NOW, 1.0, 2.0, 18.0, json.dumps(extra("ZTF21bbbbbba", "901")).replace(
            '"SN candidate"', '"SN \\u0000candidate"')),                                     # NUL: jsonb refuses
        ("fink_transients", NOW, 1.0, 2.0, 18.0, json.dumps(extra("ZTF21bbbbbbb", "902", jd=1e8))),  # year 270,000
        ("fink_transients", "infinity", 1.0, 2.0, 18.0, json.dumps({k: v for k, v in extra(
            "ZTF21bbbbbbc", "903").items() if k != "jd"})),                                  # no jd, infinite time
        ("fink_transients", NOW, 1.0, 2.0, 18.0,
         json.dumps(extra("ZTF21bbbbbbd", "904")).replace('"fink": {"i:isdiffpos": "t"}',
                                                          f'"fink": {deep_json_text(5000)}')),  # RecursionError in Python
        ("fink_transients", NOW, 1.0, 2.0, 18.0,
         json.dumps(extra("ZTF21bbbbbbe", "905")).replace('"fink": {"i:isdiffpos": "t"}',
                                                          f'"fink": {deep_json_text(100000)}')),  # beyond PG's stack
    ]
    insert_rows(pg_url, table, rows + bad)
    store = tmp_path / "store"
    done = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table)
    assert done.returncode == 0, done.stderr
    roster = json.loads((store / "transient" / "roster.json").read_text())
    assert roster["skipped_rows"]["invalid_json"] == 2  # the NUL and the 100,000-deep rows
    assert roster["skipped_rows"]["bad_time"] == 2 and roster["skipped_rows"]["too_deep"] == 1
    in_scope = {a["i:objectId"] for a in alerts if not a["v:classification"].startswith("Solar")}
    slots = read_slots(store)
    assert set(slots) == in_scope
    index = json.loads((store / "transient" / "index.json").read_text())
    assert index["count"] == len(in_scope) == len(index["slots"])


def test_load_fink_loads_what_is_valid_and_counts_the_rest(pg_url, table, tmp_path):
    alerts = small_dataset(seed=6)
    good = alerts[:20]
    nan_magnitude = dict(alerts[20], **{"i:magpsf": float("nan")})
    broken = [
        dict(alerts[21], **{"i:jd": float("nan")}), dict(alerts[22], **{"i:jd": 1e300}),
        dict(alerts[23], **{"i:jd": True}), dict(alerts[24], **{"i:jd": "1e400"}),
        dict(alerts[25], **{"i:ra": "abc"}), dict(alerts[26], **{"v:classification": "SN \u0000candidate"}),
    ]
    lines = [json.dumps(a).encode() for a in [*good, nan_magnitude, *broken]]
    lines += [b"{this is not json", b'{"i:objectId": "caf\xe9"}']
    jsonl = tmp_path / "latests.jsonl"
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    csv_file = tmp_path / "bom.csv"
    keys = list(alerts[30])
    csv_file.write_text("\ufeff" + ",".join(keys) + "\n" + "\n".join(
        ",".join(str(a[k]) for k in keys) for a in alerts[30:33]) + "\n", encoding="utf-8")
    done = run_builder("load-fink", "--dsn", pg_url, "--table", table, str(jsonl), str(csv_file))
    assert done.returncode == 0, done.stderr
    assert "inserted=24" in done.stderr, done.stderr
    for reason in ("bad_jd", "bad_coordinates", "nul_character", "invalid_json", "not_utf8"):
        assert reason in done.stderr
    with psycopg.connect(pg_url) as connection:
        stored = connection.execute(f"SELECT extra_json FROM {table}").fetchall()
        assert len(stored) == 24
        assert all(connection.execute("SELECT pg_input_is_valid(%s, 'jsonb')", (text,)).fetchone()[0]
                   for (text,) in stored)
    nan_row = next(json.loads(t) for (t,) in stored if json.loads(t)["candid"] == str(nan_magnitude["i:candid"]))
    assert nan_row["magpsf"] is None and nan_row["fink"]["i:magpsf"] is None
    store = tmp_path / "store"
    assert run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table).returncode == 0
    roster = json.loads((store / "transient" / "roster.json").read_text())
    assert sum(roster["skipped_rows"].values()) == 0


@pytest.mark.parametrize("name", ["' ON victim (id); DROP TABLE victim; COMMIT; -- events x", "x\\1", "a.b.c.d",
                                  "events; DROP TABLE victim", ""])
def test_table_names_are_identifiers_never_sql(pg_url, tmp_path, name):
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS victim (id int)")
    fink_file = tmp_path / "f.json"
    fink_file.write_text(json.dumps(small_dataset()[:3]))
    for command in (["load-fink", "--dsn", pg_url, "--table", name, str(fink_file)],
                    ["build", "--dsn", pg_url, "--storehouse", str(tmp_path / "s"), "--table", name]):
        done = run_builder(*command)
        assert done.returncode == 2, done.stderr
        assert "invalid table name" in done.stderr and "Traceback" not in done.stderr
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT to_regclass('victim')").fetchone()[0] is not None


def test_a_schema_qualified_table_and_a_case_mistake(pg_url, tmp_path):
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS fink")
    fink_file = tmp_path / "f.json"
    alerts = small_dataset(seed=8)
    fink_file.write_text(json.dumps(alerts))
    assert run_builder("load-fink", "--dsn", pg_url, "--table", "fink.events", str(fink_file)).returncode == 0
    done = run_builder("--dsn", pg_url, "--storehouse", str(tmp_path / "s"), "--table", "fink.events")
    assert done.returncode == 0, done.stderr
    wrong = run_builder("--dsn", pg_url, "--storehouse", str(tmp_path / "s"), "--table", "fink.Events")
    assert wrong.returncode == 5 and "did you mean 'fink.events'" in wrong.stderr


def test_a_mistyped_source_never_empties_the_storehouse(pg_url, table, tmp_path):
    insert_rows(pg_url, table, [event_row(a) for a in small_dataset(seed=9)])
    store = tmp_path / "store"
    assert run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table).returncode == 0
    before = {p.name: p.read_bytes() for p in (store / "transient").glob("ZTF*.json")}
    done = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--source", "fink_transient")
    assert done.returncode == 7
    assert "'fink_transient'" in done.stderr and table in done.stderr and "--allow-shrink" in done.stderr
    assert {p.name: p.read_bytes() for p in (store / "transient").glob("ZTF*.json")} == before
    index = json.loads((store / "transient" / "index.json").read_text())
    assert index["count"] == len(before)
    forced = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--source", "fink_transient",
                         "--allow-shrink")
    assert forced.returncode == 0 and not list((store / "transient").glob("ZTF*.json"))


def test_a_stray_file_in_the_kind_folder_is_left_alone(pg_url, table, tmp_path):
    insert_rows(pg_url, table, [event_row(a) for a in small_dataset(seed=10)])
    store = tmp_path / "store"
    notes = store / "transient" / "My notes.json"
    notes.parent.mkdir(parents=True)
    notes.write_text("my notes")
    done = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table)
    assert done.returncode == 0, done.stderr
    assert notes.read_text() == "my notes" and "not a slot file" in done.stderr
    index = json.loads((store / "transient" / "index.json").read_text())
    assert all(entry["slot_id"] != "My notes" for entry in index["slots"]) and index["count"] > 0


def test_a_password_with_a_raw_at_sign_never_reaches_the_log(tmp_path):
    for dsn in ("postgresql://me:p@ss@127.0.0.1:9/db", "postgresql://me:hunter2@no-such-host.invalid/db",
                "host=127.0.0.1 port=9 user=me password=s3cr@t dbname=x"):
        done = run_builder("--dsn", dsn, "--storehouse", str(tmp_path / "s"))
        assert done.returncode == 5, done.stderr
        for fragment in ("p@ss", "ss@127", "hunter2", "s3cr@t", "cr@t"):
            assert fragment not in done.stderr, (dsn, done.stderr)
