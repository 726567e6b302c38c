"""Storehouse v2: the minor_body kind (and both kinds from one build) against a real
PostgreSQL, every field checked against an independent computation."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from alert_pipeline.storehouse.fink.build import build as fink_build
from devtools import fink_samples

from .test_builder import edge_case_alerts, event_row, expected_curve, insert_rows, run_builder

MPC, CANDIDATE = "Solar System MPC", "Solar System candidate"
SHARED = "2015BQ311"
SPACED = "P/2010 A2"  # allowed characters, not its own file name
UNSAFE = ("2015BQ311;rm -rf", "index")


def minor_body_cases() -> list[dict]:
    """A designation shared by many ZTF objects, a designation with spaces and a slash, an
    unsafe designation, a single-epoch body, candidates, an MPC row without designation."""
    rng = random.Random(15)
    candids = iter(range(4_000_000_000_000_000_000, 2**63))
    ids = fink_samples.object_ids(rng)
    alerts = []
    alerts += fink_samples.minor_body_alerts(rng, ids, candids, 6, SHARED)  # six ZTF objects
    alerts += fink_samples.minor_body_alerts(rng, ids, candids, 2, SPACED)
    alerts += fink_samples.minor_body_alerts(rng, ids, candids, 2, "4179")
    alerts += fink_samples.minor_body_alerts(rng, ids, candids, 1, "../../etc/passwd")  # allowed, mapped safely
    alerts += fink_samples.minor_body_alerts(rng, ids, candids, 1, "2015BQ311;rm -rf")  # unsafe: skipped
    alerts += fink_samples.minor_body_alerts(rng, ids, candids, 1, "index")  # the index's own name: skipped
    single = fink_samples.fink_alert(rng, "ZTF22aasingl", MPC, 2460400.75, 10.0, 5.0, next(candids), 1,
                                     ssnamenr="433")
    alerts.append(single)  # one epoch: no motion
    for _ in range(3):
        alerts += fink_samples.minor_body_alerts(rng, ids, candids, 1, None)  # candidates
    no_name = fink_samples.fink_alert(rng, "ZTF22aanonam", MPC, 2460401.75, 11.0, 6.0, next(candids), 1,
                                      ssnamenr="")
    alerts.append(no_name)
    negative = next(a for a in alerts if a["i:ssnamenr"] == "4179")
    negative["i:isdiffpos"] = "f"
    return alerts


def night(jd: float) -> dt.date:
    """The ZTF observing night of a time: the UTC date of Palomar's local noon before it."""
    moment = dt.datetime(1858, 11, 17, tzinfo=dt.UTC) + dt.timedelta(days=jd - 2400000.5)
    return (moment - dt.timedelta(hours=12 + 116.86 / 15)).date()


def expected_bodies(alerts: list[dict]) -> dict[str, dict]:
    """Every minor-body field from the Fink rows, in plain Python and astropy."""
    by_candid = {}
    for alert in alerts:
        by_candid.setdefault(str(alert["i:candid"]), alert)
    groups = defaultdict(list)
    for alert in by_candid.values():
        label, name = alert["v:classification"], alert.get("i:ssnamenr")
        if label == MPC and name not in (None, "", "null") and name not in UNSAFE:
            groups[name].append(alert)
        elif label == CANDIDATE:
            groups[alert["i:objectId"]].append(alert)
    bodies = {}
    for slot_id, rows in groups.items():
        rows.sort(key=lambda a: (a["i:jd"], str(a["i:candid"])))
        first, last = rows[0], rows[-1]
        mpc = first["v:classification"] == MPC
        positive = [a for a in rows if a["i:isdiffpos"] == "t"]
        hours = (last["i:jd"] - first["i:jd"]) * 24
        separation = SkyCoord(first["i:ra"] * u.deg, first["i:dec"] * u.deg).separation(
            SkyCoord(last["i:ra"] * u.deg, last["i:dec"] * u.deg)).to(u.arcsec).value
        bodies[slot_id] = {
            "slot_id": slot_id, "kind": "minor_body", "subtype": "mpc" if mpc else "candidate",
            "designation": slot_id if mpc else None, "ztf_object_ids": sorted({a["i:objectId"] for a in rows}),
            "lat": None, "lon": None, "provisional": not mpc, "n_alerts": len(rows),
            "first_mjd": first["i:jd"] - 2400000.5, "last_mjd": last["i:jd"] - 2400000.5,
            "n_nights": len({night(a["i:jd"]) for a in rows}),
            "ra_deg_first": first["i:ra"], "dec_deg_first": first["i:dec"],
            "ra_deg_last": last["i:ra"], "dec_deg_last": last["i:dec"],
            "motion_arcsec_per_hour": separation / hours if hours > 0 else None,
            "mag_brightest": min((a["i:magpsf"] for a in positive), default=None),
            "mag_faintest": max((a["i:magpsf"] for a in positive), default=None),
            "mag_latest": positive[-1]["i:magpsf"] if positive else None,
            "bands": [band for fid, band in ((1, "g"), (2, "r"), (3, "i")) if any(a["i:fid"] == fid for a in rows)],
            "light_curve": expected_curve(rows), "source_fields": last,
        }
    return bodies


