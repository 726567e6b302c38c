"""What a new user following the README on a fresh clone met in the messenger kinds and the
cross-match: a mock sky map loaded, one neutrino flipping between two sources, a mistyped
storehouse created by a failing command, an example that could not be pasted, sample data
with nothing to match, and one WARNING line per skipped row.

Real files live in ``tests/data/messengers`` (origins in its README); expected values are
read by hand from them (or computed by ligo.skymap), never by the code under test.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
from pathlib import Path

from astropy import units as u
from astropy.coordinates import SkyCoord
from ligo.skymap.io import read_sky_map
from ligo.skymap.postprocess.crossmatch import crossmatch

from tests.conftest import REPO
from tests.test_crossmatch import builder
from tests.test_messengers import ALERT, AUGER, GOLD_BRONZE, ICECAT, load, slot, write_json

DATA = REPO / "tests" / "data" / "messengers"
O3_MAP = DATA / "MS181101ab-bayestar.multiorder.fits"
#: alert_pipeline.exitcodes EXIT_INPUT_UNUSED, as a number so this file also runs on old code.
INPUT_UNUSED = 9
#: IC230416A's row of IceCube_Gold_Bronze_Tracks.csv (line 336), by hand:
#: RA 345.85, Dec 9.14, RA_ERR_PLUS 0.88, RA_ERR_MINUS 0.97, DEC_ERR_PLUS 0.75, DEC_ERR_MINUS 0.76.
IC230416A_ROW = {"ra_deg": 345.85, "dec_deg": 9.14, "ra_err_plus_deg": 0.88, "ra_err_minus_deg": 0.97,
                 "dec_err_plus_deg": 0.75, "dec_err_minus_deg": 0.76}


def summary_of(done: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)["files"]


def stored(store: Path, kind: str, slot_id: str) -> dict:
    """A slot without its build time (which differs from run to run by design)."""
    found = slot(store, kind, slot_id)
    found["provenance"].pop("built_at", None)
    return found


# ------------------------------------------------------------------ 1. a mock event's sky map
def test_a_sky_map_whose_object_is_a_mock_event_is_skipped_unless_accepted(tmp_path):
    store = tmp_path / "store"
    done = load(store, O3_MAP, AUGER)  # OBJECT = 'MS181101ab': GraceDB's mock superevent
    summary = summary_of(done)
    assert done.returncode == INPUT_UNUSED, done.stderr  # nothing of the map was used: the user is told
    assert summary["skipped"] == {"mock_event": 1}
    assert [(entry["file"], entry["reason"]) for entry in summary["unused"]] == [(str(O3_MAP), "mock_event")]
    assert not (store / "gw" / "MS181101ab.json").exists()
    assert not (store / "gw" / "MS181101ab.multiorder.fits").exists()
    assert json.loads((store / "uhecr" / "index.json").read_text())["count"] == 40  # the rest loaded

    accepted = load(store, O3_MAP, extra=("--accept-mock",))
    assert accepted.returncode == 0, accepted.stderr
    assert slot(store, "gw", "MS181101ab")["time"] == "2018-11-01T22:22:46.654437Z"  # DATE-OBS, by hand

    real = tmp_path / "S181101ab.fits"  # the same map named as a real superevent: loaded as any
    data = O3_MAP.read_bytes()
    assert data.count(b"OBJECT  = 'MS181101ab'") == 1
    real.write_bytes(data.replace(b"OBJECT  = 'MS181101ab'", b"OBJECT  = 'S181101ab' "))
    other = tmp_path / "other"
    assert load(other, real).returncode == 0
    assert slot(other, "gw", "S181101ab")["skymap"] == "S181101ab.multiorder.fits"


# ------------------------------------------------------------------ 2. one neutrino from two sources
def test_the_icecat_row_of_a_neutrino_wins_over_its_notice_in_any_order_and_a_reload_rewrites_nothing(tmp_path):
    notice = json.loads(GOLD_BRONZE.read_text())
    assert notice["event_name"] == ["IceCube-230416A"] and notice["ra_dec_error"] == 0.5  # by hand
    orders = {"row-then-notice": [[ICECAT], [GOLD_BRONZE]], "notice-then-row": [[GOLD_BRONZE], [ICECAT]],
              "one-run-row-first": [[ICECAT, GOLD_BRONZE]], "one-run-notice-first": [[GOLD_BRONZE, ICECAT]]}
    slots = {}
    for name, runs in orders.items():
        store = tmp_path / name
        for files in runs:
            done = load(store, *files)
            assert done.returncode == 0, (name, done.stderr)  # a superseded notice was used: not an error
        slots[name] = stored(store, "neutrino", "IC230416A")
        assert {key: slots[name][key] for key in IC230416A_ROW} == IC230416A_ROW, name
        assert slots[name]["source_type"] == "catalogue", name
    assert all(found == slots["row-then-notice"] for found in slots.values())

    store = tmp_path / "row-then-notice"
    before = (store / "neutrino" / "IC230416A.json").stat().st_mtime_ns
    for files in ([ICECAT, GOLD_BRONZE], [GOLD_BRONZE, ICECAT], [GOLD_BRONZE]):
        again = load(store, *files)
        summary = summary_of(again)
        assert again.returncode == 0 and summary["written"] == {}, (files, summary)
        assert summary["skipped"] == {"superseded": 1}, files  # the notice, kept out by the IceCat-1 row
    assert (store / "neutrino" / "IC230416A.json").stat().st_mtime_ns == before


def test_among_notices_of_one_neutrino_the_later_revision_wins_in_any_order(tmp_path):
    first = json.loads(GOLD_BRONZE.read_text())
    revised = {**first, "alert_type": "update", "record_number": 2, "alert_datetime": "2023-04-16T07:10:00Z",
               "ra": 345.9, "dec": 9.2, "ra_dec_error": 0.4}
    old_path, new_path = write_json(tmp_path / "initial.json", first), write_json(tmp_path / "update.json", revised)
    for name, runs in {"apart": [[new_path], [old_path]], "together": [[new_path, old_path]]}.items():
        store = tmp_path / name
        for files in runs:
            assert load(store, *files).returncode == 0
        got = slot(store, "neutrino", "IC230416A")
        assert (got["ra_deg"], got["dec_deg"], got["ra_err_plus_deg"]) == (345.9, 9.2, 0.4), name
    again = load(tmp_path / "apart", old_path)
    assert summary_of(again)["skipped"] == {"superseded": 1} and summary_of(again)["written"] == {}


# ------------------------------------------------------------------ 3. a failing crossmatch creates nothing
def test_crossmatch_on_a_mistyped_storehouse_exits_2_and_creates_nothing(tmp_path):
    typo = tmp_path / "typo"
    done = builder("crossmatch", "--storehouse", str(typo))
    assert done.returncode == 2 and "run the build first" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not typo.exists()
    empty = tmp_path / "empty"  # a directory that was never built: left as it was
    empty.mkdir()
    assert builder("crossmatch", "--storehouse", str(empty)).returncode == 2
    assert list(empty.iterdir()) == []


# ------------------------------------------------------------------ 4. the README's example runs as written
def readme_section(title: str) -> str:
    text = (REPO / "docs" / "storehouse.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_the_readme_load_messengers_example_runs_and_gives_what_it_says(tmp_path):
    section = readme_section("Messenger kinds")
    command = re.search(r"(\.venv/bin/python transient_kind_builder\.py load-messengers --storehouse "
                        r"(?:[^\n]*\\\n)*[^\n]*)", section)  # to the first line not continued
    assert command, "the section's first example is load-messengers over files"
    files = re.findall(r"tests/data/messengers/\S+", command.group(1))
    assert files and all((REPO / name).is_file() for name in files), files
    done = load(tmp_path / "store", *(REPO / name for name in files))
    summary = summary_of(done)
    assert done.returncode == 0, done.stderr
    # What the README says it gives; the counts checked against the files by hand: one gw
    # event; every IceCat-1 row but IC231103A's revision and the blank ones, and the
    # notice of IC230416A kept out by its row; Auger's 40 events.
    rows = [line for line in ICECAT.read_text().splitlines()[1:] if line.strip()]
    assert summary["written"] == {"gw": 1, "neutrino": len(rows) - 1, "uhecr": 40}
    assert summary["skipped"] == {"superseded": 1}
    stated = " ".join(section.split())
    for count in ("1 gw", f"{len(rows) - 1} neutrino", "40 uhecr", "1 superseded"):
        assert count in stated, count


# ------------------------------------------------------------------ 5. sample data with a counterpart
def test_the_sample_fink_data_has_a_counterpart_of_s230518h_that_crossmatch_finds(pg_url, table, tmp_path):
    """The local services' sample roster (devtools/services.py), built and cross-matched
    with the real S230518h alert: one GW coincidence, in the map's 90 % region by ligo.skymap."""
    from alert_pipeline.storehouse.fink.load import load_fink
    from devtools import fink_samples

    composition = fink_samples.Composition(single={"sn": 6, "kilonova": 2, "unknown": 10}, cross=[],
                                           solar_system_objects=4, mixed_with_solar_system=1)
    source = tmp_path / "fink_latests.json"
    source.write_text(json.dumps(fink_samples.dataset(composition, seed=1)))
    load_fink(pg_url, [str(source)], table=table)
    store = tmp_path / "store"
    assert builder("--dsn", pg_url, "--storehouse", str(store), "--table", table).returncode == 0
    assert json.loads((store / "transient" / "roster.json").read_text())["objects"] == 18  # counts as before
    assert load(store, ALERT).returncode == 0
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["coincidences_by_kind"]["gw"] == 1
    (best,) = [item for item in summary["least_likely_by_chance"] if item["kind"] == "gw"]
    assert best["event"] == "S230518h" and 0 < best["dt_days"] <= 14
    transient = slot(store, "transient", best["transient"])
    assert transient["subtype"] == "kilonova"
    encoded = json.loads(ALERT.read_text())["event"]["skymap"]
    skymap = read_sky_map(io.BytesIO(base64.b64decode(encoded)), moc=True)
    where = SkyCoord(transient["ra_deg"] * u.deg, transient["dec_deg"] * u.deg)
    assert crossmatch(skymap, where).searched_prob <= 0.9


