"""tns: Transient Name Server files refine the transient slots.

Real rows first (tests/data/tns/, origins in its README): the 2019 search export, the same
rows under the current export header, and three objects of the public objects CSV, with
every expected value read by hand from the files (sexagesimal positions converted by hand:
``22:28:51.860`` is 15 × (22 + 28/60 + 51.860/3600) degrees). Generated rows (at the end)
place objects at chosen separations to pin the nearest-position rule; their expectations
are computed in the test (separations by astropy)."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.csv
import pyarrow.parquet
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.peak import RUN_AND_MEASURE
from tests.test_crossmatch import builder, built_storehouse, read, write_transients

DATA = Path(__file__).parent / "data" / "tns"
SEARCH_2019 = DATA / "tns_search_export_2019-08.csv"
SEARCH_CURRENT = DATA / "tns_search_export_current_header.csv"
PUBLIC = DATA / "tns_public_objects_sample.csv"
#: Positions read from the files by hand (sexagesimal converted by hand, see the module docstring).
SN_2019NWN = SkyCoord(15 * (22 + 28 / 60 + 51.860 / 3600) * u.deg, (36 + 56 / 60 + 2.05 / 3600) * u.deg)
SN_2019NXK = SkyCoord(15 * (17 + 34 / 60 + 5.120 / 3600) * u.deg, -(14 + 48 / 60 + 31.93 / 3600) * u.deg)
AT_2019NYL = SkyCoord(15 * (0 + 8 / 60 + 29.603 / 3600) * u.deg, -(6 + 2 / 60 + 18.37 / 3600) * u.deg)
SN_2022AND = SkyCoord(150.02755416 * u.deg, 3.75714275086 * u.deg)
SN_2018LZF = SkyCoord(35.5773798 * u.deg, -9.6884991 * u.deg)
AT_2026CQA = SkyCoord(38.8742717 * u.deg, 23.9654567 * u.deg)
#: The tns command's address space in the bomb test: far above a normal run, far below
#: what the old reader took for the bomb (5.7 GB for 503 MB).
ADDRESS_SPACE = 3 << 30


def slot(slot_id: str, position: SkyCoord, label: str = "SN candidate", subtype: str = "sn") -> dict:
    return {"slot_id": slot_id, "kind": "transient", "subtype": subtype, "fink_classification": label,
            "provisional": subtype == "unknown", "ra_deg": position.ra.deg, "dec_deg": position.dec.deg,
            "first_mjd": 60000.0, "last_mjd": 60010.0, "n_alerts": 2, "lat": None, "lon": None}


def away(position: SkyCoord, arcsec: float, angle: float = 30.0) -> SkyCoord:
    return position.directional_offset_by(angle * u.deg, arcsec * u.arcsec)


def tns(store: Path, path: Path, *extra: str) -> subprocess.CompletedProcess:
    return builder("tns", "--storehouse", str(store), *extra, str(path))


def slots_on_disk(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((store / "transient").glob("ZTF*.json"))}


@pytest.fixture
def search_store(tmp_path):
    store = tmp_path / "store"
    write_transients(store, [
        slot("ZTF19aboxjlj", away(SN_2019NWN, 7200), "Unknown", "unknown"),  # its own ZTF name, 2° away
        slot("ZTF19aaaaaaa", away(SN_2019NXK, 0.8)),                          # SN 2019nxk has only a Gaia name
        slot("ZTF19aaaaaab", AT_2019NYL),                                     # on AT 2019nyl, not named by it
        slot("ZTF19abqrtmn", away(SN_2019NWN, 3600 * 20)),                    # AT 2019nym, unclassified
        slot("ZTF19aaaaaac", away(SN_2019NXK, 1.6)),                          # 1.6" > 1.5" from SN 2019nxk
    ])
    return store


@pytest.mark.parametrize("export", [SEARCH_2019, SEARCH_CURRENT], ids=["2019-header", "current-header"])
def test_real_search_export_rows_refine_the_slots_they_name_or_sit_on(search_store, export):
    done = tns(search_store, export)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["file_layout"], summary["tns_objects"], summary["skipped_rows"]) == ("search export", 50, {})
    named = read(search_store, "transient", "ZTF19aboxjlj")
    assert named["tns"]["name"] == "SN 2019nwn" and named["tns"]["match"] == "internal_name"
    assert (named["tns"]["type"], named["tns"]["redshift"]) == ("SN Ia", 0.07)
    assert named["tns"]["discovery_date"] == "2019-08-10 09:47:31"
    assert named["tns"]["separation_arcsec"] == pytest.approx(7200, rel=1e-6)
    assert (named["subtype"], named["provisional"], named["fink_classification"]) == ("sn", False, "Unknown")
    gaia = read(search_store, "transient", "ZTF19aaaaaaa")["tns"]
    assert (gaia["name"], gaia["type"], gaia["redshift"], gaia["match"]) == ("SN 2019nxk", "SN II", 0.025, "position")
    assert gaia["separation_arcsec"] == pytest.approx(0.8, rel=1e-4)
    exact = read(search_store, "transient", "ZTF19aaaaaab")["tns"]
    assert exact["name"] == "AT 2019nyl" and exact["separation_arcsec"] < 1e-6  # -06:02:18.37 converted exactly
    assert (exact["type"], exact["redshift"]) == (None, None)  # no type; a host redshift (0.13) is not its own
    bare = read(search_store, "transient", "ZTF19abqrtmn")
    assert (bare["tns"]["name"], bare["tns"]["type"], bare["tns"]["redshift"]) == ("AT 2019nym", None, None)
    assert "spectroscopic_class" in bare and bare["spectroscopic_class"] is None and bare["provisional"] is False
    assert "tns" not in read(search_store, "transient", "ZTF19aaaaaac")
    assert summary["by_match"] == {"internal_name": 2, "position": 2}
    assert summary["by_type"] == {"SN II": 1, "SN Ia": 1, "none": 2}
    assert [d["slot_id"] for d in summary["disagreements"]] == ["ZTF19aboxjlj"]  # Fink Unknown, TNS SN Ia


@pytest.fixture
def public_store(tmp_path):
    store = tmp_path / "store"
    write_transients(store, [
        slot("ZTF22aaaifcx", away(SN_2022AND, 0.5)),          # named third of three internal names
        slot("ZTF26aafuoxy", away(AT_2026CQA, 400), "Unknown", "unknown"),
        slot("ZTF18abquxjv", away(SN_2018LZF, 90)),
        slot("ZTF18aaaaaaa", away(SN_2018LZF, 1.0, 200)),     # on SN 2018lzf, not named by it
    ])
    return store


def test_real_public_objects_rows(public_store):
    done = tns(public_store, PUBLIC)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["file_layout"], summary["tns_objects"], summary["catalogue_as_of"]) == (
        "public objects CSV", 3, "2026-02-10 00:00:00")
    several = read(public_store, "transient", "ZTF22aaaifcx")["tns"]
    assert (several["name"], several["type"], several["redshift"], several["match"]) == (
        "SN 2022and", "SN II", 0.043, "internal_name")
    assert several["discovery_date"] == "2022-01-27 10:49:26.400"
    unclassified = read(public_store, "transient", "ZTF26aafuoxy")
    assert (unclassified["tns"]["name"], unclassified["tns"]["type"], unclassified["tns"]["redshift"]) == (
        "AT 2026cqa", None, None)
    assert unclassified["subtype"] == "unknown" and unclassified["provisional"] is True  # no class: still provisional
    ia = read(public_store, "transient", "ZTF18abquxjv")["tns"]
    assert (ia["name"], ia["type"], ia["redshift"]) == ("SN 2018lzf", "SN Ia", 0.074)
    near = read(public_store, "transient", "ZTF18aaaaaaa")["tns"]
    assert (near["name"], near["match"]) == ("SN 2018lzf", "position")
    assert near["separation_arcsec"] == pytest.approx(1.0, rel=1e-4)


# -- daily files: yesterday's whole file, the day's delta, today's whole file ---------------

REAL_LINES = PUBLIC.read_text().splitlines()
DATE_LINE, HEADER = REAL_LINES[0], REAL_LINES[1]
ROW_2026CQA, ROW_2022AND, ROW_2018LZF = REAL_LINES[2:5]
#: SN 2022and as it stood before its classification (constructed from the real row: no
#: type, no redshift, no ZTF name yet); AT 2026cqa was not reported yet.
EARLIER_2022AND = ROW_2022AND.replace('"SN","2022and","150.02755416","3.75714275086","0.043","10","SN II"',
                                      '"AT","2022and","150.02755416","3.75714275086","","",""').replace(
    '"ATLAS22cwl, PS22agq, ZTF22aaaifcx"', '"ATLAS22cwl, PS22agq"')


def daily_files(where: Path) -> tuple[Path, Path, Path]:
    """(yesterday's whole file, the day's delta, today's whole file: the real sample)."""
    assert EARLIER_2022AND != ROW_2022AND and '"AT","2022and"' in EARLIER_2022AND
    where.mkdir(parents=True, exist_ok=True)
    yesterday = where / "yesterday" / "tns_public_objects.csv"
    yesterday.parent.mkdir()
    yesterday.write_text("\n".join(['"2026-02-09 00:00:00"', HEADER, EARLIER_2022AND, ROW_2018LZF]) + "\n")
    delta = where / "tns_public_objects_20260209.csv"
    delta.write_text("\n".join(['"2026-02-10 00:00:00"', HEADER, ROW_2026CQA, ROW_2022AND]) + "\n")
    return yesterday, delta, PUBLIC


def test_a_days_delta_on_yesterdays_state_gives_the_slots_of_todays_whole_file(public_store, tmp_path):
    yesterday, delta, today = daily_files(tmp_path / "files")
    fresh = tmp_path / "fresh"
    shutil.copytree(public_store, fresh)
    assert tns(public_store, yesterday).returncode == 0
    before = read(public_store, "transient", "ZTF22aaaifcx")["tns"]
    assert (before["name"], before["type"], before["match"]) == ("AT 2022and", None, "position")
    stamps = {p.name: p.stat().st_mtime_ns for p in (public_store / "transient").glob("ZTF*.json")}
    done = tns(public_store, delta)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [(f["file"], f["delta"], f["rows"]) for f in summary["files"]] == [(delta.name, True, 2)]
    changed = {p.name for p in (public_store / "transient").glob("ZTF*.json") if p.stat().st_mtime_ns != stamps[p.name]}
    assert changed == {"ZTF22aaaifcx.json", "ZTF26aafuoxy.json"}  # only the objects the delta names
    assert summary["tns_objects"] == 3 and summary["catalogue_as_of"] == "2026-02-10 00:00:00"
    assert tns(fresh, today).returncode == 0
    assert slots_on_disk(public_store) == slots_on_disk(fresh)
    index = [json.loads((store / "transient" / "index.json").read_text())["slots"] for store in (public_store, fresh)]
    assert index[0] == index[1]


def test_a_directory_applies_what_it_has_not_applied_in_date_order(public_store, tmp_path):
    yesterday, delta, today = daily_files(tmp_path / "files")
    folder = tmp_path / "tns"
    folder.mkdir()
    shutil.copy(yesterday, folder / "tns_public_objects.csv")
    shutil.copy(delta, folder / delta.name)
    (folder / "notes.txt").write_text("my notes\n")
    done = tns(public_store, folder)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [(f["file"], f["status"]) for f in summary["files"]] == [("tns_public_objects.csv", "applied"),
                                                                    (delta.name, "applied")]
    assert read(public_store, "transient", "ZTF22aaaifcx")["tns"]["type"] == "SN II"
    state = json.loads((public_store / "state" / "tns" / "state.json").read_text())
    assert sorted(entry["file"] for entry in state["applied"].values()) == sorted(["tns_public_objects.csv",
                                                                                  delta.name])
    again = tns(public_store, folder)
    assert again.returncode == 0 and json.loads(again.stdout)["files"] == []
    assert json.loads(again.stdout)["slots_written"] == 0
    stale = folder / "tns_public_objects_20260208.csv"  # a day older than the catalogue kept
    stale.write_text("\n".join(['"2026-02-09 00:00:00"', HEADER, EARLIER_2022AND]) + "\n")
    shutil.copy(today, folder / "tns_public_objects.csv")  # the next whole file, same name
    broken = folder / "tns_public_objects_20260210.csv"
    broken.write_bytes(b"PAR1" + b"\x00" * 64)
    done = tns(public_store, folder)
    assert done.returncode == 9, done.stderr
    assert broken.name in done.stderr and "Parquet" in done.stderr and "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert [(f["file"], f["status"]) for f in summary["files"]] == [
        (stale.name, "superseded: a delta no later than the whole file kept"), ("tns_public_objects.csv", "applied")]
    assert read(public_store, "transient", "ZTF22aaaifcx")["tns"]["type"] == "SN II"  # not put back by the stale day


