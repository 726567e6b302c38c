"""Messenger kinds (gw, neutrino, uhecr) from the formats the community publishes.

Every real file lives in ``tests/data/messengers`` (origins in its README). Expected
values are read by hand from those files, or computed here by ligo.skymap, the
reference implementation, never by the module under test.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from ligo.skymap import moc
from ligo.skymap.io import read_sky_map
from ligo.skymap.postprocess.crossmatch import crossmatch

from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH

DATA = REPO / "tests" / "data" / "messengers"
ALERT = DATA / "S230518h-initial.igwn.json"
FLAT = DATA / "GW190814-LALInference.v1.fits.gz"
ICECAT = DATA / "IceCube_Gold_Bronze_Tracks.csv"
AUGER = DATA / "AugerApJS2022-first40.dat"
TA = DATA / "TA2014-Egt57.mrt.txt"
GOLD_BRONZE = DATA / "icecube-gold_bronze_track_alert.example.json"
LVK_NU = DATA / "icecube-lvk_nu_track_search.example.json"


def load(storehouse: Path, *files: Path | str, extra: tuple[str, ...] = (), limit_gb: float | None = None
         ) -> subprocess.CompletedProcess:
    def limit() -> None:
        if limit_gb:
            resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30),) * 2)

    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-messengers",
                           "--storehouse", str(storehouse), *extra, *map(str, files)],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def slot(storehouse: Path, kind: str, slot_id: str) -> dict:
    return json.loads((storehouse / kind / f"{slot_id}.json").read_text())


def alert_doc(**changes) -> dict:
    doc = json.loads(ALERT.read_text())
    doc.update(changes)
    return doc


def write_json(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


# ------------------------------------------------------------------ gravitational waves
def test_igwn_alert_json_becomes_a_gw_slot_with_its_sky_map(tmp_path):
    store = tmp_path / "store"
    done = load(store, ALERT)
    assert done.returncode == 0, done.stderr
    got = slot(store, "gw", "S230518h")
    # by hand from the alert: superevent, type, event time, FAR, significance, classification
    assert got["alert_type"] == "INITIAL" and got["retracted"] is False
    assert got["time"] == "2023-05-18T12:59:08.167000Z" and got["far_hz"] == 3.218261352069347e-10
    assert got["significant"] is True and got["classification"]["NSBH"] == 0.8642645059209272
    assert got["instruments"] == ["H1", "L1"] and got["pipeline"] == "pycbc"
    assert got["properties"] == {"HasNS": 1.0, "HasRemnant": 0.0, "HasMassGap": 0.0}
    assert got["lat"] is None and got["lon"] is None
    # the areas, by ligo.skymap on the alert's own sky map
    skymap = read_sky_map(io.BytesIO(base64.b64decode(json.loads(ALERT.read_text())["event"]["skymap"])), moc=True)
    reference = crossmatch(skymap, contours=(0.5, 0.9)).contour_areas
    assert got["area_50_deg2"] == pytest.approx(reference[0], rel=1e-12)
    assert got["area_90_deg2"] == pytest.approx(reference[1], rel=1e-12)
    # the stored map is the alert's map, as ligo.skymap reads it
    stored = read_sky_map(str(store / "gw" / got["skymap"]), moc=True)
    assert np.array_equal(np.sort(stored["UNIQ"]), np.sort(skymap["UNIQ"]))
    assert np.allclose(stored["PROBDENSITY"][np.argsort(stored["UNIQ"])],
                       skymap["PROBDENSITY"][np.argsort(skymap["UNIQ"])], rtol=0, atol=0)
    index = json.loads((store / "gw" / "index.json").read_text())
    assert [entry["slot_id"] for entry in index["slots"]] == ["S230518h"]


def test_a_flat_gzipped_map_of_12_6_million_pixels_is_stored_as_multi_order_losslessly(tmp_path):
    store = tmp_path / "store"
    done = load(store, FLAT, limit_gb=3)
    assert done.returncode == 0, done.stderr
    # no OBJECT card: named from DATE-OBS 2019-08-14T21:10:38.995869 as the catalogues do
    got = slot(store, "gw", "GW190814_211039")
    assert got["time"] == "2019-08-14T21:10:38.995869Z" and got["alert_type"] is None
    original = read_sky_map(str(FLAT), moc=True)
    reference = crossmatch(original, contours=(0.5, 0.9)).contour_areas
    assert [got["area_50_deg2"], got["area_90_deg2"]] == pytest.approx(reference, rel=1e-12)
    stored = read_sky_map(str(store / "gw" / got["skymap"]), moc=True)
    # merged where four siblings are equal in PROB and the three distance layers: the very pixels ligo.skymap's
    # own lossless merge (read_sky_map(moc=True) of a flat map) makes, 16,896 rows of 12,582,912 pixels
    assert len(stored) == 16896 and np.array_equal(np.sort(stored["UNIQ"]), np.sort(original["UNIQ"]))
    assert json.loads((store / "gw" / "roster.json").read_text())["by_alert_type"] == {"sky-map file": 1}
    flat = fits.getdata(FLAT, 1)["PROB"]  # nested, NSIDE 1024 (order 10)
    density = moc.rasterize(stored, order=10)["PROBDENSITY"]  # nested at order 10
    np.testing.assert_allclose(density * (4 * np.pi / len(flat)), flat, rtol=1e-14, atol=0)  # every pixel


def test_a_ring_ordered_flat_map_gives_the_areas_ligo_skymap_gives(tmp_path):
    from astropy_healpix.core import nested_to_ring

    coarse = fits.getdata(FLAT, 1)["PROB"].reshape(-1, 4**4).sum(axis=1)  # NSIDE 64, nested
    ring = np.empty_like(coarse)
    ring[nested_to_ring(np.arange(len(coarse)), 64)] = coarse
    table = fits.BinTableHDU.from_columns([fits.Column("PROB", "D", array=ring)])
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "RING", "NSIDE": 64, "INDXSCHM": "IMPLICIT",
                         "OBJECT": "G330561", "DATE-OBS": "2019-08-14T21:10:38.995869"})
    path = tmp_path / "ring.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    done = load(tmp_path / "store", path)
    assert done.returncode == 0, done.stderr
    got = slot(tmp_path / "store", "gw", "G330561")
    reference = crossmatch(read_sky_map(str(path), moc=True), contours=(0.5, 0.9)).contour_areas
    assert [got["area_50_deg2"], got["area_90_deg2"]] == pytest.approx(reference, rel=1e-12)


def test_later_alerts_replace_older_ones_retraction_marks_and_mocks_are_skipped(tmp_path):
    store = tmp_path / "store"
    update = write_json(tmp_path / "update.json", alert_doc(alert_type="UPDATE", time_created="2023-05-18T16:52:32Z"))
    early = write_json(tmp_path / "early.json", alert_doc(alert_type="PRELIMINARY", time_created="2023-05-18T13:00:00Z"))
    mock = write_json(tmp_path / "mock.json", alert_doc(superevent_id="MS230518h"))
    done = load(store, ALERT, update, early, mock)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr  # the mock, not loaded: the user is told
    summary = json.loads(done.stdout)["files"]
    assert summary["skipped"] == {"mock_event": 1, "superseded": 1}
    # an older alert of a stored superevent was read and is known: not an unused file
    assert [(entry["file"], entry["reason"]) for entry in summary["unused"]] == [(str(mock), "mock_event")]
    assert slot(store, "gw", "S230518h")["alert_type"] == "UPDATE"
    assert not (store / "gw" / "MS230518h.json").exists()
    retraction = write_json(tmp_path / "retraction.json", {"superevent_id": "S230518h", "alert_type": "RETRACTION",
                                                           "time_created": "2023-05-18T18:00:00Z", "event": None})
    assert load(store, retraction).returncode == 0
    got = slot(store, "gw", "S230518h")
    assert got["retracted"] is True and got["area_90_deg2"] > 0 and (store / "gw" / got["skymap"]).exists()
    assert json.loads((store / "gw" / "roster.json").read_text())["retracted"] == 1
    assert load(store, mock, extra=("--accept-mock",)).returncode == 0
    assert slot(store, "gw", "MS230518h")["alert_type"] == "INITIAL"


# ------------------------------------------------------------------ neutrinos
def test_icecat_rows_revisions_and_two_events_under_one_name(tmp_path):
    store = tmp_path / "store"
    done = load(store, ICECAT)
    assert done.returncode == 0, done.stderr
    got = slot(store, "neutrino", "IC191001A")  # line 242, by hand
    assert (got["ra_deg"], got["dec_deg"]) == (313.99, 12.79)
    assert (got["ra_err_plus_deg"], got["ra_err_minus_deg"], got["dec_err_plus_deg"], got["dec_err_minus_deg"]) == \
        (6.94, 2.46, 1.65, 1.64)
    assert (got["energy_tev"], got["signalness"], got["far_per_year"], got["stream"]) == (218.0, 0.59, 0.86, "gold")
    assert got["time"] == "2019-10-01T20:09:18.174021Z" and got["mjd"] == 58757.8397936808
    revised = slot(store, "neutrino", "IC231103A")  # line 351 (no EVENTMJD), revised by line 365
    assert (revised["ra_err_plus_deg"], revised["dec_err_minus_deg"], revised["mjd"]) == (0.92, 0.5, 60251.38721400463)
    first = slot(store, "neutrino", "IC240327A")  # two events published under one name
    second = slot(store, "neutrino", "IC240327A-139204-39158985")
    assert (first["run_id"], first["ra_deg"]) == ("139205", 89.2099) and second["ra_deg"] == 25.3999
    rows = [line for line in ICECAT.read_text().splitlines()[1:] if line.strip()]
    assert json.loads((store / "neutrino" / "index.json").read_text())["count"] == len(rows) - 1  # one revision


def test_icecube_gcn_notices_track_alert_and_lvk_coincidences(tmp_path):
    store = tmp_path / "store"
    done = load(store, GOLD_BRONZE, LVK_NU)
    assert done.returncode == 0, done.stderr
    alert = slot(store, "neutrino", "IC230416A")  # "IceCube-230416A", by hand
    assert (alert["ra_deg"], alert["dec_deg"], alert["ra_err_plus_deg"], alert["dec_err_minus_deg"]) == \
        (345.82, 9.01, 0.5, 0.5)
    assert (alert["energy_tev"], alert["signalness"], alert["stream"]) == (127.29, 0.34064, "bronze")
    assert alert["far_per_year"] == pytest.approx(8.029e-8 * 365.25 * 86400, rel=1e-12)
    assert alert["time"] == "2023-04-16T05:22:26.150574Z"
    coincident = slot(store, "neutrino", "IC138590-39138551")  # trigger 11:14:01Z + 12.91 s
    assert coincident["time"] == "2023-09-14T11:14:13.910000Z" and coincident["gw_reference"] == "S230914ak"
    assert (coincident["ra_deg"], coincident["dec_deg"], coincident["ra_err_minus_deg"]) == (17.48, 16.15, 0.5)


# ------------------------------------------------------------------ cosmic rays
def test_auger_and_telescope_array_lists_and_a_plain_csv(tmp_path):
    store = tmp_path / "store"
    ta_unicode = tmp_path / "ta-unicode.txt"
    ta_unicode.write_text(TA.read_text().replace("285.74  -1.69", "285.74  \u22121.69"), encoding="utf-8")
    plain = tmp_path / "other.csv"
    plain.write_text("experiment,time,ra_deg,dec_deg,energy_eev\nYakutsk,2005-03-02T10:00:00Z,12.5,60.1,70\n")
    done = load(store, AUGER, ta_unicode, plain)
    assert done.returncode == 0, done.stderr
    auger = slot(store, "uhecr", "Auger-20040119T121801")  # first row: UTC 1074514681
    assert (auger["ra_deg"], auger["dec_deg"], auger["energy_eev"], auger["zenith_deg"]) == (295.6, -31.0, 50.9, 51.3)
    assert auger["time"] == "2004-01-19T12:18:01Z" and auger["experiment"] == "Auger"
    ta = slot(store, "uhecr", "TA-20080610T170537")  # "2008 Jun 10 17 05 37 46.91  88.8  93.50  20.82"
    assert (ta["zenith_deg"], ta["energy_eev"], ta["ra_deg"], ta["dec_deg"]) == (46.91, 88.8, 93.5, 20.82)
    assert slot(store, "uhecr", "TA-20080629T082245")["dec_deg"] == -1.69  # a Unicode minus
    assert slot(store, "uhecr", "Yakutsk-20050302T100000")["energy_eev"] == 70.0
    roster = json.loads((store / "uhecr" / "roster.json").read_text())
    assert roster["by_experiment"] == {"Auger": 40, "TA": 72, "Yakutsk": 1}


# ------------------------------------------------------------------ idempotence, index
def test_loading_the_same_files_again_rewrites_nothing(tmp_path):
    store = tmp_path / "store"
    files = [ALERT, ICECAT, AUGER, TA, GOLD_BRONZE, LVK_NU]
    assert load(store, *files).returncode == 0

    def state() -> dict:
        return {str(p.relative_to(store)): (p.read_bytes(), p.stat().st_mtime_ns) for p in store.rglob("*")
                if p.is_file() and p.name not in ("index.json", "roster.json")}

    before = state()
    again = load(store, *files)
    assert again.returncode == 0
    assert json.loads(again.stdout)["files"]["written"] == {}
    assert state() == before
    (store / "neutrino" / "index.json").unlink()
    done = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "rebuild-index", "--storehouse",
                           str(store), "--kind", "neutrino"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in ICECAT.read_text().splitlines()[1:] if line.strip()]
    # IceCat rows less one revision, IC230416A again from its notice, two LVK coincidences
    assert json.loads((store / "neutrino" / "index.json").read_text())["count"] == len(rows) - 1 + 2


# ------------------------------------------------------------------ bad input
def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input and the reason it must be skipped with."""
    made: dict[str, tuple[Path, str]] = {}
    cut = tmp_path / "cut.fits.gz"
    cut.write_bytes(FLAT.read_bytes()[:200_000])
    made["truncated gz sky map"] = (cut, "bad_skymap")
    fake = tmp_path / "fake.fits"
    fake.write_bytes(b"SIMPLE  = nonsense" + b" " * 5000)
    made["not FITS"] = (fake, "bad_skymap")
    made["base64 that is not FITS"] = (write_json(tmp_path / "b64.json", alert_doc(
        event={**json.loads(ALERT.read_text())["event"], "skymap": base64.b64encode(b"hello").decode()})),
        "bad_skymap")
    table = read_sky_map(io.BytesIO(base64.b64decode(json.loads(ALERT.read_text())["event"]["skymap"])), moc=True)
    doubled = fits.BinTableHDU.from_columns([fits.Column("UNIQ", "K", array=table["UNIQ"]),
                                             fits.Column("PROBDENSITY", "D", array=2 * table["PROBDENSITY"])])
    doubled.header.update({"ORDERING": "NUNIQ", "PIXTYPE": "HEALPIX", "OBJECT": "G1", "DATE-OBS": "2023-05-18T12:59:08"})
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), doubled]).writeto(buffer)
    doubled_path = tmp_path / "doubled.fits.gz"
    doubled_path.write_bytes(gzip.compress(buffer.getvalue()))
    made["probabilities summing to 2"] = (doubled_path, "bad_skymap")
    rows = ICECAT.read_text().splitlines()
    nan = tmp_path / "nan.csv"
    nan.write_text("\n".join([rows[0], rows[1].replace(",138.47,", ",nan,")]) + "\n")
    made["NaN RA"] = (nan, "bad_coordinates")
    dec = tmp_path / "dec.csv"
    dec.write_text("\n".join([rows[0], rows[2].replace(",35.64,", ",135.64,")]) + "\n")
    made["Dec out of range"] = (dec, "bad_coordinates")
    negative = tmp_path / "negative.csv"
    negative.write_text("\n".join([rows[0], rows[3].replace(",1.41,2.07,", ",-1.41,2.07,")]) + "\n")
    made["negative error"] = (negative, "bad_error")
    unknown = tmp_path / "notes.txt"
    unknown.write_text("my observing notes\nnothing here\n")
    made["unknown format"] = (unknown, "unknown_format")
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(2 << 30)  # 2 GB, sparse: refused by its size before anything is read
    made["2 GB file"] = (huge, "too_large")
    huge_map = tmp_path / "huge.fits"
    with open(huge_map, "wb") as handle:
        handle.write(b"SIMPLE  =                    T")
        handle.truncate(2 << 30)
    made["2 GB sky map"] = (huge_map, "bad_skymap")
    return made


def test_bad_inputs_are_skipped_and_counted_and_everything_else_is_loaded(tmp_path):
    cases = bad_inputs(tmp_path)
    store = tmp_path / "store"
    done = load(store, ALERT, *(path for path, _ in cases.values()), AUGER, limit_gb=3)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr  # every bad file here is wholly unused
    summary = json.loads(done.stdout)["files"]
    assert sorted(entry["file"] for entry in summary["unused"]) == sorted(str(path) for path, _ in cases.values())
    skipped = summary["skipped"]
    expected: dict[str, int] = {}
    for _, reason in cases.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert skipped == expected
    for name, (path, reason) in cases.items():
        assert f"skipped {path.name}" in done.stderr and f"({reason})" in done.stderr, name
    assert slot(store, "gw", "S230518h")["alert_type"] == "INITIAL"  # everything else loaded
    assert json.loads((store / "uhecr" / "index.json").read_text())["count"] == 40
    assert sorted(p.name for p in (store / "gw").iterdir()) == ["S230518h.json", "S230518h.multiorder.fits",
                                                                 "index.json", "roster.json"]
