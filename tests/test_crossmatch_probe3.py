"""The cross-match items of the third probe (issue 33: 10, 11, 12 and the lower ones),
on real events: S230518h's multi-order sky map with pixels taken out, its retraction,
IC191001A of IceCat-1 and Auger's first event. Every expected level and density is
ligo.skymap's, every separation astropy's; every command is the real one, in a child
process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.table import Table, vstack
from astropy.time import Time
from astropy_healpix import healpix_to_lonlat
from ligo.skymap import moc
from ligo.skymap.io import write_sky_map
from ligo.skymap.postprocess.crossmatch import crossmatch

from tests.test_crossmatch import (
    AT2019DSG,
    AUGER_FIRST,
    EVENT_MJD,
    builder,
    built_storehouse,
    position_at_level,
    read,
    skymap_table,
    transient,
    write_transients,
)
from tests.test_messengers import ALERT, AUGER, ICECAT, load

MAP_FILE = ("gw", "S230518h.multiorder.fits")  # where load-messengers keeps S230518h's map


def run_crossmatch(store: Path, *args: str) -> dict:
    done = builder("crossmatch", "--storehouse", str(store), *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def pixel_centres(table: Table) -> tuple[np.ndarray, np.ndarray]:
    order, ipix = moc.uniq2nest(table["UNIQ"])
    ra, dec = [], []
    for level, index in zip(order, ipix, strict=True):
        lon, lat = healpix_to_lonlat(int(index), 2 ** int(level), order="nested")
        ra.append(float(lon.deg))
        dec.append(float(lat.deg))
    return np.array(ra), np.array(dec)


def levels_by_ligo(table: Table) -> np.ndarray:
    """Each pixel's searched probability, by ligo.skymap at the pixel's centre."""
    return np.asarray(crossmatch(table, SkyCoord(*pixel_centres(table), unit="deg")).searched_prob)


# ------------------------------------------------------------------ 10: a map that does not cover the sky
def gaps(table: Table) -> np.ndarray:
    """Rows of S230518h's map to take out: the lowest-density pixels (credible level above
    0.999, by ligo.skymap) that follow, in nested order, a pixel inside the 90 % region,
    so that ligo.skymap's lookup (which assumes the map covers the sky) puts a position in
    them at that pixel's level; and the first and last pixels of the sky (level above
    0.999 too), where a lookup falls off either end."""
    level = levels_by_ligo(table)
    order, ipix = moc.uniq2nest(table["UNIQ"])
    start = ipix.astype(np.int64) << (2 * (order.max() - order))
    by_start = np.argsort(start)
    after_inside = [by_start[k] for k in range(1, len(by_start))
                    if level[by_start[k]] > 0.999 and level[by_start[k - 1]] <= 0.9]
    ends = [by_start[0], by_start[-1]]
    assert len(after_inside) >= 5 and all(level[row] > 0.999 for row in ends)
    return np.array(after_inside + ends)


@pytest.fixture(scope="module")
def gapped(tmp_path_factory) -> tuple[Table, Table, Path]:
    """S230518h's map without the ``gaps`` rows (as ligo.skymap writes a multi-order
    file), the rows taken out, and the file."""
    table = skymap_table()
    taken = gaps(table)
    keep = np.ones(len(table), dtype=bool)
    keep[taken] = False
    partial = table[keep]
    path = tmp_path_factory.mktemp("gapped") / "S230518h-gapped.multiorder.fits"
    write_sky_map(str(path), partial, moc=True)
    return partial, table[taken], path


def test_the_map_with_gaps_still_loads_and_ligo_skymap_is_fooled_by_the_gaps(gapped):
    """The preconditions: the map with gaps is a valid map (its probability sums to 1
    within 1 %), and ligo.skymap's crossmatch, which assumes a map covers the sky, puts
    some positions in the gaps inside the 90 % region."""
    partial, removed, _ = gapped
    total = float(np.sum(partial["PROBDENSITY"] * moc.uniq2pixarea(partial["UNIQ"])))
    assert 0.99 < total < 1
    in_gaps = crossmatch(partial, SkyCoord(*pixel_centres(removed), unit="deg")).searched_prob
    assert np.sum(in_gaps <= 0.9) >= 5


def test_credible_levels_of_a_map_with_gaps(gapped):
    """Covered positions: ligo.skymap's level and density. Positions in the gaps:
    probability 0, so level 1 and density 0 (what ligo.skymap gives once the gaps are
    filled with pixels of density 0, bar the level, which it leaves at the total)."""
    from alert_pipeline.storehouse.messengers.rules import credible_levels
    from alert_pipeline.storehouse.messengers.skymaps import read_skymap
    partial, removed, path = gapped
    with open(path, "rb") as handle:
        skymap = read_skymap(handle, os.path.getsize(path))
    covered = partial[::40]
    ra, dec = pixel_centres(covered)
    levels, density = credible_levels(skymap, ra, dec)
    reference = crossmatch(partial, SkyCoord(ra, dec, unit="deg"))
    np.testing.assert_allclose(levels, reference.searched_prob, rtol=1e-9)
    np.testing.assert_allclose(density, reference.probdensity * (np.pi / 180) ** 2, rtol=1e-9)
    ra, dec = pixel_centres(removed)
    levels, density = credible_levels(skymap, ra, dec)
    assert levels.tolist() == [1.0] * len(removed) and density.tolist() == [0.0] * len(removed)
    zeros = removed.copy()
    zeros["PROBDENSITY"] = 0.0
    filled = crossmatch(vstack([partial, zeros]), SkyCoord(ra, dec, unit="deg"))
    assert np.all(filled.probdensity == 0) and np.all(filled.searched_prob > 0.99)


def test_transients_in_the_gaps_of_a_map_are_not_matched(gapped, tmp_path):
    partial, removed, path = gapped
    store = tmp_path / "store"
    assert load(store, ALERT).returncode == 0
    store.joinpath(*MAP_FILE).write_bytes(path.read_bytes())  # the event's map, now with gaps
    inside = position_at_level(partial, 0.5)
    ra, dec = pixel_centres(removed)
    in_gaps = [transient(f"ZTF23gap{k:04d}", float(ra[k]), float(dec[k]), EVENT_MJD + 2, EVENT_MJD + 20)
               for k in range(len(removed))]
    write_transients(store, [transient("ZTF23inside", *inside, EVENT_MJD + 2, EVENT_MJD + 20), *in_gaps])
    summary = run_crossmatch(store)
    for slot in in_gaps:
        assert "multimessenger" not in read(store, "transient", slot["slot_id"]), slot["slot_id"]
    (found,) = read(store, "transient", "ZTF23inside")["multimessenger"]
    assert found["credible_level"] == pytest.approx(
        crossmatch(partial, SkyCoord(*inside, unit="deg")).searched_prob, rel=1e-9)
    assert read(store, "gw", "S230518h")["transients"] == ["ZTF23inside"]
    assert summary["coincidences_by_kind"]["gw"] == 1


# ------------------------------------------------------------------ 11: both sides agree
@pytest.fixture
def linked(tmp_path) -> Path:
    """S230518h and a transient at its 50 % level two days later, matched."""
    store = tmp_path / "store"
    assert load(store, ALERT).returncode == 0
    write_transients(store, [transient("ZTF23linked", *position_at_level(skymap_table(), 0.5), EVENT_MJD + 2,
                                       EVENT_MJD + 20)])
    run_crossmatch(store)
    assert read(store, "gw", "S230518h")["transients"] == ["ZTF23linked"]
    assert [item["event"] for item in read(store, "transient", "ZTF23linked")["multimessenger"]] == ["S230518h"]
    return store


def test_after_a_retraction_neither_side_keeps_the_link(linked, tmp_path):
    retraction = tmp_path / "retraction.json"
    retraction.write_text(json.dumps({"superevent_id": "S230518h", "alert_type": "RETRACTION",
                                      "time_created": "2023-05-19T00:00:00Z", "event": None}))
    assert load(linked, retraction).returncode == 0
    summary = run_crossmatch(linked)
    assert read(linked, "transient", "ZTF23linked")["multimessenger"] == []
    assert read(linked, "gw", "S230518h")["transients"] == []
    assert summary["skipped"] == {"retracted": 1}
    assert summary["skipped_events"]["gw/S230518h"].startswith("retracted")


@pytest.mark.parametrize("damage", ["removed", "corrupt"])
def test_after_the_map_is_lost_neither_side_keeps_the_link_and_the_summary_says_why(linked, damage):
    skymap = linked.joinpath(*MAP_FILE)
    if damage == "removed":
        skymap.unlink()
    else:
        skymap.write_bytes(skymap.read_bytes()[:5000])  # cut short, as a full disk would leave it
    summary = run_crossmatch(linked)
    assert read(linked, "transient", "ZTF23linked")["multimessenger"] == []
    assert read(linked, "gw", "S230518h")["transients"] == []
    reason = {"removed": "missing_skymap", "corrupt": "bad_skymap"}[damage]
    assert summary["skipped"] == {reason: 1}
    assert summary["skipped_events"]["gw/S230518h"].startswith(f"{reason}: its sky map S230518h.multiorder.fits")


# ------------------------------------------------------------------ 12: state checked against the disk
def test_a_slot_restored_without_its_coincidences_gets_them_back(linked):
    """A transient slot rewritten without ``multimessenger`` and its mtime set back (a
    restore from a backup keeps mtimes), and the gw slot deleted and loaded again from
    the alert (so without ``transients``): the next run restores both."""
    path = linked / "transient" / "ZTF23linked.json"
    slot = json.loads(path.read_text())
    expected = slot.pop("multimessenger")
    stat = path.stat()
    path.write_text(json.dumps(slot))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (linked / "gw" / "S230518h.json").unlink()
    assert load(linked, ALERT).returncode == 0
    assert "transients" not in read(linked, "gw", "S230518h")
    summary = run_crossmatch(linked)
    assert read(linked, "transient", "ZTF23linked")["multimessenger"] == expected
    assert read(linked, "gw", "S230518h")["transients"] == ["ZTF23linked"]
    assert summary["slots_written"] == {"gw": 1, "transient": 1}
    assert run_crossmatch(linked)["slots_written"] == {}  # and then nothing to do


def test_a_slot_the_build_recreates_gets_its_coincidences_back(pg_url, table, tmp_path):
    """The real build from Fink rows, a cosmic ray on one transient, the cross-match; the
    transient's slot file deleted and rebuilt from scratch by a full build (so without
    ``multimessenger``): the next cross-match restores it."""
    store, target = built_storehouse(pg_url, table, tmp_path, {"sn": 2, "kilonova": 0, "unknown": 1}, seed=11)
    ray = tmp_path / "ray.csv"
    ray.write_text(f"experiment,time,ra_deg,dec_deg,energy_eev\nAuger,{Time(target['first_mjd'], format='mjd').isot}Z,"
                   f"{target['ra_deg']},{target['dec_deg']},60\n")
    assert load(store, ray).returncode == 0
    run_crossmatch(store)
    matched = read(store, "transient", target["slot_id"])["multimessenger"]
    assert [item["kind"] for item in matched] == ["uhecr"]
    (store / "transient" / f"{target['slot_id']}.json").unlink()
    rebuilt = builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--full")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "multimessenger" not in read(store, "transient", target["slot_id"])
    summary = run_crossmatch(store)
    assert read(store, "transient", target["slot_id"])["multimessenger"] == matched
    assert summary["slots_written"] == {"transient": 1}


# ------------------------------------------------------------------ lower: an off-sky slot, the rules
def test_an_off_sky_cosmic_ray_is_skipped_and_counted_and_the_rest_matched(tmp_path):
    store = tmp_path / "store"
    assert load(store, AUGER).returncode == 0
    near = SkyCoord(AUGER_FIRST["ra"] * u.deg, AUGER_FIRST["dec"] * u.deg).directional_offset_by(30 * u.deg, 2 * u.deg)
    write_transients(store, [transient("ZTF04nearray", near.ra.deg, near.dec.deg, AUGER_FIRST["mjd"] + 100,
                                       AUGER_FIRST["mjd"] + 200)])
    other = {"slot_id": "Other-20040201T000000", "kind": "uhecr", "time": "2004-02-01T00:00:00Z",
             "mjd": AUGER_FIRST["mjd"] + 12, "ra_deg": 10.0, "dec_deg": 95.0, "energy_eev": 50.0}
    (store / "uhecr" / f"{other['slot_id']}.json").write_text(json.dumps(other))  # written by another tool
    summary = run_crossmatch(store)
    assert summary["skipped"] == {"off_sky": 1}
    assert "dec_deg 95" in summary["skipped_events"]["uhecr/Other-20040201T000000"]
    (found,) = read(store, "transient", "ZTF04nearray")["multimessenger"]
    assert found["event"] == "Auger-20040119T121801"
    assert found["separation_deg"] == pytest.approx(2.0, rel=1e-9)
    assert read(store, "uhecr", "Other-20040201T000000")["transients"] == []


@pytest.fixture(scope="module")
def neutrino_store(tmp_path_factory) -> Path:
    """IceCat-1 and AT2019dsg, which IC191001A matches: a scale reaches the neutrino
    arithmetic."""
    store = tmp_path_factory.mktemp("rules") / "store"
    assert load(store, ICECAT).returncode == 0
    write_transients(store, [transient("ZTF19aapreis", *AT2019DSG, 58582.46, 58800.0)])
    return store


BAD_RULES = [
    ("[crossmatch]\nnu_scale = 1e200\n", (), "nu_scale = 1e+200: must be a positive number at most 10"),
    ("crossmatch = 5\n", (), "crossmatch = 5 must be a table"),
    ("crossmatch = [1, 2]\n", (), "crossmatch = [1, 2] must be a table"),
    ("[crossmatch]\nuhecr_radius_deg = 720\n", (), "uhecr_radius_deg = 720: must be a positive number at most 30"),
    ("[crossmatch]\ngw_credible_level = true\n", (), "gw_credible_level = True: must be a positive number at most 1"),
    ("[crossmatch]\ngw_window_days = \"14\"\n", (), "gw_window_days = '14': must be a positive number at most 3650"),
    ("[crossmatch]\nnu_window_days = nan\n", (), "nu_window_days = nan: must be a positive number at most 3650"),
    ("[crossmatch]\nuhecr_window_days = 1e9\n", (), "uhecr_window_days = 1000000000.0: must be a positive number"),
    ("[crossmatch]\nuhecr_window_days = 99999999999999999999\n", (), "uhecr_window_days = 99999999999999999999:"),
    ("[crossmatch]\nnu_scale = {a = 1}\n", (), "nu_scale = {'a': 1}: must be a positive number at most 10"),
    ("", ("--nu-scale", "1e200"), "nu_scale = 1e+200: must be a positive number at most 10"),
    ("", ("--gw-credible-level", "1.5"), "gw_credible_level = 1.5: must be a positive number at most 1"),
    ("", ("--uhecr-radius-deg", "inf"), "uhecr_radius_deg = inf: must be a positive number at most 30"),
]


@pytest.mark.parametrize(("config_text", "flags", "message"), BAD_RULES)
def test_every_rule_is_bounded_and_type_checked_by_the_command(neutrino_store, tmp_path, config_text, flags, message):
    config = tmp_path / "builder.toml"
    config.write_text(config_text)
    done = builder("crossmatch", "--storehouse", str(neutrino_store), "--config", str(config), *flags)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_rules_at_their_limits_are_accepted(neutrino_store, tmp_path):
    config = tmp_path / "builder.toml"
    config.write_text("[crossmatch]\nuhecr_radius_deg = 30\ngw_credible_level = 1\nnu_window_days = 3650\n"
                      "nu_scale = 10\n")
    summary = run_crossmatch(neutrino_store, "--config", str(config))
    assert summary["rules"] == {"gw_window_days": 14.0, "gw_credible_level": 1.0, "nu_window_days": 3650.0,
                                "nu_scale": 10.0, "uhecr_window_days": 365.0, "uhecr_radius_deg": 30.0,
                                "grb_window_days": 3.0}
    events = [item["event"] for item in read(neutrino_store, "transient", "ZTF19aapreis")["multimessenger"]]
    assert "IC191001A" in events and len(events) > 1  # ten times the regions over ten years: more than one


def test_cosmic_ray_pairs_found_in_batches_are_astropys(monkeypatch):
    """However small the batches of rays, the pairs are astropy's search_around_sky's."""
    from alert_pipeline.storehouse import kinds
    from alert_pipeline.storehouse.messengers import rules as module
    rng = np.random.default_rng(3)
    count = 400
    ra, dec = rng.uniform(0, 360, count), np.degrees(np.arcsin(rng.uniform(-1, 1, count)))
    entries = [transient(f"ZTF{k:09d}", float(ra[k]), float(dec[k]), 59000.0, 59010.0) for k in range(count)]
    transients, _ = module.Transients.from_index(entries)
    rays = [{"ra_deg": float(r), "dec_deg": float(d), "mjd": 59005.0} for r, d in rng.uniform((0, -60), (360, 60),
                                                                                               (50, 2))]
    rules = kinds.match_rules()(uhecr_radius_deg=20.0)
    monkeypatch.setattr(module, "PAIR_BUDGET", 7)  # a few rays per batch
    found = module.uhecr_pairs(rays, transients, rules)
    got = {(ray, transients.ids[m.transient]) for ray, matches in found.items() for m in matches}
    ray_index, sky_index, _, _ = search_around_sky(SkyCoord([r["ra_deg"] for r in rays], [r["dec_deg"] for r in rays],
                                                            unit="deg"), SkyCoord(ra, dec, unit="deg"), 20 * u.deg)
    assert got == {(int(i), f"ZTF{int(j):09d}") for i, j in zip(ray_index, sky_index, strict=True)}
    assert len(got) > 100

