"""The galaxy catalogue (load-galaxies) and the hosts step, on real GLADE+ rows and a real
BAYESTAR map with distance layers. Expectations come from the data files read by hand
(tests/data/galaxies/README.md), from ligo.skymap's crossmatch (volume credible levels and
densities) and from astropy (separations, Planck18 distances), never from the module."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.cosmology import Planck18
from ligo.skymap import moc
from ligo.skymap.io import read_sky_map
from ligo.skymap.postprocess.crossmatch import crossmatch

from tests.conftest import REPO
from tests.test_crossmatch import builder, transient, write_transients

DATA = REPO / "tests" / "data" / "galaxies"
GLADE_TXT, GLADE_CSV = DATA / "skyportal_GLADE.txt", DATA / "skyportal_GLADE.csv"
GW_MAP = REPO / "tests" / "data" / "messengers" / "MS181101ab-bayestar.multiorder.fits"
GW_ID = "MS181101ab"


def read_catalogue(path: Path):
    import lsdb

    frame = lsdb.read_hats(str(path)).compute(progress_bar=False).reset_index(drop=True)
    return {row["name"]: row for row in frame.to_dict("records")}


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def glade_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("glade") / "store"
    done = builder("load-galaxies", "--storehouse", str(store), str(GLADE_TXT))
    assert done.returncode == 0, done.stderr
    return store, json.loads(done.stdout)


def test_real_glade_rows_load_with_their_hand_read_values(glade_store):
    store, summary = glade_store
    assert summary["rows"] == 100 and summary["bad_rows"] == {"malformed": 0, "missing": 1,
                                                              "nonpositive_distance": 0, "off_sky": 0}
    assert any("skyportal_GLADE.txt: line 31" in named for named in summary["bad_rows_named"])
    galaxies = read_catalogue(store / "catalogues" / "glade")
    assert len(galaxies) == 100
    ngc4736, ngc4548, hyperleda = galaxies["NGC4736"], galaxies["NGC4548"], galaxies["2797850"]
    assert (ngc4736["ra"], ngc4736["dec"], ngc4736["distance_mpc"], ngc4736["z"]) == (192.721451, 41.120152,
                                                                                       4.392418, 0.001733)
    assert ngc4736["mass"] is None or math.isnan(ngc4736["mass"])
    assert ngc4548["distance_mpc"] == 15.876007 and ngc4548["z"] == 0.0035732712644517
    assert ngc4548["mass"] == pytest.approx(0.3e10, rel=1e-12)
    assert (hyperleda["ra"], hyperleda["dec"], hyperleda["distance_mpc"]) == (52.032654, 51.938011, 3.251439)
    assert sum(1 for galaxy in galaxies.values() if galaxy["mass"] is not None and not math.isnan(galaxy["mass"])) == 12


def test_lsdb_opens_the_stored_catalogue_and_searches_it(glade_store):
    import lsdb

    store, _ = glade_store
    near = lsdb.open_catalog(str(store / "catalogues" / "glade"), filters=[("distance_mpc", "<=", 5.0)])
    found = near.cone_search(188.860123, 14.49632, 60).compute(progress_bar=False)
    assert list(found["name"]) == []  # NGC4548 is at 15.9 Mpc: the filter leaves it out
    found = lsdb.read_hats(str(store / "catalogues" / "glade")).cone_search(188.860123, 14.49632, 60).compute(
        progress_bar=False)
    assert list(found["name"]) == ["NGC4548"]


def test_the_csv_form_of_the_same_rows_gives_the_same_galaxies(glade_store, tmp_path):
    store, _ = glade_store
    done = builder("load-galaxies", "--storehouse", str(tmp_path), "--name", "csv", str(GLADE_CSV))
    assert done.returncode == 0, done.stderr
    from_csv, from_text = read_catalogue(tmp_path / "catalogues" / "csv"), read_catalogue(store / "catalogues" / "glade")
    assert set(from_csv) == set(from_text)
    assert from_csv["NGC4548"]["z"] == 0.003573271 and from_csv["NGC4548"]["distance_mpc"] == 15.876007
    assert from_csv["NGC4548"]["mass"] == pytest.approx(0.3e10, rel=1e-12)


def test_bad_rows_are_counted_named_and_skipped(tmp_path):
    from alert_pipeline.storehouse.galaxies.read import BadRows, read_tables

    good = GLADE_TXT.read_bytes().split(b"\r\n")[1].decode()  # row 2, NGC4548
    fields = good.split(" ")

    def changed(column: int, value: str) -> str:  # 1-based column number
        return " ".join(fields[: column - 1] + [value] + fields[column:])

    lines = [good, changed(33, "null"), changed(33, "-4.2"), changed(10, "95.0"), changed(9, "nan"),
             changed(9, "east"), " ".join(fields[:39]), changed(3, "Kept")]
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n")
    bad = BadRows()
    kept = [name for table in read_tables(str(path), bad, block_bytes=256) for name in table["name"].to_pylist()]
    assert kept == ["NGC4548", "Kept"]
    assert bad.as_dict() == {"malformed": 1, "missing": 3, "nonpositive_distance": 1, "off_sky": 1}
    assert any("bad.txt" in named and "39 fields" in named for named in bad.named)


def test_a_file_of_another_format_is_refused_and_the_stored_catalogue_kept(glade_store, tmp_path):
    store, _ = glade_store
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    before = tree(copy / "catalogues")
    other = REPO / "tests" / "data" / "messengers" / "TA2014-Egt57.mrt.txt"
    done = builder("load-galaxies", "--storehouse", str(copy), str(GLADE_TXT), str(other))
    assert done.returncode == 9, done.stderr
    assert "TA2014-Egt57.mrt.txt" in done.stderr and "neither GLADE+ text" in done.stderr
    assert tree(copy / "catalogues") == before


# ------------------------------------------------------------------ the hosts step
def densest_pixel(table) -> tuple[float, float, float]:
    """The centre (ra, dec) and DISTMU of the map's densest pixel."""
    from astropy_healpix.core import healpix_to_lonlat

    row = table[int(np.argmax(table["PROBDENSITY"]))]
    order, ipix = moc.uniq2nest(row["UNIQ"])
    lon, lat = healpix_to_lonlat(ipix, 2 ** int(order), order="nested")
    return float(lon.deg), float(lat.deg), float(row["DISTMU"])