def read_kind(storehouse: Path, kind: str) -> dict[str, dict]:
    slots = {}
    for path in (storehouse / kind).glob("*.json"):
        if path.name not in ("index.json", "roster.json"):
            slot = json.loads(path.read_text())
            slots[slot["slot_id"]] = slot
    return slots


def test_minor_body_slots_match_an_independent_computation(pg_url, table, tmp_path):
    alerts = minor_body_cases() + edge_case_alerts()
    rows = [event_row(a) for a in alerts]
    rows += [event_row(alerts[0]), event_row(alerts[1])]  # candids of the shared body stored twice
    insert_rows(pg_url, table, rows)
    store = tmp_path / "store"
    done = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table)
    assert done.returncode == 0, done.stderr

    slots, expected = read_kind(store, "minor_body"), expected_bodies(alerts)
    assert set(slots) == set(expected)
    for slot_id, want in expected.items():
        got = slots[slot_id]
        for key, value in want.items():
            if isinstance(value, float) and key == "motion_arcsec_per_hour":
                assert got[key] == pytest.approx(value, rel=1e-7), (slot_id, key)
            else:
                assert got[key] == value, (slot_id, key)
        assert got["first_detection"].endswith("Z") and got["provenance"]["rows_used"] == want["n_alerts"]
    shared = slots[SHARED]
    assert len(shared["ztf_object_ids"]) == 6 and shared["n_alerts"] == len({a["i:candid"] for a in alerts
                                                                               if a["i:ssnamenr"] == SHARED})
    assert slots["433"]["motion_arcsec_per_hour"] is None and slots["433"]["n_nights"] == 1
    assert any(not flag for curve in slots["4179"]["light_curve"].values() for flag in curve["positive"])

    names = sorted(path.name for path in (store / "minor_body").iterdir())
    assert "P_2F2010_20A2.json" in names and "2015BQ311.json" in names and "4179.json" in names
    # lower-case letters are escaped too (case-safe): "../../etc/passwd" by hand
    assert "_2E_2E_2F_2E_2E_2F_65_74_63_2F_70_61_73_73_77_64.json" in names
    assert not [name for name in names if name.lower() in ("index.json", "roster.json") and name not in
                ("index.json", "roster.json")]
    assert not [name for name in names if name.startswith(".") or ";" in name]
    assert {p.name for p in tmp_path.iterdir()} == {"store"}  # nothing written outside the storehouse
    assert sorted(p.name for p in store.iterdir()) == ["minor_body", "state", "transient"]  # state: build.json
    roster = json.loads((store / "minor_body" / "roster.json").read_text())
    candidates = sum(1 for slot in expected.values() if slot["subtype"] == "candidate")
    assert roster["objects"] == len(expected)
    assert roster["by_subtype"] == {"mpc": len(expected) - candidates, "candidate": candidates}
    unsafe = sum(1 for a in alerts if a.get("i:ssnamenr") in UNSAFE)
    assert roster["skipped_rows"]["unsafe_designation"] == unsafe
    # edge_case_alerts' one MPC alert has no designation either
    assert roster["skipped_rows"]["no_designation"] == 2 and roster["skipped_rows"]["duplicate_candid"] == 2

    index = json.loads((store / "minor_body" / "index.json").read_text())
    assert [entry["slot_id"] for entry in index["slots"]] == sorted(expected)
    (store / "minor_body" / "index.json").unlink()
    assert run_builder("rebuild-index", "--storehouse", str(store), "--kind", "minor_body").returncode == 0
    assert json.loads((store / "minor_body" / "index.json").read_text())["slots"] == index["slots"]


