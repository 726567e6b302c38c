"""transient_kind_builder.py against a real PostgreSQL: slots, roster, index, load-fink."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import psycopg
import pytest

from alert_pipeline.storehouse.fink.build import build as fink_build
from devtools import fink_samples

REPO = Path(__file__).resolve().parent.parent
LABEL_RANK = {"Kilonova candidate": 3, "SN candidate": 2, "Unknown": 1}
SUBTYPE = {"Kilonova candidate": "kilonova", "SN candidate": "sn", "Unknown": "unknown"}


def insert_rows(pg_url: str, table: str, rows: list[tuple]) -> None:
    with psycopg.connect(pg_url, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} (source, event_time, latitude, longitude, magnitude, extra_json) "
                           "VALUES (%s, %s, %s, %s, %s, %s)", rows)


def event_row(alert: dict, source: str = "fink_transients") -> tuple:
    """How the live fetcher stores a Fink alert (written here independently of fink.py)."""
    extra = {"object_id": alert["i:objectId"], "candid": str(alert["i:candid"]),
             "classification": alert["v:classification"], "filter_id": alert["i:fid"],
             "n_detections": alert["i:ndethist"], "jd": alert["i:jd"], "magpsf": alert["i:magpsf"],
             "sigmapsf": alert["i:sigmapsf"], "fink": alert}
    when = dt.datetime(1858, 11, 17, tzinfo=dt.UTC) + dt.timedelta(days=alert["i:jd"] - 2400000.5)
    return (source, when, alert["i:dec"], alert["i:ra"], alert["i:magpsf"], json.dumps(extra))


def edge_case_alerts() -> list[dict]:
    """Fink alerts covering what the builder must get right."""
    rng = random.Random(99)
    candids = iter(range(3_000_000_000_000_000_000, 2**63))
    alerts: list[dict] = []

    def obj(object_id, labels, count, ra=None, dec=None):
        made = fink_samples.object_alerts(rng, object_id, labels, count, candids, ra, dec)
        alerts.extend(made)
        return made

    obj("ZTF21aaaaaaa", ["SN candidate"], 1)
    obj("ZTF21aaaaaab", ["Unknown"], 300)  # hundreds of alerts
    obj("ZTF21aaaawrp", ["SN candidate"], 12, ra=359.99995, dec=10.0)  # straddles RA 0/360
    obj("ZTF21aaahigh", ["Unknown"], 8, ra=120.0, dec=88.9)  # near the pole
    obj("ZTF21aaasnkn", ["SN candidate", "Kilonova candidate"], 9)  # cross-labelled: kilonova wins
    obj("ZTF21aaasnun", ["Unknown", "SN candidate"], 7)  # cross-labelled: sn wins
    mixed = obj("ZTF21aaamixd", ["Unknown"], 5)
    sso = fink_samples.fink_alert(rng, "ZTF21aaamixd", "Solar System MPC", mixed[0]["i:jd"] + 0.1,
                                  mixed[0]["i:ra"], mixed[0]["i:dec"], next(candids), ndethist=2)
    alerts.append(sso)
    obj("ZTF21aaaaast", ["Solar System candidate"], 3)  # out of scope entirely
    negative = obj("ZTF21aaaaneg", ["SN candidate"], 4)
    for alert in negative:
        alert["i:isdiffpos"] = "f"  # only negative detections: no magnitudes
    nonmono = obj("ZTF21aaanonm", ["SN candidate"], 6)
    for alert, ndethist in zip(sorted(nonmono, key=lambda a: a["i:jd"]), (3, 7, 5, 9, 2, 8), strict=True):
        alert["i:ndethist"] = ndethist
    return alerts


def expected_curve(rows: list[dict]) -> dict[str, dict[str, list]]:
    """The per-band light curve of some alerts, from the Fink rows themselves."""
    curve: dict[str, dict[str, list]] = {}
    for alert in sorted(rows, key=lambda a: (a["i:jd"], str(a["i:candid"]))):
        band = {1: "g", 2: "r", 3: "i"}[alert["i:fid"]]
        series = curve.setdefault(band, {"mjd": [], "mag": [], "mag_err": [], "candid": [], "positive": []})
        series["mjd"].append(alert["i:jd"] - 2400000.5)
        series["mag"].append(alert["i:magpsf"])
        series["mag_err"].append(alert["i:sigmapsf"])
        series["candid"].append(int(alert["i:candid"]))
        series["positive"].append(alert["i:isdiffpos"] in ("t", "1", "true"))
    return {band: curve[band] for band in "gri" if band in curve}


def expected_slots(alerts: list[dict]) -> dict[str, dict]:
    """Every slot field computed from the alerts in plain Python (the reference)."""
    by_candid = {}
    for alert in alerts:
        by_candid.setdefault(str(alert["i:candid"]), alert)  # first stored wins
    per_object = defaultdict(list)
    for alert in by_candid.values():
        if alert["v:classification"] in LABEL_RANK:
            per_object[alert["i:objectId"]].append(alert)
    slots = {}
    for object_id, rows in per_object.items():
        rows.sort(key=lambda a: (a["i:jd"], str(a["i:candid"])))
        latest = rows[-1]
        best = max(LABEL_RANK[a["v:classification"]] for a in rows)
        chosen = next(label for label, rank in LABEL_RANK.items() if rank == best)
        positive = [a for a in rows if a["i:isdiffpos"] == "t"]
        angles = np.radians([a["i:ra"] for a in rows])
        centre = math.degrees(math.atan2(np.sin(angles).mean(), np.cos(angles).mean()))
        ra_offsets = [((a["i:ra"] - centre + 180) % 360) - 180 for a in rows]
        decs = [a["i:dec"] for a in rows]
        labels = defaultdict(int)
        for a in rows:
            labels[a["v:classification"]] += 1
        slots[object_id] = {
            "slot_id": object_id, "kind": "transient", "subtype": SUBTYPE[chosen], "fink_classification": chosen,
            "labels": dict(labels), "lat": None, "lon": None, "ra_deg": latest["i:ra"], "dec_deg": latest["i:dec"],
            "ra_scatter_arcsec": float(np.std(ra_offsets)) * math.cos(math.radians(np.mean(decs))) * 3600,
            "dec_scatter_arcsec": float(np.std(decs)) * 3600,
            "n_alerts": len(rows), "max_n_detections": max(a["i:ndethist"] for a in rows),
            "first_mjd": rows[0]["i:jd"] - 2400000.5, "last_mjd": latest["i:jd"] - 2400000.5,
            "duration_days": latest["i:jd"] - rows[0]["i:jd"],
            "mag_brightest": min((a["i:magpsf"] for a in positive), default=None),
            "mag_faintest": max((a["i:magpsf"] for a in positive), default=None),
            "mag_latest": positive[-1]["i:magpsf"] if positive else None,
            "bands": [band for fid, band in ((1, "g"), (2, "r"), (3, "i")) if any(a["i:fid"] == fid for a in rows)],
            "provisional": chosen == "Unknown",
            "source_fields": [a for a in rows if a["v:classification"] == chosen][-1],
            "light_curve": expected_curve(rows),
        }
    return slots


def read_slots(storehouse: Path) -> dict[str, dict]:
    kind = storehouse / "transient"
    return {p.stem: json.loads(p.read_text()) for p in kind.glob("ZTF*.json")}


def run_builder(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def malformed_rows(table_source: str = "fink_transients") -> list[tuple]:
    now = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    good_extra = {"object_id": "ZTF21zzzzzzz", "candid": "1", "classification": "SN candidate", "jd": 2460370.5}
    return [
        (table_source, now, 1.0, 2.0, 18.0, "{not json at all"),
        (table_source, now, 1.0, 2.0, 18.0, "[1, 2, 3]"),
        (table_source, now, 1.0, 2.0, 18.0, json.dumps({"candid": "2", "classification": "SN candidate"})),
        (table_source, now, 1.0, 2.0, 18.0, json.dumps({**good_extra, "candid": "3", "object_id": "../../etc/x"})),
        (table_source, now, 1.0, 2.0, 18.0, json.dumps({**good_extra, "candid": "4", "classification": None})),
        ("some_other_source", now, 1.0, 2.0, 18.0, json.dumps({**good_extra, "candid": "5"})),
        ("some_other_source", now, 1.0, 2.0, 18.0, "also { not json"),
    ]


def test_every_slot_field_matches_an_independent_computation(pg_url, table, tmp_path):
    alerts = edge_case_alerts()
    rows = [event_row(a) for a in alerts]
    rows += [event_row(alerts[0]), event_row(alerts[5])]  # candids stored twice
    insert_rows(pg_url, table, rows + malformed_rows())
    done = run_builder("--dsn", pg_url, "--storehouse", str(tmp_path / "store"), "--table", table)
    assert done.returncode == 0, done.stderr

    slots = read_slots(tmp_path / "store")
    expected = expected_slots(alerts)
    assert set(slots) == set(expected)
    for object_id, want in expected.items():
        got = slots[object_id]
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-6), (object_id, key)
            else:
                assert got[key] == value, (object_id, key)
        assert got["first_detection"].endswith("Z") and got["provenance"]["rows_used"] == want["n_alerts"]
        assert got["provenance"]["source"] == "fink_transients" and got["provenance"]["table"] == table
    assert slots["ZTF21aaaawrp"]["ra_scatter_arcsec"] < 2.0  # not ~ 360 degrees
    assert slots["ZTF21aaaaneg"]["mag_brightest"] is None
    assert slots["ZTF21aaasnkn"]["subtype"] == "kilonova" and slots["ZTF21aaasnun"]["subtype"] == "sn"
    assert slots["ZTF21aaanonm"]["max_n_detections"] == 9

    roster = json.loads((tmp_path / "store" / "transient" / "roster.json").read_text())
    assert roster["objects"] == len(expected)
    assert roster["cross_labelled"] == 2
    assert roster["excluded_rows"] == {"Solar System MPC": 1, "Solar System candidate": 3}
    assert roster["skipped_rows"] == {"invalid_json": 1, "missing_keys": 3, "bad_object_id": 1, "bad_time": 0,
                                      "too_deep": 0, "duplicate_candid": 2}
    naive = {SUBTYPE[label]: len({o for o, slot in expected.items() if label in slot["labels"]}) for label in SUBTYPE}
    assert roster["naive_class_tallies"] == naive and naive["sn"] == 6
    assert sum(roster["by_subtype"].values()) == roster["objects"]


def test_seed_roster(pg_url, table, tmp_path):
    """The seed's numbers: 2,350 objects (sn 708, kilonova 21, unknown 1,621), naive
    tallies summing to 2,366, 16 cross-labelled."""
    alerts = fink_samples.dataset(seed=7)
    insert_rows(pg_url, table, [event_row(a) for a in alerts])
    report = fink_build(pg_url, str(tmp_path / "store"), table=table)
    roster = report.roster.as_dict()
    assert roster["objects"] == 2350
    assert roster["by_subtype"] == {"sn": 708, "kilonova": 21, "unknown": 1621}
    assert sum(roster["naive_class_tallies"].values()) == 2366
    assert roster["cross_labelled"] == 16
    index = json.loads((tmp_path / "store" / "transient" / "index.json").read_text())
    assert index["kind"] == "transient" and index["count"] == 2350
    assert [entry["slot_id"] for entry in index["slots"]] == sorted(entry["slot_id"] for entry in index["slots"])
    assert set(index["slots"][0]) == {"slot_id", "subtype", "ra_deg", "dec_deg", "first_mjd", "last_mjd", "n_alerts",
                                      "provisional", "distance"}


def test_rebuild_is_idempotent_and_index_comes_back_from_disk(pg_url, table, tmp_path):
    alerts = edge_case_alerts()
    insert_rows(pg_url, table, [event_row(a) for a in alerts])
    store = tmp_path / "store"
    fink_build(pg_url, str(store), table=table)
    kind = store / "transient"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in kind.glob("ZTF*.json")}
    index_before = json.loads((kind / "index.json").read_text())

    second = fink_build(pg_url, str(store), table=table)
    transient = second.kinds["transient"]
    assert (transient.written, transient.removed) == (0, 0) and transient.unchanged == len(before)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in kind.glob("ZTF*.json")} == before

    (kind / "index.json").unlink()
    done = run_builder("rebuild-index", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    rebuilt = json.loads((kind / "index.json").read_text())
    assert rebuilt["slots"] == index_before["slots"] and rebuilt["count"] == index_before["count"]


def test_vanished_objects_lose_their_slots(pg_url, table, tmp_path):
    alerts = edge_case_alerts()
    insert_rows(pg_url, table, [event_row(a) for a in alerts])
    store = tmp_path / "store"
    fink_build(pg_url, str(store), table=table)
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"DELETE FROM {table} WHERE extra_json::jsonb->>'object_id' = 'ZTF21aaaaaab'")
    report = fink_build(pg_url, str(store), table=table)
    assert report.removed == 1
    assert "ZTF21aaaaaab" not in read_slots(store)
    index = json.loads((store / "transient" / "index.json").read_text())
    assert "ZTF21aaaaaab" not in {entry["slot_id"] for entry in index["slots"]}


def test_interrupted_build_leaves_previous_slots_and_index_valid(pg_url, table, tmp_path, monkeypatch):
    alerts = edge_case_alerts()
    insert_rows(pg_url, table, [event_row(a) for a in alerts])
    store = tmp_path / "store"
    fink_build(pg_url, str(store), table=table)
    index_before = (store / "transient" / "index.json").read_bytes()
    with psycopg.connect(pg_url, autocommit=True) as connection:  # every object changes
        connection.execute(f"UPDATE {table} SET magnitude = magnitude + 0.5")

    from alert_pipeline.storehouse import slots as storehouse
    original, calls = storehouse.KindStore.write_slot, []

    def failing(self, slot_id, slot, **kwargs):
        calls.append(slot_id)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return original(self, slot_id, slot, **kwargs)

    monkeypatch.setattr(storehouse.KindStore, "write_slot", failing)
    with pytest.raises(OSError):
        fink_build(pg_url, str(store), table=table, full=True)  # edited rows: seen by a full build
    assert (store / "transient" / "index.json").read_bytes() == index_before
    slots = read_slots(store)  # every file still parses
    assert len(slots) == len(expected_slots(alerts))
    assert not [p for p in (store / "transient").iterdir() if ".tmp-" in p.name]


def test_load_fink_json_and_csv_round_trip_idempotently(pg_url, table, tmp_path):
    alerts = edge_case_alerts()
    half = len(alerts) // 2
    as_json = tmp_path / "latests.json"
    as_json.write_text(json.dumps(alerts[:half]))
    as_csv = tmp_path / "latests.csv"
    with open(as_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(alerts[0]))
        writer.writeheader()
        writer.writerows(alerts[half:])

    first = run_builder("load-fink", "--dsn", pg_url, "--table", table, str(as_json), str(as_csv))
    assert first.returncode == 0, first.stderr
    assert f"read={len(alerts)} inserted={len(alerts)} already_present=0" in first.stderr
    again = run_builder("load-fink", "--dsn", pg_url, "--table", table, str(as_json), str(as_csv))
    assert f"inserted=0 already_present={len(alerts)}" in again.stderr

    built = run_builder("--dsn", pg_url, "--storehouse", str(tmp_path / "store"), "--table", table)
    assert built.returncode == 0, built.stderr
    slots = read_slots(tmp_path / "store")
    expected = expected_slots(alerts)
    assert set(slots) == set(expected)
    for object_id, want in expected.items():
        assert slots[object_id]["source_fields"] == want["source_fields"]
        assert slots[object_id]["n_alerts"] == want["n_alerts"]


def test_database_unreachable_and_table_missing_are_clear_errors(pg_url, tmp_path):
    down = run_builder("--dsn", "postgresql://nobody:s3cret@127.0.0.1:1/none", "--storehouse", str(tmp_path / "s"))
    assert down.returncode == 5
    assert "cannot connect to PostgreSQL" in down.stderr and "s3cret" not in down.stderr
    missing = run_builder("--dsn", pg_url, "--storehouse", str(tmp_path / "s"), "--table", "no_such_table")
    assert missing.returncode == 5 and "table 'no_such_table' does not exist" in missing.stderr
    no_dsn = run_builder("--storehouse", str(tmp_path / "s"), env={"DATABASE_URL": ""})
    assert no_dsn.returncode == 2 and "DATABASE_URL" in no_dsn.stderr


def test_dsn_falls_back_to_database_url_and_help_works(pg_url, table, tmp_path):
    insert_rows(pg_url, table, [event_row(a) for a in edge_case_alerts()[:20]])
    done = run_builder("build", "--storehouse", str(tmp_path / "store"), "--table", table,
                       env={"DATABASE_URL": pg_url})
    assert done.returncode == 0, done.stderr
    for command in ("build", "rebuild-index", "load-fink"):
        helped = run_builder(command, "--help")
        assert helped.returncode == 0 and "usage:" in helped.stdout