def offset(ra: float, dec: float, angle_deg: float, arcsec: float) -> SkyCoord:
    return SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(angle_deg * u.deg, arcsec * u.arcsec)


HOST_Z = 0.02
HOST_AT = (40.0, -35.0)


@pytest.fixture(scope="module")
def volume_store(tmp_path_factory):
    """A gw slot with the real BAYESTAR map (distance layers), galaxies placed in and out of
    its volume, and transients 5 kpc and 80 kpc from a galaxy at z = 0.02."""
    root = tmp_path_factory.mktemp("volume")
    store = root / "store"
    (store / "gw").mkdir(parents=True)
    shutil.copy(GW_MAP, store / "gw" / f"{GW_ID}.multiorder.fits")
    (store / "gw" / f"{GW_ID}.json").write_text(json.dumps({"slot_id": GW_ID, "kind": "gw"}))
    table = read_sky_map(str(GW_MAP), moc=True)
    ra, dec, mu = densest_pixel(table)
    placed = {"inA": (ra, dec, mu, 1e10), "inB": (*coords(offset(ra, dec, 0, 1800)), 1.1 * mu, None),
              "inC": (*coords(offset(ra, dec, 90, 3600)), 0.9 * mu, 5e10),
              "inD": (*coords(offset(ra, dec, 180, 900)), 1.3 * mu, None),
              "far": (ra, dec, 10 * mu, 1e10), "away": ((ra + 180) % 360, -dec, mu, 1e10)}
    host_distance = float(Planck18.luminosity_distance(HOST_Z).to_value(u.Mpc))
    lines = ["name,ra,dec,d_L,z,mass"] + [f"{name},{r!r},{d!r},{dist!r},,{'' if m is None else m!r}"
                                          for name, (r, d, dist, m) in placed.items()]
    lines.append(f"HostGal,{HOST_AT[0]},{HOST_AT[1]},{host_distance!r},{HOST_Z},")
    (root / "galaxies.csv").write_text("\n".join(lines) + "\n")
    loaded = builder("load-galaxies", "--storehouse", str(store), str(root / "galaxies.csv"))
    assert loaded.returncode == 0 and json.loads(loaded.stdout)["rows"] == len(placed) + 1, loaded.stderr
    kpc_arcsec = (1 * u.kpc / Planck18.angular_diameter_distance(HOST_Z)).to_value(u.dimensionless_unscaled) * (
        180 / math.pi * 3600)
    near, far = offset(*HOST_AT, 30, 5 * kpc_arcsec), offset(*HOST_AT, 200, 80 * kpc_arcsec)
    write_transients(store, [transient("ZTF5kpc", *coords(near), 60000, 60001),
                             transient("ZTF80kpc", *coords(far), 60000, 60001)])
    return store, table, placed, kpc_arcsec


