"""What an attacker found in the new notice inputs, each fixed and kept fixed: a small JSON
file of millions of empty arrays, a stored slot someone damaged, an integer of hundreds of
digits for a coordinate, a torn state file. Each runs the builder in a child process with
a memory limit."""

from __future__ import annotations

import hashlib
import json
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