def test_both_kinds_rerun_unchanged_and_kind_flag_restricts(pg_url, table, tmp_path):
    insert_rows(pg_url, table, [event_row(a) for a in minor_body_cases() + edge_case_alerts()])
    store = tmp_path / "store"
    first = fink_build(pg_url, str(store), table=table)
    assert first.kinds["minor_body"].written > 5 and first.kinds["transient"].written > 5

    def files() -> dict[str, tuple[bytes, int]]:
        return {str(p.relative_to(store)): (p.read_bytes(), p.stat().st_mtime_ns) for p in store.rglob("*.json")
                if p.name not in ("index.json", "roster.json") and p.parent.name != "state"}

    before = files()
    second = fink_build(pg_url, str(store), table=table)
    assert (second.written, second.removed) == (0, 0) and second.unchanged == len(before)
    assert files() == before

    only = run_builder("--dsn", pg_url, "--storehouse", str(tmp_path / "only"), "--table", table,
                       "--kind", "minor_body")
    assert only.returncode == 0, only.stderr
    # a build of one kind keeps no mark (no state/), and the writer lock leaves no file
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == ["minor_body"]
    printed = json.loads(only.stdout)
    assert list(printed) == ["rosters"] and list(printed["rosters"]) == ["minor_body"]
    assert printed["rosters"]["minor_body"]["objects"] == len(read_kind(store, "minor_body"))


def test_escaped_slot_names_are_reversible_and_collision_free():
    from alert_pipeline.storehouse.slots import EscapedSlotNames
    names = EscapedSlotNames()
    ids = ["4179", "2015BQ311", "P/2010 A2", "a_b", "a b", "a_20b", "C/2019 Y4-B", ".hidden", "x.y"]
    stems = [names.stem(slot_id) for slot_id in ids]
    assert len(set(stems)) == len(ids)
    assert [names.slot_id(stem) for stem in stems] == ids
    assert stems[:2] == ["4179", "2015BQ311"]
    assert all("/" not in stem and not stem.startswith(".") for stem in stems)
    for bad in ("a\\b", "x" * 65, "", "tab\there", "é"):
        with pytest.raises(ValueError):
            names.stem(bad)
    assert names.slot_id("a_2f") is None and names.slot_id("My notes") is None  # not canonical: not a slot


def test_designations_that_would_clash_on_a_case_insensitive_file_system(pg_url, table, tmp_path):
    """INDEX/Roster in any case and a ZTF-id-shaped designation are refused; only spaces
    is no designation; 2015ab and 2015AB get files whose names differ beyond case."""
    rng = random.Random(23)
    candids = iter(range(4_100_000_000_000_000_000, 2**63))
    ids = fink_samples.object_ids(rng)
    alerts = []
    for designation in ("INDEX", "Roster", "ZTF21ABCDEFG", "2015ab", "2015AB", "   "):
        alerts += fink_samples.minor_body_alerts(rng, ids, candids, 1, designation)
    insert_rows(pg_url, table, [event_row(a) for a in alerts])
    store = tmp_path / "store"
    done = run_builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--kind", "minor_body")
    assert done.returncode == 0, done.stderr
    roster = json.loads((store / "minor_body" / "roster.json").read_text())
    per_body = {d: sum(1 for a in alerts if a["i:ssnamenr"] == d) for d in ("INDEX", "Roster", "ZTF21ABCDEFG", "   ")}
    assert roster["skipped_rows"]["unsafe_designation"] == per_body["INDEX"] + per_body["Roster"] + \
        per_body["ZTF21ABCDEFG"]
    assert roster["skipped_rows"]["no_designation"] == per_body["   "]
    names = sorted(p.name for p in (store / "minor_body").iterdir())
    assert names == ["2015AB.json", "2015_61_62.json", "index.json", "roster.json"]
    assert len({name.lower() for name in names}) == len(names)
    assert {json.loads((store / "minor_body" / n).read_text())["slot_id"] for n in names[:2]} == {"2015AB", "2015ab"}