def coords(position: SkyCoord) -> tuple[float, float]:
    return float(position.ra.deg), float(position.dec.deg)


def run_hosts(store: Path, top: int = 100):
    from alert_pipeline.storehouse.enrich import hosts

    return hosts.run(str(store), hosts.HostSettings("glade", top, 50.0, 10.0))


@pytest.fixture(scope="module")
def ranked(volume_store):
    store, table, placed, _ = volume_store
    summary = run_hosts(store)
    slot = json.loads((store / "gw" / f"{GW_ID}.json").read_text())
    # "far" is beyond six mean distances, where ligo.skymap would stretch its distance grid
    # to reach it (and so change every level): it is left out of the reference, as the
    # hosts step leaves such galaxies out of the volume.
    names = [name for name in placed if name != "far"]
    where = SkyCoord([placed[n][0] for n in names] * u.deg, [placed[n][1] for n in names] * u.deg,
                     [placed[n][2] for n in names] * u.Mpc)
    reference = crossmatch(table, where)
    return summary, slot, names, reference


def test_galaxies_inside_and_outside_the_volume_are_ranked_and_cut(volume_store, ranked):
    _, _, placed, _ = volume_store
    summary, slot, names, reference = ranked
    assert summary["gw"]["ranked"] == 1
    inside = [i for i, name in enumerate(names)
              if reference.searched_prob[i] <= 0.9 and reference.searched_prob_vol[i] <= 0.9]
    assert {names[i] for i in inside} >= {"inA"} and len(inside) >= 2
    assert "away" not in {names[i] for i in inside}
    masses = np.array([placed[names[i]][3] or np.nan for i in inside])
    median = np.nanmedian(masses)
    weight = np.where(np.isnan(masses), 1.0, masses / median)  # the documented weight: mass / median known mass
    score = reference.probdensity_vol[inside] * weight
    expected = [names[inside[i]] for i in np.argsort(-score, kind="stable")]
    listed = slot["host_candidates"]
    assert "far" not in [entry["name"] for entry in listed]
    assert [entry["name"] for entry in listed] == expected
    assert slot["n_galaxies_90_volume"] == len(inside)
    for entry in listed:
        i = names.index(entry["name"])
        assert entry["credible_level_volume"] == pytest.approx(reference.searched_prob_vol[i], rel=1e-9)
        assert entry["prob_density_volume_mpc3"] == pytest.approx(reference.probdensity_vol[i], rel=1e-9)
        assert entry["credible_level"] == pytest.approx(reference.searched_prob[i], rel=1e-9)
        assert entry["distance_mpc"] == placed[entry["name"]][2]


def test_hosts_5_kpc_away_is_found_and_80_kpc_away_is_not(volume_store, ranked):
    store, _, _, kpc_arcsec = volume_store
    near = json.loads((store / "transient" / "ZTF5kpc.json").read_text())
    far = json.loads((store / "transient" / "ZTF80kpc.json").read_text())
    assert near["host"]["name"] == "HostGal" and "host" not in far
    assert near["host"]["projected_kpc"] == pytest.approx(5.0, rel=1e-6)
    assert near["host"]["separation_arcsec"] == pytest.approx(5 * kpc_arcsec, rel=1e-6)
    assert near["host"]["z"] == HOST_Z
    assert 80 * kpc_arcsec < 600  # inside the 10' cap: it is the 50 kpc that leaves it out