def test_a_delta_without_any_whole_file_still_applies_what_it_names(public_store, tmp_path):
    _, delta, _ = daily_files(tmp_path / "files")
    done = tns(public_store, delta)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["catalogue_complete"] is False and summary["tns_objects"] == 2
    assert read(public_store, "transient", "ZTF22aaaifcx")["tns"]["name"] == "SN 2022and"
    assert "tns" not in read(public_store, "transient", "ZTF18abquxjv")


# -- files in another format ----------------------------------------------------------------


def parquet_bytes() -> bytes:
    lines = PUBLIC.read_text().splitlines()[1:]
    table = pyarrow.csv.read_csv(io.BytesIO("\n".join(lines).encode()))
    sink = io.BytesIO()
    pyarrow.parquet.write_table(table, sink)
    return sink.getvalue()


API_ANSWER = {"id_code": 200, "id_message": "OK", "data": {"reply": {
    "objname": "2022and", "name_prefix": "SN", "objid": 99539, "radeg": 150.02755416, "decdeg": 3.75714275086,
    "redshift": 0.043, "object_type": {"name": "SN II", "id": 10}, "internal_names": "ATLAS22cwl, PS22agq, ZTF22aaaifcx",
    "discoverydate": "2022-01-27 10:49:26.400"}}}


