"""Distances: the distance layers of real sky maps kept, a transient's distance from its
TNS redshift, and its place in the map's volume as ligo.skymap's ``crossmatch`` finds it.

The maps are the three of tests/data/messengers/ (README there): the S230518h IGWN alert,
the BAYESTAR multi-order map of MS181101ab and the LALInference flat map of GW190814,
all three with DISTMU, DISTSIGMA and DISTNORM. Values of single pixels and header cards
were read by hand from the files (astropy.io.fits) and are written here as numbers;
volume levels and densities are ligo.skymap's, computed here on the same files.

Tolerance against ligo.skymap: crossmatch sums ~19 million voxel probabilities in one
order (by falling density), the code in another (per pixel, then across pixels); float64
sums of N terms of total 1 agree within N·ε ≈ 2·10⁷ × 1.1·10⁻¹⁶ ≈ 2·10⁻⁹ at worst (measured:
4·10⁻¹² on these maps), so levels are compared within 1e-9 absolute. Densities are one
product each, on shells placed from the marginal mean distance, which the two compute
with different rounding (equal within 1e-15 relative): within 1e-9 relative.
"""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.cosmology import Planck18, z_at_value
from astropy.io import fits
from astropy_healpix.core import healpix_to_lonlat
from ligo.skymap import moc
from ligo.skymap.io import read_sky_map
from ligo.skymap.postprocess.crossmatch import crossmatch

from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.messengers.skymaps import read_skymap
from alert_pipeline.storehouse.messengers.volume import REACH_MEANS, marginal_mean_mpc, volume_fields
from tests.test_crossmatch import EVENT_MJD, builder, read, skymap_table
from tests.test_messengers import ALERT, FLAT, load
from tests.test_tns import AT_2026CQA, PUBLIC, SN_2018LZF, tns
from tests.test_tns import slot as tns_slot

BAYESTAR = ALERT.parent / "MS181101ab-bayestar.multiorder.fits"
#: The S230518h alert's map header, read by hand: DISTMEAN, DISTSTD.
S230518H_DISTANCE = (277.9148872009554, 68.2915891646133)


def alert_skymap_bytes() -> bytes:
    return base64.b64decode(json.loads(ALERT.read_text())["event"]["skymap"])


def row_of(skymap, nested_pixel: int, order: int = 10) -> int:
    """The stored row holding ``nested_pixel`` of ``order``: its own, or an ancestor's."""
    for level in range(order, -1, -1):
        uniq = 4 * 4**level + (nested_pixel >> 2 * (order - level))
        found = np.flatnonzero(skymap.uniq == uniq)
        if len(found):
            return int(found[0])
    raise AssertionError(f"no row holds pixel {nested_pixel}")


def layers_at(skymap, row: int) -> tuple[float, float, float]:
    return tuple(float(skymap.distance[name][row]) for name in ("DISTMU", "DISTSIGMA", "DISTNORM"))


def test_a_flat_map_keeps_its_distance_layers_exactly_and_merges_only_where_all_four_columns_are_equal():
    with open(FLAT, "rb") as handle:
        skymap = read_skymap(handle)
    assert skymap.has_distance and len(skymap.uniq) == 16896
    npix = 12 * 1024**2
    # GW190814, NESTED pixel 4266092 (the densest), read by hand: PROB, DISTMU, DISTSIGMA, DISTNORM
    row = row_of(skymap, 4266092)
    assert skymap.probdensity[row] * 4 * math.pi / npix == pytest.approx(0.0005211866762242635, rel=1e-15)
    assert layers_at(skymap, row) == (258.33161128558135, 49.6191964967369, 1.4451433824841608e-05)
    # pixel 0 (1.1714441557730218e-09, 18.481831858075978, 5.13706597638974, 0.002717634504371351): in a merged parent
    row = row_of(skymap, 0)
    assert skymap.orders[row] < 10
    assert layers_at(skymap, row) == (18.481831858075978, 5.13706597638974, 0.002717634504371351)
    # pixels 2097152 and 2101248: both PROB 0, different distances (by hand: DISTMU -12.6613316500688 and
    # -14.591494914058414): their order-3 parent (UNIQ 384) is not made, each order-4 block keeps its own
    assert 384 not in set(skymap.uniq.tolist())
    first, second = row_of(skymap, 2097152), row_of(skymap, 2101248)
    assert (int(skymap.uniq[first]), int(skymap.uniq[second])) == (1536, 1537)
    assert layers_at(skymap, first) == (-12.6613316500688, 4.807894490383661, 56.75537317488519)
    assert layers_at(skymap, second) == (-14.591494914058414, 4.956670424301322, 162.2143632361089)
    # the stored file holds them as ligo.skymap reads them
    stored = read_sky_map(io.BytesIO(skymap.fits_bytes()), moc=True)
    by_uniq = np.argsort(stored["UNIQ"])
    assert np.array_equal(np.asarray(stored["UNIQ"])[by_uniq], np.sort(skymap.uniq))
    for name in ("DISTMU", "DISTSIGMA", "DISTNORM"):
        assert np.array_equal(np.asarray(stored[name])[by_uniq], skymap.distance[name][np.argsort(skymap.uniq)])


