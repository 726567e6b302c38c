"""The third probe's messenger items (issue 33): real files that did not load, inputs that
crashed ``load-messengers``, a gzip bomb, files of which nothing was used, and one GW
event loaded twice.

Real files live in ``tests/data/messengers`` (origins in its README). Expected values are
read by hand from those files or computed by ligo.skymap / astropy, never by the code
under test. Hostile inputs run in a child process with memory and CPU-time limits.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import resource
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from ligo.skymap.io import read_sky_map
from ligo.skymap.postprocess.crossmatch import crossmatch

from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_messengers import ALERT, AUGER, DATA, GOLD_BRONZE, ICECAT, LVK_NU
from tests.test_messengers import TA as TA_CDS

O3_MAP = DATA / "MS181101ab-bayestar.multiorder.fits"
TA_GALACTIC = DATA / "TA2014-Egt57-with-galactic.txt"
#: The exit code of a load of which some file was not used (alert_pipeline.exitcodes
#: EXIT_INPUT_UNUSED); read here as a number so this file also runs against old code.
INPUT_UNUSED = 9


def load(storehouse: Path, *files: Path | str, extra: tuple[str, ...] = (), limit_gb: float = 3,
         cpu_seconds: int = 300, timeout: float = 300) -> subprocess.CompletedProcess:
    """``load-messengers`` in a child with an address-space and CPU-time limit."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30),) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))

    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-messengers",
                           "--storehouse", str(storehouse), *extra, *map(str, files)],
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def slot(storehouse: Path, kind: str, slot_id: str) -> dict:
    return json.loads((storehouse / kind / f"{slot_id}.json").read_text())


def summary_of(done: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)["files"]


def write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


# ------------------------------------------------------------------ 1. unsigned UNIQ (TZERO = 2^63)
def test_an_o3_bayestar_map_with_unsigned_uniq_loads_with_ligo_skymaps_areas(tmp_path):
    header = fits.getheader(O3_MAP, 1)
    assert (header["TFORM1"], header["TZERO1"]) == ("K", 2**63)  # the layout under test, as served
    store = tmp_path / "store"
    done = load(store, O3_MAP, extra=("--accept-mock",))  # OBJECT = 'MS181101ab': a mock event
    assert done.returncode == 0, done.stderr
    got = slot(store, "gw", "MS181101ab")  # OBJECT card
    assert got["time"] == "2018-11-01T22:22:46.654437Z"  # DATE-OBS, by hand
    assert got["instruments"] == ["H1", "L1", "V1"]  # INSTRUME = 'H1,L1,V1'
    reference = crossmatch(read_sky_map(str(O3_MAP), moc=True), contours=(0.5, 0.9)).contour_areas
    assert [got["area_50_deg2"], got["area_90_deg2"]] == pytest.approx(reference, rel=1e-12)
    stored = read_sky_map(str(store / "gw" / got["skymap"]), moc=True)
    original = fits.getdata(O3_MAP, 1)  # astropy applies TZERO: uint64
    assert int(original["UNIQ"][0]) == 1058  # the first row, by hand: stored 1058 - 2^63
    assert np.array_equal(np.sort(stored["UNIQ"].astype(np.int64)), np.sort(original["UNIQ"].astype(np.int64)))


# ------------------------------------------------------------------ 2. Telescope Array as published
def test_telescope_array_rows_with_colons_and_with_galactic_columns(tmp_path):
    published = tmp_path / "ta-published.txt"  # the paper's Table 1 prints the time as hh:mm:ss
    lines = [line for line in TA_CDS.read_text().splitlines() if line[:4].isdigit()]
    published.write_text("Date Time(UTC) theta E RA Dec\n" + "\n".join(
        f"{line[:11]} {line[12:14]}:{line[15:17]}:{line[18:20]} {line[21:]}" for line in lines) + "\n")
    assert "2008 Jun 10 17:05:37 46.91  88.8  93.50  20.82" in published.read_text()
    store = tmp_path / "store"
    done = load(store, published)
    assert done.returncode == 0, done.stderr
    got = slot(store, "uhecr", "TA-20080610T170537")
    assert (got["zenith_deg"], got["energy_eev"], got["ra_deg"], got["dec_deg"]) == (46.91, 88.8, 93.5, 20.82)
    assert json.loads((store / "uhecr" / "roster.json").read_text())["by_experiment"] == {"TA": 72}

    other = tmp_path / "other"  # a real copy with galactic l, b appended to every row
    done = load(other, TA_GALACTIC)
    assert done.returncode == 0, done.stderr
    # "2008 Jun 29 08 22 45 41.20 101.4 285.74  -1.69 32.74 -3.33", by hand
    got = slot(other, "uhecr", "TA-20080629T082245")
    assert (got["zenith_deg"], got["energy_eev"], got["ra_deg"], got["dec_deg"]) == (41.2, 101.4, 285.74, -1.69)
    # "2013 Apr 28 17 05 20 38.73  68.5  47.08  31.32 154.41 -23.06", the last row
    assert slot(other, "uhecr", "TA-20130428T170520")["dec_deg"] == 31.32
    assert json.loads((other / "uhecr" / "index.json").read_text())["count"] == 72