@pytest.mark.parametrize(("name", "content", "said"), [
    ("tns_public_objects.parquet", parquet_bytes, "is a Parquet file"),
    ("tns_public_objects.csv", parquet_bytes, "is a Parquet file"),
    ("tns_answer.json", lambda: json.dumps(API_ANSWER).encode(), "is a JSON document"),
    ("tns_public_objects.csv.gz", lambda: __import__("gzip").compress(PUBLIC.read_bytes()), "is a gzip file"),
])
def test_another_format_is_refused_saying_what_was_expected(public_store, tmp_path, name, content, said):
    path = tmp_path / name
    path.write_bytes(content())
    before = slots_on_disk(public_store)
    done = tns(public_store, path)
    assert done.returncode == 9, done.stderr  # input not used (it was 2 before the third probe's TNS items)
    assert said in done.stderr and "expected TNS's public objects CSV" in done.stderr
    assert "Traceback" not in done.stderr and "codec" not in done.stderr
    assert slots_on_disk(public_store) == before


def test_a_fifo_is_refused_before_reading(public_store, tmp_path):
    fifo = tmp_path / "tns_public_objects.csv"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "tns", "--storehouse",
                           str(public_store), str(fifo)], capture_output=True, text=True, timeout=60,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert done.returncode == 9 and "not a regular file" in done.stderr  # input not used