def test_a_map_without_distance_layers_has_none():
    table = fits.getdata(BAYESTAR, 1)
    hdu = fits.BinTableHDU.from_columns([fits.Column("UNIQ", "K", array=np.asarray(table["UNIQ"], dtype=np.int64)),
                                         fits.Column("PROBDENSITY", "D", array=table["PROBDENSITY"])])
    hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NUNIQ"})
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    skymap = read_skymap(io.BytesIO(buffer.getvalue()))
    assert not skymap.has_distance and b"DISTMU" not in skymap.fits_bytes()


def positions_and_distances(table, mean: float, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres drawn from the map's probability, at distances spread over crossmatch's grid."""
    rng = np.random.default_rng(seed)
    prob = np.asarray(table["PROBDENSITY"]) * moc.uniq2pixarea(np.asarray(table["UNIQ"]))
    picked = rng.choice(len(table), count, p=prob / prob.sum())
    order, ipix = moc.uniq2nest(np.asarray(table["UNIQ"])[picked])
    lon, lat = zip(*(healpix_to_lonlat(int(i), 2**int(o), order="nested") for o, i in zip(order, ipix, strict=True)),
                   strict=True)
    distance = rng.uniform(0.02, 0.99, count) * REACH_MEANS * mean
    return np.array([x.deg for x in lon]), np.array([x.deg for x in lat]), distance


@pytest.mark.parametrize("which", ["igwn-alert", "bayestar-multiorder", "lalinference-flat"])
def test_volume_levels_and_densities_equal_ligo_skymap_crossmatch(which):
    path = {"igwn-alert": None, "bayestar-multiorder": BAYESTAR, "lalinference-flat": FLAT}[which]
    data = alert_skymap_bytes() if path is None else path.read_bytes()
    skymap = read_skymap(io.BytesIO(data))
    table = read_sky_map(io.BytesIO(data) if path is None else str(path), moc=True)
    ra, dec, distance = positions_and_distances(table, marginal_mean_mpc(skymap), 60, seed=37)
    found = volume_fields(skymap, skymap.pixel_rows(ra, dec), distance)
    reference = crossmatch(table, SkyCoord(ra * u.deg, dec * u.deg, distance * u.Mpc))
    assert np.max(distance) <= REACH_MEANS * marginal_mean_mpc(skymap)  # one grid for all, as crossmatch's
    np.testing.assert_allclose(found["credible_level_volume"], reference.searched_prob_vol, rtol=0, atol=1e-9)
    np.testing.assert_allclose(found["prob_density_volume_mpc3"], reference.probdensity_vol, rtol=1e-9, atol=0)
    assert 0 < np.min(found["credible_level_volume"]) < 0.5 < np.max(found["credible_level_volume"]) < 1.0


def test_transients_beyond_the_grid_get_the_numbers_crossmatch_gives_them_together():
    skymap = read_skymap(io.BytesIO(BAYESTAR.read_bytes()))
    table = read_sky_map(str(BAYESTAR), moc=True)
    # the densest pixel (UNIQ 42318942, read by hand) at ten and eight times the header's DISTMEAN (39.76999609489013),
    # both beyond six mean distances
    order, ipix = moc.uniq2nest(np.array([42318942]))
    lon, lat = healpix_to_lonlat(int(ipix[0]), 2**int(order[0]), order="nested")
    distance = np.array([10 * 39.76999609489013, 8 * 39.76999609489013])
    ra, dec = np.array([lon.deg] * 2), np.array([lat.deg] * 2)
    found = volume_fields(skymap, skymap.pixel_rows(ra, dec), distance)
    reference = crossmatch(table, SkyCoord(ra * u.deg, dec * u.deg, distance * u.Mpc))
    np.testing.assert_allclose(found["credible_level_volume"], reference.searched_prob_vol, rtol=0, atol=1e-9)
    np.testing.assert_allclose(found["prob_density_volume_mpc3"], reference.probdensity_vol, rtol=1e-9, atol=0)
    # its pixel's DISTMU 35.60957805578568, DISTSIGMA 8.261922454588962 (by hand)
    assert found["distance_sigma"][0] == pytest.approx((397.6999609489013 - 35.60957805578568) / 8.261922454588962,
                                                       rel=1e-12)


def write_transient_slots(store, slots: list[dict]) -> None:
    """Transient slots written as the storehouse writes them (refined), then the index."""
    spec = kinds.spec("transient")
    kind = spec.store(str(store))
    for slot in slots:
        kind.write_slot(slot["slot_id"], slot, exists=False)
    assert builder("rebuild-index", "--storehouse", str(store), "--kind", "transient").returncode == 0


def transient(slot_id: str, ra: float, dec: float, redshift: float | None) -> dict:
    slot = {"slot_id": slot_id, "kind": "transient", "subtype": "sn", "ra_deg": ra, "dec_deg": dec,
            "first_mjd": EVENT_MJD + 2.0, "last_mjd": EVENT_MJD + 20, "n_alerts": 3, "provisional": False,
            "lat": None, "lon": None}
    if redshift is not None:
        slot["tns"] = {"name": f"SN {slot_id}", "type": "SN Ia", "redshift": redshift, "discovery_date": None,
                       "match": "position", "separation_arcsec": 0.1}
    return slot


def densest_position(table) -> tuple[float, float, int]:
    row = int(np.argmax(table["PROBDENSITY"]))
    order, ipix = moc.uniq2nest(np.asarray(table["UNIQ"])[[row]])
    lon, lat = healpix_to_lonlat(int(ipix[0]), 2**int(order[0]), order="nested")
    return float(lon.deg), float(lat.deg), row


@pytest.fixture
def near_and_far(tmp_path):
    """S230518h with three transients on its densest pixel: one with a TNS redshift at the
    map's distance, one at ten times it, one with no redshift; the ids in the reverse order."""
    store = tmp_path / "store"
    assert load(store, ALERT).returncode == 0
    table = skymap_table()
    ra, dec, row = densest_position(table)
    near_z = float(z_at_value(Planck18.luminosity_distance, S230518H_DISTANCE[0] * u.Mpc).value)
    far_z = float(z_at_value(Planck18.luminosity_distance, 10 * S230518H_DISTANCE[0] * u.Mpc).value)
    write_transient_slots(store, [transient("ZTF23zzzzzza", ra, dec, near_z), transient("ZTF23mmmmmmb", ra, dec, far_z),
                                  transient("ZTF23aaaaaac", ra, dec, None)])
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    return store, table[row]


def test_a_transient_at_the_maps_distance_ranks_above_one_at_ten_times_it(near_and_far):
    store, pixel = near_and_far
    event = read(store, "gw", "S230518h")
    assert event["has_distance"] is True
    assert (event["distance_mean_mpc"], event["distance_std_mpc"]) == S230518H_DISTANCE
    assert event["transients"] == ["ZTF23zzzzzza", "ZTF23mmmmmmb", "ZTF23aaaaaac"]  # by volume level, then by id
    near, far, bare = (read(store, "transient", slot_id)["multimessenger"][0]
                       for slot_id in ("ZTF23zzzzzza", "ZTF23mmmmmmb", "ZTF23aaaaaac"))
    assert near["distance_mpc"] == pytest.approx(S230518H_DISTANCE[0], rel=1e-6)
    assert far["distance_mpc"] == pytest.approx(10 * S230518H_DISTANCE[0], rel=1e-6)
    assert near["credible_level_volume"] < 0.9 < 0.999 < far["credible_level_volume"]
    assert near["prob_density_volume_mpc3"] > far["prob_density_volume_mpc3"] >= 0
    assert near["distance_sigma"] == pytest.approx(
        (near["distance_mpc"] - pixel["DISTMU"]) / pixel["DISTSIGMA"], rel=1e-12)
    assert not {"distance_mpc", "credible_level_volume", "prob_density_volume_mpc3", "distance_sigma"} & set(bare)
    assert bare["credible_level"] == near["credible_level"]  # the same pixel: the 2-D numbers are unchanged


def test_a_rerun_writes_nothing(near_and_far):
    store, _ = near_and_far
    def slots() -> dict[str, int]:  # the slots and the stored map (the rosters report every run)
        return {path.name: path.stat().st_mtime_ns for pattern in ("gw/S*", "transient/ZTF*") for path in
                store.glob(pattern)}

    before = slots()
    assert len(before) == 5
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["slots_written"] == {}
    assert slots() == before


def test_on_a_map_without_distance_layers_no_volume_fields(tmp_path):
    table = skymap_table()
    hdu = fits.BinTableHDU.from_columns([fits.Column("UNIQ", "K", array=np.asarray(table["UNIQ"], dtype=np.int64)),
                                         fits.Column("PROBDENSITY", "D", array=np.asarray(table["PROBDENSITY"]))])
    hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NUNIQ", "OBJECT": "S230518h",
                       "DATE-OBS": "2023-05-18T12:59:08.167"})
    path = tmp_path / "S230518h-2d.multiorder.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    store = tmp_path / "store"
    assert load(store, path).returncode == 0
    ra, dec, _ = densest_position(table)
    write_transient_slots(store, [transient("ZTF23zzzzzza", ra, dec, 0.06), transient("ZTF23aaaaaac", ra, dec, None)])
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    event = read(store, "gw", "S230518h")
    assert (event["has_distance"], event["distance_mean_mpc"], event["distance_std_mpc"]) == (False, None, None)
    assert event["transients"] == ["ZTF23aaaaaac", "ZTF23zzzzzza"]  # nothing ranks them: by id
    entry = read(store, "transient", "ZTF23zzzzzza")["multimessenger"][0]
    assert entry["event"] == "S230518h" and "credible_level" in entry
    assert not {"distance_mpc", "credible_level_volume", "prob_density_volume_mpc3", "distance_sigma"} & set(entry)


