"""tns: Transient Name Server files refine the transient slots.

Both TNS layouts are written here row by row (generated rows: no real extract of either
layout was found in the public stores this project can reach); every expectation is
computed in the test (separations by astropy)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from tests.test_crossmatch import builder, built_storehouse, read, write_transients

PUBLIC_HEADER = ('"objid","name_prefix","name","ra","declination","redshift","typeid","type","reporting_groupid",'
                 '"reporting_group","source_groupid","source_group","discoverydate","discoverymag","discmagfilter",'
                 '"filter","reporters","time_received","internal_names","creationdate","lastmodified"')
SEARCH_HEADER = ('"ID","Name","RA","DEC","Obj. Type","Redshift","Host Name","Host Redshift","Reporting Group/s",'
                 '"Discovery Data Source/s","Classifying Group/s","Associated Group/s","Disc. Internal Name",'
                 '"Disc. Instrument/s","Class. Instrument/s","TNS AT","Public","End Prop. Period",'
                 '"Discovery Mag/Flux","Discovery Filter","Discovery Date (UT)","Sender","Remarks"')
BASE = SkyCoord(150.0 * u.deg, 20.0 * u.deg)


def slot(slot_id: str, position: SkyCoord, label: str = "SN candidate", subtype: str = "sn") -> dict:
    return {"slot_id": slot_id, "kind": "transient", "subtype": subtype, "fink_classification": label,
            "provisional": subtype == "unknown", "ra_deg": position.ra.deg, "dec_deg": position.dec.deg,
            "first_mjd": 60000.0, "last_mjd": 60010.0, "n_alerts": 2, "lat": None, "lon": None}


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


def test_search_export_with_sexagesimal_positions(storehouse, tmp_path):
    position = offset(0.0)
    ra = position.ra.to_string(unit=u.hourangle, sep=":", precision=4, pad=True)
    dec = position.dec.to_string(unit=u.deg, sep=":", precision=3, alwayssign=True, pad=True)
    row = ["1", "SN 2024aab", ra, dec, "SN II", "0.02"] + [""] * 6 + ["ATLAS24x"] + [""] * 7 + \
        ["18.1", "o", "2024-01-01 00:00:00", "", ""]
    path = tmp_path / "tns_search.csv"
    path.write_text(SEARCH_HEADER + "\n" + ",".join(f'"{cell}"' for cell in row) + "\n")
    done = builder("tns", "--storehouse", str(storehouse), str(path))
    assert done.returncode == 0, done.stderr
    found = read(storehouse, "transient", "ZTF24aaaaaab")["tns"]
    assert (found["name"], found["type"], found["redshift"], found["match"]) == ("SN 2024aab", "SN II", 0.02,
                                                                                "position")
    assert json.loads(done.stdout)["file_layout"] == "search export"


def test_a_file_in_neither_layout_is_refused_and_changes_nothing(storehouse, tmp_path):
    before = {p.name: p.read_bytes() for p in (storehouse / "transient").iterdir()}
    other = tmp_path / "notes.csv"
    other.write_text("name,ra,dec\nSN 2024aab,150,20\n")
    done = builder("tns", "--storehouse", str(storehouse), str(other))
    assert done.returncode == 2 and "neither TNS's public objects CSV nor a TNS search export" in done.stderr
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
