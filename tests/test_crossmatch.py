"""crossmatch on real events (the S230518h sky map, IceCat-1's IC191001A, Auger's first
events), with transients placed by the test. Every expectation is computed here from the
files: credible levels and densities by ligo.skymap, separations by astropy, the ellipse
radius and n_chance by the issue's formulas written out again, never by the module."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.time import Time
from ligo.skymap import moc
from ligo.skymap.io import read_sky_map
from ligo.skymap.postprocess.crossmatch import crossmatch

from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_messengers import ALERT, AUGER, ICECAT, load

SKY = 4 * 180**2 / math.pi
EVENT_MJD = Time("2023-05-18T12:59:08.167", scale="utc").mjd  # S230518h, read from the alert
IC191001A = {"mjd": 58757.8397936808, "ra": 313.99, "dec": 12.79, "ra_plus": 6.94, "ra_minus": 2.46,
             "dec_plus": 1.65, "dec_minus": 1.64}  # IceCat-1 line 242
AUGER_FIRST = {"ra": 295.6, "dec": -31.0, "mjd": Time(1074514681, format="unix").mjd}  # first row
AT2019DSG = (314.26206, 14.20427)  # ZTF19aapreis (Stein et al. 2021), from TNS


def builder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), *args], capture_output=True,
                          text=True, timeout=300, env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def skymap_table():
    encoded = json.loads(ALERT.read_text())["event"]["skymap"]
    return read_sky_map(io.BytesIO(base64.b64decode(encoded)), moc=True)


def position_at_level(table, level: float) -> tuple[float, float]:
    """The centre of the pixel where the cumulative probability (pixels by falling
    density) first reaches ``level``."""
    ordered = np.flipud(np.sort(table, order="PROBDENSITY"))
    cumulative = np.cumsum(ordered["PROBDENSITY"] * moc.uniq2pixarea(ordered["UNIQ"]))
    row = ordered[int(np.searchsorted(cumulative, level))]
    from astropy_healpix import level_ipix_to_uniq, uniq_to_level_ipix  # noqa: F401
    from astropy_healpix.core import healpix_to_lonlat

    order, ipix = moc.uniq2nest(row["UNIQ"])
    lon, lat = healpix_to_lonlat(ipix, 2**int(order), order="nested")
    return float(lon.deg), float(lat.deg)


def transient(slot_id: str, ra: float | None, dec: float | None, first: float, last: float) -> dict:
    return {"slot_id": slot_id, "kind": "transient", "subtype": "sn", "ra_deg": ra, "dec_deg": dec,
            "first_mjd": first, "last_mjd": last, "n_alerts": 3, "provisional": False, "lat": None, "lon": None}


def write_transients(store: Path, slots: list[dict]) -> None:
    (store / "transient").mkdir(parents=True, exist_ok=True)
    for slot in slots:
        (store / "transient" / f"{slot['slot_id']}.json").write_text(json.dumps(slot))
    assert builder("rebuild-index", "--storehouse", str(store), "--kind", "transient").returncode == 0


@pytest.fixture
def matched(tmp_path):
    store = tmp_path / "store"
    assert load(store, ALERT, ICECAT, AUGER).returncode == 0
    table = skymap_table()
    inside, outside = position_at_level(table, 0.5), position_at_level(table, 0.95)
    near_auger = SkyCoord(AUGER_FIRST["ra"] * u.deg, AUGER_FIRST["dec"] * u.deg).directional_offset_by(
        30 * u.deg, 2 * u.deg)
    slots = [
        transient("ZTF23aaaaaaa", *inside, EVENT_MJD + 2.0, EVENT_MJD + 20),      # in the 90 % region, 2 d after
        transient("ZTF23aaaaaab", *outside, EVENT_MJD + 2.0, EVENT_MJD + 20),     # at the 95 % level
        transient("ZTF23aaaaaac", *inside, EVENT_MJD - 1.0, EVENT_MJD + 20),      # first seen before the merger
        transient("ZTF23aaaaaad", *inside, EVENT_MJD + 15.0, EVENT_MJD + 30),     # 15 d after: outside the window
        transient("ZTF19aapreis", *AT2019DSG, 58582.46, 58800.0),                 # AT2019dsg, IC191001A's TDE
        transient("ZTF04aaaaaaa", near_auger.ra.deg, near_auger.dec.deg, AUGER_FIRST["mjd"] + 100,
                  AUGER_FIRST["mjd"] + 200),                                       # 2° from Auger's first event
        transient("ZTF21aaaaaaz", None, None, 59000.0, 59001.0),                   # no position
    ]
    write_transients(store, slots)
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    return store, table, slots, json.loads(done.stdout)


def read(store: Path, kind: str, slot_id: str) -> dict:
    return json.loads((store / kind / f"{slot_id}.json").read_text())


def test_gw_coincidences_are_the_credible_levels_ligo_skymap_finds(matched):
    store, table, slots, summary = matched
    position = SkyCoord(slots[0]["ra_deg"] * u.deg, slots[0]["dec_deg"] * u.deg)
    reference = crossmatch(table, position)
    (found,) = read(store, "transient", "ZTF23aaaaaaa")["multimessenger"]
    assert (found["kind"], found["event"]) == ("gw", "S230518h")
    assert found["credible_level"] == pytest.approx(reference.searched_prob, rel=1e-9)
    assert found["prob_density_deg2"] == pytest.approx(reference.probdensity * (math.pi / 180) ** 2, rel=1e-9)
    assert found["dt_days"] == pytest.approx(2.0, abs=1e-6)
    area_90 = crossmatch(table, contours=(0.9,)).contour_areas[0]
    in_window = sum(1 for s in slots if s["ra_deg"] is not None and 0 <= s["first_mjd"] - EVENT_MJD <= 14)
    assert found["n_chance"] == pytest.approx(in_window * area_90 / SKY, rel=1e-9)
    outside = SkyCoord(slots[1]["ra_deg"] * u.deg, slots[1]["dec_deg"] * u.deg)
    assert crossmatch(table, outside).searched_prob > 0.9
    for slot_id in ("ZTF23aaaaaab", "ZTF23aaaaaac", "ZTF23aaaaaad"):
        assert "multimessenger" not in read(store, "transient", slot_id), slot_id  # absent: none
    assert read(store, "gw", "S230518h")["transients"] == ["ZTF23aaaaaaa"]


def test_at2019dsg_matches_ic191001a_as_stein_et_al_found(matched):
    store, _, slots, _ = matched
    (found,) = [item for item in read(store, "transient", "ZTF19aapreis")["multimessenger"] if item["kind"] == "neutrino"]
    assert found["event"] == "IC191001A"
    d_ra, d_dec = AT2019DSG[0] - IC191001A["ra"], AT2019DSG[1] - IC191001A["dec"]  # both positive: the + errors
    assert found["ellipse_r"] == pytest.approx(math.hypot(d_ra / IC191001A["ra_plus"], d_dec / IC191001A["dec_plus"]),
                                               rel=1e-12)
    expected = SkyCoord(*AT2019DSG, unit="deg").separation(SkyCoord(IC191001A["ra"], IC191001A["dec"], unit="deg"))
    assert found["separation_deg"] == pytest.approx(expected.deg, rel=1e-9)
    assert found["dt_days"] == pytest.approx(58582.46 - IC191001A["mjd"], abs=1e-9)
    area = math.pi / 4 * (IC191001A["ra_plus"] + IC191001A["ra_minus"]) * math.cos(math.radians(IC191001A["dec"])) \
        * (IC191001A["dec_plus"] + IC191001A["dec_minus"])
    in_window = sum(1 for s in slots if s["ra_deg"] is not None
                    and s["first_mjd"] - 30 <= IC191001A["mjd"] <= s["last_mjd"] + 30)
    assert found["n_chance"] == pytest.approx(in_window * area / SKY, rel=1e-9)
    assert read(store, "neutrino", "IC191001A")["transients"] == ["ZTF19aapreis"]


def test_cosmic_ray_within_three_degrees_and_a_year(matched):
    store, _, slots, summary = matched
    (found,) = read(store, "transient", "ZTF04aaaaaaa")["multimessenger"]
    assert (found["kind"], found["event"]) == ("uhecr", "Auger-20040119T121801")
    assert found["separation_deg"] == pytest.approx(2.0, rel=1e-9)
    cap = 2 * math.pi * (1 - math.cos(math.radians(3))) * (180 / math.pi) ** 2
    in_window = sum(1 for s in slots if s["ra_deg"] is not None
                    and s["first_mjd"] - 365 <= AUGER_FIRST["mjd"] <= s["last_mjd"] + 365)
    assert found["n_chance"] == pytest.approx(in_window * cap / SKY, rel=1e-9)
    assert summary["coincidences_by_kind"] == {"gw": 1, "neutrino": 1, "uhecr": 1, "grb": 0}
    assert summary["skipped"] == {"transient_without_position": 1}
    roster = json.loads((store / "transient" / "roster.json").read_text())
    assert roster["multimessenger"]["least_likely_by_chance"][0]["n_chance"] == min(
        item["n_chance"] for item in roster["multimessenger"]["least_likely_by_chance"])


def test_rerun_rewrites_nothing_and_a_new_event_touches_only_its_slots(matched, tmp_path):
    store = matched[0]

    def mtimes() -> dict[str, int]:
        return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*.json")
                if p.parent.name in ("transient", "gw", "neutrino", "uhecr") and p.name not in ("index.json",
                                                                                               "roster.json")}

    before = mtimes()
    again = builder("crossmatch", "--storehouse", str(store))
    assert again.returncode == 0 and json.loads(again.stdout)["slots_written"] == {}
    assert mtimes() == before
    extra = tmp_path / "ray.csv"  # a cosmic ray 1° from AT2019dsg, during its detections
    extra.write_text("experiment,time,ra_deg,dec_deg,energy_eev\nTA,2019-06-01T00:00:00Z,314.26206,13.20427,80\n")
    assert load(store, extra).returncode == 0
    before = mtimes()
    third = builder("crossmatch", "--storehouse", str(store))
    assert third.returncode == 0
    changed = {name for name, stamp in mtimes().items() if before.get(name) != stamp}
    assert changed == {"transient/ZTF19aapreis.json", "uhecr/TA-20190601T000000.json"}
    kinds = [item["kind"] for item in read(store, "transient", "ZTF19aapreis")["multimessenger"]]
    assert sorted(kinds) == ["neutrino", "uhecr"]
    # a new transient beside AT2019dsg: its slot, the events it matches, and the transients
    # whose n_chance it changes (it falls in those events' windows); nothing else
    write_transients(store, [transient("ZTF19aanewtr", AT2019DSG[0] + 0.1, AT2019DSG[1], 58590.0, 58800.0)])
    before = mtimes()
    assert builder("crossmatch", "--storehouse", str(store)).returncode == 0
    changed = {name for name, stamp in mtimes().items() if before.get(name) != stamp}
    assert changed == {"transient/ZTF19aanewtr.json", "transient/ZTF19aapreis.json", "neutrino/IC191001A.json",
                       "uhecr/TA-20190601T000000.json"}
    assert read(store, "neutrino", "IC191001A")["transients"] == ["ZTF19aanewtr", "ZTF19aapreis"]


def test_broken_messenger_slots_are_skipped_and_the_rest_matched(matched):
    store = matched[0]
    (store / "gw" / "S230518h.multiorder.fits").unlink()
    neutrino = read(store, "neutrino", "IC191001A")
    del neutrino["dec_err_plus_deg"]
    (store / "neutrino" / "IC191001A.json").write_text(json.dumps(neutrino))
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["skipped"] == {"missing_field": 1, "missing_skymap": 1, "transient_without_position": 1}
    assert "S230518h skipped" in done.stderr and "IC191001A skipped" in done.stderr
    assert summary["coincidences_by_kind"] == {"gw": 0, "neutrino": 0, "uhecr": 1, "grb": 0}
    assert read(store, "transient", "ZTF04aaaaaaa")["multimessenger"][0]["kind"] == "uhecr"


def test_retracted_events_are_ignored_and_rules_are_settings(matched, tmp_path):
    store = matched[0]
    retraction = tmp_path / "retraction.json"
    retraction.write_text(json.dumps({"superevent_id": "S230518h", "alert_type": "RETRACTION",
                                      "time_created": "2023-05-19T00:00:00Z", "event": None}))
    assert load(store, retraction).returncode == 0
    config = tmp_path / "builder.toml"
    config.write_text("[crossmatch]\nuhecr_radius_deg = 1.5\n")
    done = builder("crossmatch", "--storehouse", str(store), "--config", str(config))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["coincidences_by_kind"] == {"gw": 0, "neutrino": 1, "uhecr": 0, "grb": 0}  # retracted; 2° > 1.5°
    assert summary["skipped"]["retracted"] == 1 and summary["rules"]["uhecr_radius_deg"] == 1.5
    assert read(store, "transient", "ZTF23aaaaaaa")["multimessenger"] == []
    bad = builder("crossmatch", "--storehouse", str(store), "--nu-scale", "-1")
    assert bad.returncode == 2 and "must be a positive number" in bad.stderr


def built_storehouse(pg_url: str, table: str, tmp_path: Path, single: dict[str, int], seed: int) -> tuple[Path, dict]:
    """Sample Fink alerts loaded and built by the real builder; the storehouse and the
    first transient slot."""
    from alert_pipeline.storehouse.fink.load import load_fink
    from devtools import fink_samples

    alerts = fink_samples.dataset(fink_samples.Composition(single=single, cross=[], solar_system_objects=0,
                                                           mixed_with_solar_system=0), seed=seed)
    source = tmp_path / "fink.json"
    source.write_text(json.dumps(alerts))
    load_fink(pg_url, [str(source)], table=table)
    store = tmp_path / "store"
    assert builder("--dsn", pg_url, "--storehouse", str(store), "--table", table).returncode == 0
    return store, read(store, "transient", sorted(p.stem for p in (store / "transient").glob("ZTF*.json"))[0])


def test_a_later_build_keeps_the_coincidences_and_the_roster_summary(pg_url, table, tmp_path):
    """The real build from Fink rows, a neutrino placed on one of its transients, the
    cross-match, then the build again: every slot keeps its coincidences."""
    from devtools import fink_samples

    store, target = built_storehouse(pg_url, table, tmp_path, {"sn": 3, "kilonova": 0, "unknown": 1}, seed=7)
    events = tmp_path / "ray.csv"
    moment = Time(target["first_mjd"], format="mjd").isot
    events.write_text(f"experiment,time,ra_deg,dec_deg,energy_eev\nAuger,{moment}Z,{target['ra_deg']},"
                      f"{target['dec_deg']},60\n")
    assert load(store, events).returncode == 0
    assert builder("crossmatch", "--storehouse", str(store)).returncode == 0
    matched = read(store, "transient", target["slot_id"])["multimessenger"]
    assert [item["kind"] for item in matched] == ["uhecr"] and matched[0]["separation_deg"] < 1e-6
    import random

    later = fink_samples.fink_alert(random.Random(8), target["slot_id"], "SN candidate", target["last_mjd"] + 2400001.5,
                                    target["ra_deg"], target["dec_deg"], 7_000_000_000_000_000_001, 1)
    from .test_builder import event_row, insert_rows

    insert_rows(pg_url, table, [event_row(later)])  # the target's slot is rewritten by the incremental build
    rebuilt = builder("--dsn", pg_url, "--storehouse", str(store), "--table", table)
    assert rebuilt.returncode == 0, rebuilt.stderr
    slot = read(store, "transient", target["slot_id"])
    assert slot["n_alerts"] == target["n_alerts"] + 1 and slot["multimessenger"] == matched
    full = builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--full")
    assert full.returncode == 0, full.stderr
    assert read(store, "transient", target["slot_id"])["multimessenger"] == matched
    others = [read(store, "transient", p.stem) for p in (store / "transient").glob("ZTF*.json")
              if p.stem != target["slot_id"]]
    assert len(others) == 3 and all("multimessenger" not in slot for slot in others)  # none: never written
    roster = json.loads((store / "transient" / "roster.json").read_text())
    assert roster["multimessenger"]["coincidences_by_kind"]["uhecr"] == 1 and roster["objects"] == 4


def test_a_first_run_writes_only_the_transients_with_coincidences(matched):
    """Absent means none: of the seven transient slots only the three matched ones are
    written (the other four, one without a position, are never opened)."""
    store, _, _, summary = matched
    assert summary["transients_with_coincidences"] == 3
    assert summary["slots_written"]["transient"] == 3
    carrying = sorted(p.stem for p in (store / "transient").glob("ZTF*.json") if "multimessenger" in read(store, "transient", p.stem))
    assert carrying == ["ZTF04aaaaaaa", "ZTF19aapreis", "ZTF23aaaaaaa"]


def test_without_its_state_a_rerun_empties_coincidences_no_record_vouches_for(matched):
    """The state lost, and a slot without coincidences given some by hand (as a restore
    from another storehouse's backup would): every slot is read once and that list emptied."""
    store = matched[0]
    (store / "state" / "crossmatch.json").unlink()
    stale = read(store, "transient", "ZTF23aaaaaab")
    stale["multimessenger"] = [{"kind": "gw", "event": "S230518h", "n_chance": 0.1, "dt_days": 2.0}]
    (store / "transient" / "ZTF23aaaaaab.json").write_text(json.dumps(stale))
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    assert read(store, "transient", "ZTF23aaaaaab")["multimessenger"] == []
    assert json.loads(done.stdout)["slots_written"]["transient"] == 1
    assert [item["event"] for item in read(store, "transient", "ZTF23aaaaaaa")["multimessenger"]] == ["S230518h"]


def test_a_rerun_with_nothing_new_matches_nothing_again(matched, monkeypatch):
    """Nothing the match reads changed: the last result stands without a match (the
    matching function is not called) and no slot is written."""
    from alert_pipeline.storehouse import kinds
    from alert_pipeline.storehouse.enrich import crossmatch as matching

    store = matched[0]
    called = []
    monkeypatch.setattr(matching, "_match_kind", lambda *args: called.append(args) or {})
    summary = matching.run(str(store), kinds.match_rules()())
    assert called == [] and summary["slots_written"] == {}
    assert summary["coincidences_by_kind"] == {"gw": 1, "neutrino": 1, "uhecr": 1, "grb": 0}
    (store / "neutrino" / "IC191001A.json").touch()  # a messenger file changed: matched again
    matching.run(str(store), kinds.match_rules()())
    assert [args[0] for args in called] == [kind.name for kind in kinds.messenger_kinds()]