def test_a_tns_redshift_gives_the_slot_and_its_index_entry_a_planck18_distance(tmp_path):
    store = tmp_path / "store"
    write_transient_slots(store, [tns_slot("ZTF18abquxjv", SN_2018LZF), tns_slot("ZTF26aafuoxy", AT_2026CQA)])
    done = tns(store, PUBLIC)
    assert done.returncode == 0, done.stderr
    # SN 2018lzf names ZTF18abquxjv, redshift 0.074 (read by hand); AT 2026cqa has no redshift
    expected = {"mpc": float(Planck18.luminosity_distance(0.074).to_value(u.Mpc)), "redshift": 0.074,
                "source": "tns_redshift"}
    assert read(store, "transient", "ZTF18abquxjv")["distance"] == expected
    assert "distance" not in read(store, "transient", "ZTF26aafuoxy")
    index = {entry["slot_id"]: entry for entry in json.loads((store / "transient" / "index.json").read_text())["slots"]}
    assert index["ZTF18abquxjv"]["distance"] == expected and index["ZTF26aafuoxy"]["distance"] is None
    assert 330 < expected["mpc"] < 350  # z = 0.074: about 340 Mpc
    before = {path.name: path.read_bytes() for path in (store / "transient").glob("ZTF*.json")}
    assert tns(store, PUBLIC).returncode == 0
    assert {path.name: path.read_bytes() for path in (store / "transient").glob("ZTF*.json")} == before