# ------------------------------------------------------------------ 6. a bounded log
def test_many_skipped_rows_log_twenty_lines_per_reason_then_one_line_for_the_rest(tmp_path, caplog):
    from alert_pipeline.storehouse.messengers.load import load_files
    rows = ["experiment,time,ra_deg,dec_deg,energy_eev", "Auger,2004-01-19T12:18:01Z,295.6,-31.0,60"]
    rows += [f"Auger,2004-01-19T12:{minute:02d}:00Z,400,-31.0,60" for minute in range(45)]  # RA 400: off the sky
    rows += [f"Auger,2004-01-20T12:{minute:02d}:00Z,10,-31.0,-5" for minute in range(3)]  # negative energy
    path = tmp_path / "rays.csv"
    path.write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.INFO, logger="transient_kind_builder"):
        report, _ = load_files(str(tmp_path / "store"), [str(path)])
    assert report.skipped == {"bad_coordinates": 45, "bad_value": 3}  # every one counted
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert sum(message.startswith("skipped ") and "(bad_coordinates)" in message for message in warnings) == 20
    assert sum(message.startswith("skipped ") and "(bad_value)" in message for message in warnings) == 3
    assert [message for message in warnings if "more skipped" in message] == [
        "… and 25 more skipped as bad_coordinates"]
    assert len(warnings) == 24