def test_a_rerun_writes_nothing_and_a_top_n_cuts_the_list(volume_store, ranked):
    store = volume_store[0]
    stamps = {p: p.stat().st_mtime_ns for p in store.rglob("*.json")}
    again = run_hosts(store)
    assert again["gw"] == {"ranked": 0, "without_distance": 0, "unreadable_map": 0, "unchanged": 1,
                           "slots_written": 0}
    assert again["transient"]["slots_written"] == 0
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*.json") if p.parent.name != "state"} == {
        p: t for p, t in stamps.items() if p.parent.name != "state"}
    full = ranked[1]["host_candidates"]
    cut = run_hosts(store, top=1)
    slot = json.loads((store / "gw" / f"{GW_ID}.json").read_text())
    assert cut["gw"]["slots_written"] == 1 and cut["transient"]["slots_written"] == 0
    assert slot["host_candidates"] == full[:1] and slot["n_galaxies_90_volume"] == ranked[1]["n_galaxies_90_volume"]
    run_hosts(store)  # back to the default


def test_the_ranking_on_a_local_dask_cluster_equals_the_in_process_one(volume_store, ranked):
    from dask.distributed import LocalCluster

    from alert_pipeline.storehouse.galaxies import query
    from alert_pipeline.storehouse.galaxies.volume import read_volume_map

    store = volume_store[0]
    sky = read_volume_map(str(store / "gw" / f"{GW_ID}.multiorder.fits"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                      local_directory=str(store.parent / "dask")) as cluster:
        found = query.galaxies_in_volume(str(store / "catalogues" / "glade"), sky, cluster.scheduler_address)
    listed, total = query.rank(found, 100)
    assert listed == ranked[1]["host_candidates"] and total == ranked[1]["n_galaxies_90_volume"]


def test_a_reloaded_catalogue_rewrites_only_the_slots_whose_answer_changed(volume_store, ranked):
    """HostGal moved 1° away: the 5 kpc transient loses its host; the gw candidates and the
    80 kpc transient (no host before or after) are not rewritten."""
    store = volume_store[0]
    root = store.parent
    text = (root / "galaxies.csv").read_text().replace(f"HostGal,{HOST_AT[0]},", f"HostGal,{HOST_AT[0] + 1.0},")
    (root / "moved.csv").write_text(text)
    assert builder("load-galaxies", "--storehouse", str(store), str(root / "moved.csv")).returncode == 0
    slots = [store / "gw" / f"{GW_ID}.json", store / "transient" / "ZTF5kpc.json", store / "transient" / "ZTF80kpc.json"]
    before = [path.stat().st_mtime_ns for path in slots]
    summary = run_hosts(store)
    after = [path.stat().st_mtime_ns for path in slots]
    assert summary["gw"]["slots_written"] == 0 and summary["transient"]["slots_written"] == 1
    assert after[0] == before[0] and after[1] != before[1] and after[2] == before[2]
    assert json.loads(slots[1].read_text())["host"] is None


def test_a_line_without_end_is_skipped_as_malformed_not_held(tmp_path):
    from alert_pipeline.storehouse.galaxies.read import MAX_LINE_BYTES, BadRows, read_tables

    good = GLADE_TXT.read_bytes().split(b"\r\n")[1]  # row 2, NGC4548
    path = tmp_path / "long.txt"
    path.write_bytes(good + b"\n" + b"x" * (3 * MAX_LINE_BYTES) + b"\n" + good.replace(b"NGC4548", b"Again", 1))
    bad = BadRows()
    kept = [name for table in read_tables(str(path), bad, block_bytes=64 << 10) for name in table["name"].to_pylist()]
    assert kept == ["NGC4548", "Again"] and bad.as_dict()["malformed"] == 1
    assert any("line 2 is longer" in named for named in bad.named)