# ------------------------------------------------------------------ 3. files of which nothing was used
def test_load_files_lists_the_files_of_which_nothing_was_used(tmp_path):
    from alert_pipeline.storehouse.messengers.load import load_files
    notes = tmp_path / "notes.txt"
    notes.write_text("my observing notes\n")
    rows = ICECAT.read_text().splitlines()
    half = tmp_path / "half.csv"  # one good row, one bad: used, its problem only counted
    half.write_text("\n".join([rows[0], rows[1], rows[2].replace(",35.64,", ",135.64,")]) + "\n")
    report, _ = load_files(str(tmp_path / "store"), [str(AUGER), str(notes), str(half)])
    assert [(entry["file"], entry["reason"]) for entry in report.unused] == [(str(notes), "unknown_format")]
    assert "first line" in report.unused[0]["detail"]
    assert report.skipped == {"unknown_format": 1, "bad_coordinates": 1}
    assert report.as_dict()["unused"] == report.unused
    again, _ = load_files(str(tmp_path / "store"), [str(AUGER), str(half)])  # nothing new, all known
    assert again.unused == [] and again.unchanged["uhecr"] == 40


# ------------------------------------------------------------------ 5. inputs that crashed the run
def fits_bytes_with(path: Path, old: bytes, new: bytes) -> bytes:
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    return data.replace(old, new)


