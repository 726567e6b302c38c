"""What an attacker found in the new notice inputs, each fixed and kept fixed: a small JSON
file of millions of empty arrays, a stored slot someone damaged, an integer of hundreds of
digits for a coordinate, a torn state file. Each runs the builder in a child process with
a memory limit."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED
from tests.test_messengers import GOLD_BRONZE, load

DATA = Path(__file__).parent / "data" / "grb"
GUANO = DATA / "json" / "gcnschema_swift_bat_guano.example.json"


def digests(store: Path) -> dict[str, str]:
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*.json")) if p.name not in ("index.json", "roster.json")}


def test_a_json_file_of_millions_of_empty_arrays_is_refused_before_it_is_parsed(tmp_path):
    bomb = tmp_path / "arrays.json"
    bomb.write_text("[" + "[]," * 2_097_152 + "[]]")  # 6 MB: 920 MB and 96 s to refuse element by element
    store = tmp_path / "store"
    done = load(store, bomb, GOLD_BRONZE, limit_gb=0.6)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr[-2000:]
    assert "too_complex" in done.stderr and "arrays.json" in done.stderr
    assert (store / "neutrino" / "IC230416A.json").exists()  # the good file beside it loaded


def test_unrecognised_values_of_one_json_list_cost_one_item_past_the_first_few(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{}] * 5000 + [json.loads(GUANO.read_text())]))
    store = tmp_path / "store"
    done = load(store, listed, limit_gb=1)
    assert done.returncode == 0, done.stderr[-2000:]  # the notice in it was used
    summary = json.loads(done.stdout)
    assert summary["files"]["skipped"]["unknown_format"] == 21  # 20 named, the other 4980 in one
    assert (store / "grb").is_dir()


def test_a_coordinate_of_400_digits_skips_its_notice_only(tmp_path):
    guano = json.loads(GUANO.read_text())
    bad = {**guano, "id": ["694215996"], "ra": int("9" * 401)}
    later = {**guano, "id": ["694215997"]}
    notices = tmp_path / "three.json"
    notices.write_text(json.dumps([guano, bad, later]))
    store = tmp_path / "store"
    done = load(store, notices, limit_gb=1)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is not a finite number" in done.stderr and "OverflowError" not in done.stderr
    names = sorted(path.name for path in (store / "grb").glob("*.json") if path.name not in ("index.json",
                                                                                          "roster.json"))
    assert len(names) == 2, names  # the notice after the bad one is not lost


def test_a_damaged_stored_slot_is_named_kept_and_the_run_goes_on(tmp_path):
    store = tmp_path / "store"
    first = load(store, DATA / "swift_bat_grb_pos_61_1118357.xml")
    assert first.returncode == 0, first.stderr
    path = store / "grb" / "Swift-1118357.json"
    damaged = json.loads(path.read_text())
    damaged["notices"].append({"id": "planted"})  # a notice without its time
    path.write_text(json.dumps(damaged))
    before = digests(store)
    again = load(store, DATA / "swift_xrt_pos_67_1156572_ser1.xml", DATA / "swift_bat_quicklook_pos_97_1118357.xml",
                 GOLD_BRONZE, limit_gb=1)
    assert again.returncode == EXIT_INPUT_UNUSED and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert "stored_slot_unusable" in again.stderr and "Swift-1118357" in again.stderr
    after = digests(store)
    assert after["grb/Swift-1118357.json"] == before["grb/Swift-1118357.json"]  # kept as it was
    assert "neutrino/IC230416A.json" in after and "grb/Swift-1156572.json" in after  # the rest loaded


def test_a_torn_state_file_is_said_not_silently_dropped(tmp_path):
    from alert_pipeline.storehouse.layout import StateFile, StorehouseLayout

    layout = StorehouseLayout.at(str(tmp_path))
    state = StateFile(layout, "crossmatch")
    Path(state.path).parent.mkdir(parents=True)
    Path(state.path).write_bytes(b'{"version": 2, "dige')
    import logging
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("storehouse").addHandler(handler)
    try:
        assert state.read() is None
    finally:
        logging.getLogger("storehouse").removeHandler(handler)
    assert any("is unreadable" in record.getMessage() and "crossmatch.json" in record.getMessage()
               for record in records)
    Path(state.path).unlink()
    assert state.read() is None and len(records) == 1  # a missing state is no news


def test_a_notice_contradicting_a_stored_one_of_the_same_id_is_refused_and_said(tmp_path):
    """GCN never reissues an id: the same ivorn with another position is refused by name,
    the stored notice and slot are kept byte for byte, and the same notice read again from
    another file (only its source differs) is no contradiction."""
    store = tmp_path / "store"
    original = DATA / "swift_bat_grb_pos_61_1118357.xml"
    assert load(store, original).returncode == 0
    before = digests(store)
    text = original.read_text()
    ra = re.search(r'<C1>([^<]+)</C1>', text).group(1)
    forged = tmp_path / "forged.xml"
    forged.write_text(text.replace(f"<C1>{ra}</C1>", f"<C1>{float(ra) + 1.0:.4f}</C1>", 1))
    copy = tmp_path / "copy.xml"
    copy.write_text(text)
    done = load(store, forged, copy)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr[-2000:]  # the forged file gave nothing
    assert "contradicts_stored_notice" in done.stderr and "forged.xml" in done.stderr
    assert "ra_deg" in done.stderr and "Traceback" not in done.stderr
    assert digests(store)["grb/Swift-1118357.json"] == before["grb/Swift-1118357.json"]
    (unused,) = json.loads(done.stdout)["unused_files"]  # the copy is no contradiction
    assert (Path(unused["file"]).name, unused["reason"]) == ("forged.xml", "contradicts_stored_notice")