def test_a_zip_of_a_huge_csv_of_short_lines_is_refused_within_bounded_memory(public_store, tmp_path):
    """Item 14 of the third probe: 478 KB of zip, 503 MB of short lines (the old reader
    took 5.7 GB). Run under RLIMIT_AS: the old reader dies of MemoryError."""
    bomb = tmp_path / "tns_public_objects.csv.zip"
    line = b'"1","AT","x","1","1","","","","",""\n'
    block = line * (1 << 16)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("tns_public_objects.csv", "w", force_zip64=True) as member:
        member.write(b'"2026-02-10 00:00:00"\n"objid","name_prefix","name","ra","declination","redshift","type",'
                     b'"discoverydate","internal_names","x"\n')
        for _ in range(503_000_000 // len(block)):
            member.write(block)
    assert bomb.stat().st_size < 5 << 20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    done = subprocess.run([sys.executable, "-c", RUN_AND_MEASURE, str(REPO / "transient_kind_builder.py"), "tns",
                           "--storehouse", str(public_store), str(bomb)], capture_output=True, text=True, timeout=300,
                          preexec_fn=limit, cwd=REPO,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert done.returncode == 9, done.stderr[-2000:]  # input not used
    assert "more than 5000000 rows" in done.stderr and "Traceback" not in done.stderr


# -- state checked against the slots on disk (item 12 of the third probe) ---------------------


@pytest.mark.parametrize("restore", ["in place", "replaced"])
def test_a_slot_restored_from_a_backup_without_its_record_gets_it_back(public_store, tmp_path, restore):
    """The rerun is given the same file (known by its identity, not read again) and no
    build ran (the index is unchanged): only the slot's own file says it changed."""
    target = public_store / "transient" / "ZTF22aaaifcx.json"
    backup = target.read_bytes()  # before any TNS record
    assert tns(public_store, PUBLIC).returncode == 0
    assert "tns" in read(public_store, "transient", "ZTF22aaaifcx")
    index = (public_store / "transient" / "index.json").stat()
    if restore == "in place":  # same inode, same directory: only the file's ctime and mtime change
        target.write_bytes(backup)
    else:  # a new inode renamed over it (rsync, the storehouse's own writes)
        (tmp_path / "restored.json").write_bytes(backup)
        os.replace(tmp_path / "restored.json", target)
    assert (public_store / "transient" / "index.json").stat().st_mtime_ns == index.st_mtime_ns
    done = tns(public_store, PUBLIC)
    assert done.returncode == 0, done.stderr
    assert f"{PUBLIC} was applied before (the same bytes, as {PUBLIC.name} of 2026-02-10" in done.stderr
    assert read(public_store, "transient", "ZTF22aaaifcx").get("tns", {}).get("name") == "SN 2022and"
    summary = json.loads(done.stdout)
    assert (summary["slots_written"], summary["slots_restored"]) == (1, 1)
    again = json.loads(tns(public_store, PUBLIC).stdout)
    assert (again["slots_written"], again["slots_checked"]) == (0, 0)


def test_a_slot_rebuilt_from_scratch_gets_its_record_back(pg_url, table, tmp_path):
    store, target = built_storehouse(pg_url, table, tmp_path, {"sn": 2, "kilonova": 0, "unknown": 0}, seed=11)
    path = tmp_path / "tns_public_objects.csv"
    path.write_text("\n".join([DATE_LINE, HEADER, ROW_2022AND.replace("ZTF22aaaifcx", target["slot_id"])]) + "\n")
    assert tns(store, path).returncode == 0
    assert read(store, "transient", target["slot_id"])["tns"]["name"] == "SN 2022and"
    (store / "transient" / f"{target['slot_id']}.json").unlink()
    assert builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--full").returncode == 0
    assert "tns" not in read(store, "transient", target["slot_id"])  # rebuilt from its rows alone
    done = tns(store, path)
    assert done.returncode == 0, done.stderr
    assert read(store, "transient", target["slot_id"]).get("tns", {}).get("name") == "SN 2022and"
    assert json.loads(done.stdout)["slots_restored"] == 1


# -- generated rows: the nearest-position rule at chosen separations ----------------------------

PUBLIC_HEADER = ('"objid","name_prefix","name","ra","declination","redshift","typeid","type","reporting_groupid",'
                 '"reporting_group","source_groupid","source_group","discoverydate","discoverymag","discmagfilter",'
                 '"filter","reporters","time_received","internal_names","creationdate","lastmodified"')
BASE = SkyCoord(150.0 * u.deg, 20.0 * u.deg)


def offset(arcsec: float, angle: float = 0.0) -> SkyCoord:
    return BASE.directional_offset_by(angle * u.deg, arcsec * u.arcsec)


def public_row(objid: int, prefix: str, name: str, position: SkyCoord, kind: str = "", redshift: str = "",
               internal: str = "", date: str = "2024-01-01 00:00:00.000") -> str:
    cells = [str(objid), prefix, name, f"{position.ra.deg:.6f}", f"{position.dec.deg:.6f}", redshift, "", kind,
             "", "", "", "", date, "18.5", "r", "", "", "", internal, "", ""]
    return ",".join(f'"{cell}"' for cell in cells)


@pytest.fixture
def storehouse(tmp_path):
    store = tmp_path / "store"
    write_transients(store, [
        slot("ZTF24aaaaaaa", offset(0, 0).directional_offset_by(90 * u.deg, 3 * u.deg)),  # matched by name
        slot("ZTF24aaaaaab", offset(1.0, 45), "Unknown", "unknown"),                      # 1.0" from SN 2024aab
        slot("ZTF24aaaaaac", offset(500.0, 90)),                                          # 1.6" from AT 2024aac
        slot("ZTF24aaaaaad", offset(900.0, 0)),                                           # two TNS objects near
        slot("ZTF24aaaaaae", offset(1500.0, 0)),                                          # a TDE
    ])
    return store


def public_file(tmp_path: Path) -> Path:
    near_d = offset(900.0, 0)
    rows = [
        '"2024-03-26 00:00:00"', PUBLIC_HEADER,
        public_row(1, "SN", "2024aaa", offset(7200.0, 270), "SN Ia", "0.031", internal="ZTF24aaaaaaa, ATLAS24abc"),
        public_row(2, "SN", "2024aab", offset(0.0), "SN II", ""),
        public_row(3, "AT", "2024aac", offset(500.0, 90).directional_offset_by(0 * u.deg, 1.6 * u.arcsec)),
        public_row(4, "AT", "2024aad", near_d.directional_offset_by(0 * u.deg, 1.2 * u.arcsec)),
        public_row(5, "SN", "2024aae", near_d.directional_offset_by(180 * u.deg, 0.4 * u.arcsec), "SN Ib"),
        public_row(6, "TDE", "2024aaf", offset(1500.0, 0), "TDE", "0.05"),
        '"7","SN","2024bad","not a number","10","","","","","","","","","","","","","","","",""',
    ]
    path = tmp_path / "tns_public_objects.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_public_objects_csv_matches_by_name_then_nearest_position(storehouse, tmp_path):
    done = builder("tns", "--storehouse", str(storehouse), str(public_file(tmp_path)))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    named = read(storehouse, "transient", "ZTF24aaaaaaa")
    assert named["tns"]["name"] == "SN 2024aaa" and named["tns"]["match"] == "internal_name"
    far = offset(0, 0).directional_offset_by(90 * u.deg, 3 * u.deg).separation(offset(7200.0, 270)).arcsec
    assert named["tns"]["separation_arcsec"] == pytest.approx(far, rel=1e-6)  # ~5° away, matched by name anyway
    assert (named["tns"]["redshift"], named["spectroscopic_class"], named["subtype"]) == (0.031, "SN Ia", "sn")
    refined = read(storehouse, "transient", "ZTF24aaaaaab")  # Fink Unknown, TNS SN II at 1.0"
    assert refined["tns"]["match"] == "position" and refined["tns"]["redshift"] is None
    expected = offset(1.0, 45).separation(offset(0.0)).arcsec
    assert refined["tns"]["separation_arcsec"] == pytest.approx(expected, rel=1e-6)
    assert (refined["subtype"], refined["provisional"], refined["fink_classification"]) == ("sn", False, "Unknown")
    assert "tns" not in read(storehouse, "transient", "ZTF24aaaaaac")  # 1.6" > 1.5"
    assert read(storehouse, "transient", "ZTF24aaaaaad")["tns"]["name"] == "SN 2024aae"  # 0.4" beats 1.2"
    tde = read(storehouse, "transient", "ZTF24aaaaaae")
    assert (tde["spectroscopic_class"], tde["subtype"], tde["provisional"]) == ("TDE", "sn", False)
    assert summary["by_match"] == {"internal_name": 1, "position": 3}
    assert summary["by_type"] == {"SN II": 1, "SN Ia": 1, "SN Ib": 1, "TDE": 1}
    assert summary["skipped_rows"] == {"malformed_row": 1} and summary["tns_objects"] == 6
    assert {(d["slot_id"], d["tns_type"]) for d in summary["disagreements"]} == {("ZTF24aaaaaab", "SN II"),
                                                                                  ("ZTF24aaaaaae", "TDE")}
    index = {e["slot_id"]: e for e in json.loads((storehouse / "transient" / "index.json").read_text())["slots"]}
    assert index["ZTF24aaaaaab"]["subtype"] == "sn" and index["ZTF24aaaaaab"]["provisional"] is False
    assert json.loads((storehouse / "transient" / "roster.json").read_text())["tns"]["matched"] == 4


def test_rerun_rewrites_nothing_and_a_newer_file_only_the_changed_slots(storehouse, tmp_path):
    path = public_file(tmp_path)
    assert builder("tns", "--storehouse", str(storehouse), str(path)).returncode == 0

    def stamps() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in (storehouse / "transient").glob("ZTF*.json")}

    before = stamps()
    again = builder("tns", "--storehouse", str(storehouse), str(path))
    assert again.returncode == 0 and json.loads(again.stdout)["slots_written"] == 0 and stamps() == before
    newer = tmp_path / "newer.zip"  # the .zip TNS serves, a day later: SN 2024aab got a redshift
    rows = path.read_text().splitlines()
    assert rows[3] == public_row(2, "SN", "2024aab", offset(0.0), "SN II", "")
    rows[3] = public_row(2, "SN", "2024aab", offset(0.0), "SN II", "0.02")
    with zipfile.ZipFile(newer, "w") as archive:
        archive.writestr("tns_public_objects.csv", "\n".join(rows) + "\n")
    done = builder("tns", "--storehouse", str(storehouse), str(newer))
    assert done.returncode == 0, done.stderr
    changed = {name for name, stamp in stamps().items() if before[name] != stamp}
    assert changed == {"ZTF24aaaaaab.json"}
    assert read(storehouse, "transient", "ZTF24aaaaaab")["tns"]["redshift"] == 0.02


def test_a_file_in_neither_layout_is_refused_and_changes_nothing(storehouse, tmp_path):
    before = {p.name: p.read_bytes() for p in (storehouse / "transient").iterdir()}
    other = tmp_path / "notes.csv"
    other.write_text("name,ra,dec\nSN 2024aab,150,20\n")
    done = builder("tns", "--storehouse", str(storehouse), str(other))
    assert done.returncode == 9 and "neither TNS's public objects CSV nor a TNS search export" in done.stderr
    assert {p.name: p.read_bytes() for p in (storehouse / "transient").iterdir()} == before


def test_a_later_build_keeps_the_record_and_the_refinement(pg_url, table, tmp_path):
    store, target = built_storehouse(pg_url, table, tmp_path, {"sn": 0, "kilonova": 0, "unknown": 2}, seed=9)
    assert target["subtype"] == "unknown" and target["provisional"] is True
    path = tmp_path / "tns.csv"
    path.write_text('"2024-03-26 00:00:00"\n' + PUBLIC_HEADER + "\n" + public_row(
        1, "SN", "2024zzz", SkyCoord(target["ra_deg"] * u.deg, target["dec_deg"] * u.deg), "SN Ia", "0.04",
        internal=target["slot_id"]) + "\n")
    assert builder("tns", "--storehouse", str(store), str(path)).returncode == 0
    assert builder("--dsn", pg_url, "--storehouse", str(store), "--table", table, "--full").returncode == 0
    kept = read(store, "transient", target["slot_id"])
    assert (kept["subtype"], kept["provisional"], kept["tns"]["name"]) == ("sn", False, "SN 2024zzz")
    assert kept["fink_classification"] == "Unknown"
    roster = json.loads((store / "transient" / "roster.json").read_text())
    assert roster["tns"]["matched"] == 1 and roster["by_subtype"]["sn"] == 1


# -- the fast paths: a file known by its identity, a delta that rematches only what it touches --


def test_a_tns_file_is_hashed_once_and_again_when_rewritten_in_place_with_its_old_mtime(public_store, tmp_path,
                                                                                         monkeypatch):
    from alert_pipeline.storehouse.enrich import tns as tns_module
    hashed = []
    real_hash = tns_module.content_hash
    monkeypatch.setattr(tns_module, "content_hash", lambda path: hashed.append(path) or real_hash(path))
    monkeypatch.setattr(tns_module, "TRUSTED_AGE_NS", 0)  # no wait for the clock's granularity in a test
    path = tmp_path / "tns_public_objects.csv"
    shutil.copy(PUBLIC, path)
    first = tns_module.apply(str(public_store), str(path))
    assert (len(hashed), first["files"][0]["status"]) == (1, "applied")
    again = tns_module.apply(str(public_store), str(path))
    assert (len(hashed), again["files"], again["slots_written"]) == (1, [], 0)  # known by its identity alone
    before = path.stat()
    text = path.read_text()
    assert '"SN II"' in text
    path.write_text(text.replace('"SN II"', '"SN Ib"'))  # same size, in place, old mtime put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    changed = tns_module.apply(str(public_store), str(path))
    assert len(hashed) == 2 and changed["files"][0]["status"] == "applied"
    assert read(public_store, "transient", "ZTF22aaaifcx")["tns"]["type"] == "SN Ib"


def test_a_delta_rematches_only_the_slots_it_can_change_and_equals_the_whole_file(storehouse, tmp_path):
    """Yesterday's whole file, then a delta that moves an object next to a slot, names a
    slot from 10° away, reclassifies a matched object and adds a nearer one; against
    today's whole file on a copy of the storehouse."""
    fresh = tmp_path / "fresh"
    shutil.copytree(storehouse, fresh)
    yesterday = public_file(tmp_path)
    assert builder("tns", "--storehouse", str(storehouse), str(yesterday)).returncode == 0
    assert read(storehouse, "transient", "ZTF24aaaaaad")["tns"]["name"] == "SN 2024aae"
    assert "tns" not in read(storehouse, "transient", "ZTF24aaaaaac")
    changed = [
        public_row(4, "AT", "2024aad", offset(900.0, 0).directional_offset_by(0 * u.deg, 0.1 * u.arcsec)),
        public_row(6, "TDE", "2024aaf", offset(1500.0, 0), "TDE", "0.06"),
        public_row(8, "SN", "2024aah", offset(36000.0, 0), "SN Ic", internal="ATLAS24xyz, ZTF24aaaaaac"),
        public_row(9, "SN", "2024aai", offset(1.0, 45).directional_offset_by(0 * u.deg, 0.5 * u.arcsec), "SN IIn"),
    ]
    delta = tmp_path / "tns_public_objects_20240326.csv"
    delta.write_text("\n".join(['"2024-03-27 00:00:00"', PUBLIC_HEADER, *changed]) + "\n")
    done = builder("tns", "--storehouse", str(storehouse), str(delta))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["slots_rematched"] == 4  # all but ZTF24aaaaaaa, named by an object the delta leaves alone
    assert read(storehouse, "transient", "ZTF24aaaaaad")["tns"]["name"] == "AT 2024aad"  # 0.1" beats 0.4"
    named = read(storehouse, "transient", "ZTF24aaaaaac")["tns"]
    assert (named["name"], named["match"], named["type"]) == ("SN 2024aah", "internal_name", "SN Ic")
    assert read(storehouse, "transient", "ZTF24aaaaaab")["tns"]["name"] == "SN 2024aai"  # 0.5" beats 1.0"
    assert read(storehouse, "transient", "ZTF24aaaaaae")["tns"]["redshift"] == 0.06
    today = tmp_path / "today" / "tns_public_objects.csv"
    today.parent.mkdir()
    rows = yesterday.read_text().splitlines()
    kept = [row for row in rows[2:] if not row.startswith(('"4"', '"6"'))]
    today.write_text("\n".join(['"2024-03-27 00:00:00"', PUBLIC_HEADER, *kept, *changed]) + "\n")
    whole = builder("tns", "--storehouse", str(fresh), str(today))
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["slots_rematched"] == 5
    assert slots_on_disk(storehouse) == slots_on_disk(fresh)
    index = [json.loads((store / "transient" / "index.json").read_text())["slots"] for store in (storehouse, fresh)]
    assert index[0] == index[1]


def test_a_delta_after_a_rebuild_that_moved_a_slot_rematches_only_what_changed_and_equals_the_whole_file(
        storehouse, tmp_path):
    """Yesterday's whole file; then a rebuild of the index that moved one slot next to a
    TNS object and added one slot on another; then a delta that gives the TDE a new
    redshift. Only those three slots are matched again, and every slot and the index are
    those today's whole file gives a copy of the storehouse rebuilt the same way."""
    fresh = tmp_path / "fresh"
    shutil.copytree(storehouse, fresh)
    yesterday = public_file(tmp_path)
    assert builder("tns", "--storehouse", str(storehouse), str(yesterday)).returncode == 0
    assert "tns" not in read(storehouse, "transient", "ZTF24aaaaaac")  # 1.6" from AT 2024aac
    near_c = offset(500.0, 90).directional_offset_by(0 * u.deg, 1.3 * u.arcsec)  # now 0.3" from it
    rebuilt = [slot("ZTF24aaaaaac", near_c), slot("ZTF24aaaaaaf", away(offset(7200.0, 270), 0.5))]  # by SN 2024aaa
    for store in (storehouse, fresh):
        write_transients(store, rebuilt)
    changed = [public_row(6, "TDE", "2024aaf", offset(1500.0, 0), "TDE", "0.07")]
    delta = tmp_path / "tns_public_objects_20240326.csv"
    delta.write_text("\n".join(['"2024-03-27 00:00:00"', PUBLIC_HEADER, *changed]) + "\n")
    done = builder("tns", "--storehouse", str(storehouse), str(delta))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["slots_rematched"] == 3  # the moved, the new, the TDE's: not all six
    assert read(storehouse, "transient", "ZTF24aaaaaac")["tns"]["name"] == "AT 2024aac"
    assert read(storehouse, "transient", "ZTF24aaaaaaf")["tns"]["name"] == "SN 2024aaa"
    assert read(storehouse, "transient", "ZTF24aaaaaae")["tns"]["redshift"] == 0.07
    today = tmp_path / "today" / "tns_public_objects.csv"
    today.parent.mkdir()
    rows = yesterday.read_text().splitlines()
    today.write_text("\n".join(['"2024-03-27 00:00:00"', PUBLIC_HEADER,
                                *[row for row in rows[2:] if not row.startswith('"6"')], *changed]) + "\n")
    whole = builder("tns", "--storehouse", str(fresh), str(today))
    assert whole.returncode == 0, whole.stderr
    assert slots_on_disk(storehouse) == slots_on_disk(fresh)
    index = [json.loads((store / "transient" / "index.json").read_text())["slots"] for store in (storehouse, fresh)]
    assert index[0] == index[1]


@pytest.mark.parametrize("seed", range(6))
def test_a_deltas_merge_in_place_equals_the_general_merge(seed):
    """The daily delta's one-take merge (catalogue in id order) gives the table the general
    way (filter, concatenate, sort) gives: replaced, new, first and last ids, a row of the
    delta twice (its last kept); a catalogue out of order goes the general way."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from alert_pipeline.storehouse.enrich import tns

    rng = np.random.default_rng(seed)
    empty = tns._empty_catalogue()

    def rows(ids, tag):
        n = len(ids)
        return pa.Table.from_arrays([pa.array(ids, pa.int64()), pa.array([f"{tag}{i}" for i in ids]),
                                     pa.array(["SN Ia"] * n), pa.array(rng.uniform(0, 1, n)), pa.array(["2024"] * n),
                                     pa.array([f"ZTF{i}" for i in ids]), pa.array(rng.uniform(0, 360, n)),
                                     pa.array(rng.uniform(-90, 90, n))], schema=empty.schema)

    catalogue = rows(np.sort(rng.choice(5000, 3000, replace=False)), "old")
    ids = rng.choice(5200, 300, replace=False).tolist() + [0, 5199]
    ids += ids[:5]  # five ids twice: the later row wins
    delta = tns.TnsFile("delta.csv", tns.PUBLIC_LAYOUT, True, "2026-12-02", rows(ids, "new"))
    general = pa.concat_tables([catalogue.filter(pc.invert(pc.is_in(catalogue["objid"],
                                                                     value_set=tns._unique_ids(delta.table)["objid"]))),
                                tns._unique_ids(delta.table)])
    general = general.take(pc.sort_indices(general, [("objid", "ascending")]))
    merged = tns.merge(catalogue, delta)
    assert merged.equals(general) and len(merged) == len(set(catalogue["objid"].to_pylist()) | set(ids))
    assert tns._merged_in_order(catalogue, tns._unique_ids(delta.table)) is not None  # the one-take way was taken
    shuffled = catalogue.take(pa.array(rng.permutation(len(catalogue))))
    assert tns._merged_in_order(shuffled, tns._unique_ids(delta.table)) is None
    assert tns.merge(shuffled, delta).equals(general)