def hostile_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each input that ended ``load-messengers`` with a traceback, and its reason."""
    made: dict[str, tuple[Path, str]] = {}

    def put(name: str, content: bytes | str | object, reason: str) -> None:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            write_json(path, content)
        made[name] = (path, reason)

    card = b"OBJECT  = 'MS181101ab'"
    put("object-index.fits", fits_bytes_with(O3_MAP, card, b"OBJECT  = 'index'     "), "unsafe_id")
    alert = json.loads(ALERT.read_text())
    put("roster.json", {**alert, "superevent_id": "ROSTER"}, "unsafe_id")
    put("instruments-5.json", {**alert, "superevent_id": "S230518i", "event": {**alert["event"], "instruments": 5}},
        "bad_value")
    rows = ICECAT.read_text().splitlines()
    name = rows[1].split(",")[0]
    put("icecat-index.csv", "\n".join([rows[0], rows[1].replace(name, "index", 1)]) + "\n", "unsafe_id")
    put("icecat-commas.csv", "\n".join([rows[0], rows[2] + ",1,2,3"]) + "\n", "bad_row")
    notice = json.loads(GOLD_BRONZE.read_text())
    put("id-5.json", {**notice, "id": 5}, "bad_value")
    put("event-name-7.json", {**notice, "event_name": 7}, "bad_value")
    search = json.loads(LVK_NU.read_text())
    put("coincident-3.json", {**search, "coincident_events": 3}, "bad_value")
    event = search["coincident_events"][0]
    put("localization-list.json", {**search, "coincident_events": [{**event, "localization": [1, 2]}]}, "bad_value")
    put("event-dt-1e12.json", {**search, "coincident_events": [{**event, "event_dt": 1e12}]}, "bad_time")
    put("event-dt-3e9.json", {**search, "coincident_events": [{**event, "event_dt": 3e9}]}, "bad_time")
    put("unclosed.csv", 'experiment,time,ra_deg,dec_deg,energy_eev\n"Yakutsk' + "x" * 200_000 + "\n", "bad_row")
    naxis1 = fits_bytes_with(O3_MAP, b"NAXIS1  =                   40", b"NAXIS1  =                1E400")
    put("naxis1-1e400.fits", naxis1, "bad_skymap")
    huge_rows = fits_bytes_with(O3_MAP, b"NAXIS1  =                   40", b"NAXIS1  =            100000000")
    huge_rows = huge_rows.replace(b"NAXIS2  =                19200", b"NAXIS2  =              4000000")
    huge_rows = huge_rows.replace(b"TFORM5  = 'D       ' ", b"TFORM5  = '99999968B'")
    put("moc-1e8-byte-rows.fits", huge_rows, "bad_skymap")
    return made


def test_each_input_that_crashed_the_run_is_one_counted_skip_and_the_rest_is_written(tmp_path):
    cases = hostile_inputs(tmp_path)
    store = tmp_path / "store"
    done = load(store, ICECAT, *(path for path, _ in cases.values()), AUGER, ALERT)
    summary = summary_of(done)
    assert done.returncode == INPUT_UNUSED, done.stderr
    expected: dict[str, int] = {}
    for _, reason in cases.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert summary["skipped"] == expected
    for case, (path, reason) in cases.items():
        assert f"skipped {path.name}" in done.stderr and f"({reason})" in done.stderr, case
    assert sorted(entry["file"] for entry in summary["unused"]) == sorted(str(path) for path, _ in cases.values())
    # everything else written, index and rosters rebuilt
    assert json.loads((store / "uhecr" / "index.json").read_text())["count"] == 40
    assert slot(store, "gw", "S230518h")["alert_type"] == "INITIAL"
    assert sorted(p.name for p in (store / "gw").iterdir()) == ["S230518h.json", "S230518h.multiorder.fits",
                                                                 "index.json", "roster.json"]  # no orphan map
    neutrinos = json.loads((store / "neutrino" / "index.json").read_text())["count"]
    assert neutrinos == len([line for line in ICECAT.read_text().splitlines()[1:] if line.strip()]) - 1


def test_comma_separated_instruments_are_split(tmp_path):
    alert = json.loads(ALERT.read_text())
    path = write_json(tmp_path / "a.json", {**alert, "event": {**alert["event"], "instruments": "H1,L1"}})
    done = load(tmp_path / "store", path)
    assert done.returncode == 0, done.stderr
    assert slot(tmp_path / "store", "gw", "S230518h")["instruments"] == ["H1", "L1"]


def test_a_fifo_and_a_link_to_dev_zero_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    store = tmp_path / "store"
    try:
        done = load(store, fifo, zero, AUGER, limit_gb=1, cpu_seconds=60, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("load-messengers hung on a FIFO")
    summary = summary_of(done)
    assert summary["skipped"] == {"not_a_file": 2}
    assert done.returncode == INPUT_UNUSED
    assert json.loads((store / "uhecr" / "index.json").read_text())["count"] == 40


def test_a_reader_failing_unforeseen_costs_its_file_only(tmp_path, monkeypatch, caplog):
    """A good file, then a file whose reader raises: the good file's events are on disk
    and the index and roster rebuilt; the failure is one reader_error, named."""
    from alert_pipeline.storehouse.messengers import formats
    from alert_pipeline.storehouse.messengers.load import load_files
    def broken(text: str, where: str):
        yield from ()
        raise RuntimeError("a reader bug")

    monkeypatch.setattr(formats.uhecr, "from_auger", broken)
    store = tmp_path / "store"
    report, rosters = load_files(str(store), [str(ICECAT), str(AUGER)])
    assert report.skipped == {"reader_error": 1}
    assert "RuntimeError: a reader bug" in caplog.text
    rows = [line for line in ICECAT.read_text().splitlines()[1:] if line.strip()]
    assert json.loads((store / "neutrino" / "index.json").read_text())["count"] == len(rows) - 1
    assert rosters["neutrino"]["objects"] == len(rows) - 1
    assert [(entry["file"], entry["reason"]) for entry in report.unused] == [(str(AUGER), "reader_error")]


# ------------------------------------------------------------------ 15. a gzip bomb
def bomb(tmp_path: Path) -> Path:
    """A gzipped FITS whose primary header declares 2^40 bytes of data, followed by 16 GB
    of zeros in ~16 MB (the same 64 MB gzip member, repeated)."""
    header = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", 2**20), ("NAXIS2", 2**20)])
    member = gzip.compress(header.tostring().encode() + bytes(64 << 20), compresslevel=9)
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    more = zeros.compress(bytes(64 << 20)) + zeros.flush()
    path = tmp_path / "bomb.fits.gz"
    with open(path, "wb") as handle:
        handle.write(member)
        for _ in range(255):
            handle.write(more)
    return path


def test_a_gzip_map_declaring_a_terabyte_is_refused_within_a_few_cpu_seconds(tmp_path):
    path = bomb(tmp_path)
    assert path.stat().st_size < 40 << 20
    store = tmp_path / "store"
    done = load(store, path, AUGER, limit_gb=1.5, cpu_seconds=20, timeout=600)
    assert done.returncode == INPUT_UNUSED, (done.returncode, done.stderr[-2000:])  # not killed for CPU
    summary = summary_of(done)
    assert summary["skipped"] == {"bad_skymap": 1}
    assert "primary HDU declares" in done.stderr
    assert json.loads((store / "uhecr" / "index.json").read_text())["count"] == 40


# ------------------------------------------------------------------ lower: one GW event loaded twice
def test_an_alert_and_its_own_sky_map_file_are_one_gw_slot_either_order(tmp_path):
    alert = json.loads(ALERT.read_text())
    beside = tmp_path / "S230518h.multiorder.fits"  # as the alert's map saved beside it
    beside.write_bytes(base64.b64decode(alert["event"]["skymap"]))
    for order in ((ALERT, beside), (beside, ALERT)):
        store = tmp_path / f"store-{order[0].suffix}"
        done = load(store, *order)
        assert done.returncode == 0, done.stderr
        names = sorted(p.name for p in (store / "gw").iterdir())
        assert names == ["S230518h.json", "S230518h.multiorder.fits", "index.json", "roster.json"], order
        assert slot(store, "gw", "S230518h")["alert_type"] == "INITIAL"
        assert json.loads((store / "gw" / "index.json").read_text())["count"] == 1