def test_a_host_galaxy_gives_the_distance_when_tns_gives_none_and_a_stale_distance_goes():
    from alert_pipeline.storehouse.fink.distance import refine, transient_distance

    host = {"name": "NGC 4993", "separation_arcsec": 10.0, "projected_kpc": 2.0, "distance_mpc": 40.4, "z": 0.009727}
    base = {"slot_id": "ZTF17aaaaaaa", "kind": "transient"}
    assert transient_distance({**base, "host": host}) == {"mpc": 40.4, "redshift": 0.009727, "source": "host_galaxy"}
    blueshifted = {"name": "AT 2017a", "redshift": -0.001}  # TNS's Local Group objects: no distance of their own
    assert transient_distance({**base, "tns": blueshifted, "host": host})["source"] == "host_galaxy"
    own = transient_distance({**base, "tns": {"redshift": 0.009727}, "host": host})
    assert own == {"mpc": float(Planck18.luminosity_distance(0.009727).to_value(u.Mpc)), "redshift": 0.009727,
                   "source": "tns_redshift"}
    only_z = transient_distance({**base, "host": {**host, "distance_mpc": None}})
    assert only_z["mpc"] == own["mpc"] and only_z["source"] == "host_galaxy"
    assert transient_distance({**base, "tns": {"redshift": None}}) is None
    stale = {**base, "distance": {"mpc": 1.0, "redshift": None, "source": "host_galaxy"}}
    assert "distance" not in refine(stale) and refine(base) is base
