"""Files planted inside the storehouse (a FIFO or a link to /dev/zero where a slot, a
sky map or an index should be) and a hand-edited build mark: each is refused or
replaced, never waited on or read whole, and the rest of the run goes on. Every command
runs in a child process with memory and time limits."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_crossmatch import AUGER_FIRST, builder, built_storehouse, transient, write_transients
from tests.test_messengers import ALERT, AUGER, load

LIMIT_GB = 1.5


def loaded(tmp_path: Path) -> Path:
    """A storehouse with S230518h (its alert and sky map) and Auger's list, loaded for real."""
    store = tmp_path / "store"
    done = load(store, ALERT, AUGER)
    assert done.returncode == 0, done.stderr
    write_transients(store, [transient("ZTF23planted", 295.6, -31.0, AUGER_FIRST["mjd"] + 1, AUGER_FIRST["mjd"] + 9)])
    return store


def crossmatch_limited(store: Path) -> dict:
    done = builder_limited("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def builder_limited(*args: str) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (int(LIMIT_GB * 2**30),) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (120, 120))

    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), *args], capture_output=True,
                          text=True, timeout=180, preexec_fn=limit, env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def test_a_fifo_in_place_of_a_sky_map_skips_that_event_and_the_crossmatch_goes_on(tmp_path):
    store = loaded(tmp_path)
    skymap = store / "gw" / "S230518h.multiorder.fits"
    skymap.unlink()
    os.mkfifo(skymap)
    summary = crossmatch_limited(store)
    assert summary["skipped_events"]["gw/S230518h"].startswith("bad_skymap"), summary["skipped_events"]
    assert "a FIFO" in summary["skipped_events"]["gw/S230518h"]


def test_a_fifo_and_a_dev_zero_link_named_like_slots_are_never_read(tmp_path):
    store = loaded(tmp_path)
    os.mkfifo(store / "uhecr" / "Auger-20990101T000000.json")
    os.symlink("/dev/zero", store / "gw" / "S230520a.json")
    summary = crossmatch_limited(store)
    assert "gw/S230518h" not in summary["skipped_events"]
    assert summary["coincidences_by_kind"].get("uhecr") == 1  # Auger's first event still matched
    # load-messengers reads the gw slots to recognise one event loaded twice: the link is not one of them
    again = load(store, ALERT, AUGER, limit_gb=LIMIT_GB)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert json.loads((store / "gw" / "S230518h.json").read_text())["alert_type"] == "INITIAL"


def test_a_sky_map_replaced_by_a_link_to_dev_zero_is_rewritten_not_read(tmp_path):
    store = loaded(tmp_path)
    skymap = store / "gw" / "S230518h.multiorder.fits"
    good = skymap.read_bytes()
    skymap.unlink()
    os.symlink("/dev/zero", skymap)
    done = load(store, ALERT, limit_gb=LIMIT_GB)
    assert done.returncode == 0, done.stderr
    assert not skymap.is_symlink() and skymap.read_bytes() == good


def test_an_index_that_is_a_link_to_dev_zero_does_not_stop_the_crossmatch(tmp_path):
    store = loaded(tmp_path)
    (store / "transient" / "index.json").unlink()
    os.symlink("/dev/zero", store / "transient" / "index.json")
    done = builder_limited("crossmatch", "--storehouse", str(store))
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr


def test_a_hand_edited_build_mark_gives_a_full_build(pg_url, table, tmp_path):
    store, first = built_storehouse(pg_url, table, tmp_path, {"sn": 3, "kilonova": 0, "unknown": 0}, seed=4101)
    state = store / "state" / "build.json"
    mark = json.loads(state.read_text())
    for tampered in ({**mark, "high_water": "x"}, {**mark, "rows": None, "high_water": 1.5}):
        state.write_text(json.dumps(tampered))
        done = builder("--dsn", pg_url, "--storehouse", str(store), "--table", table)
        assert done.returncode == 0, done.stderr
        assert "full" in done.stderr and "did not write" in done.stderr, done.stderr
        assert json.loads((store / "transient" / f"{first['slot_id']}.json").read_text())["n_alerts"] == \
            first["n_alerts"]
        assert type(json.loads(state.read_text())["high_water"]) is int


def test_a_storehouse_file_is_read_whole_with_the_status_of_the_file_read(tmp_path):
    """``read_bounded_with_status``: the bytes of the file opened and that file's own status
    (the site stamps a slot with it), bounded, refusing what is not a regular file."""
    import threading

    import pytest

    from alert_pipeline.durable import NotRegularFile, read_up_to
    from alert_pipeline.storehouse.layout import read_bounded_with_status

    path = tmp_path / "slot.json"
    data = bytes(range(256)) * 5000  # over a MiB: more than one read of the loop's size
    path.write_bytes(data)
    found, got = read_bounded_with_status(str(path))
    assert got == data and (found.st_ino, found.st_size) == (os.stat(path).st_ino, len(data))
    with pytest.raises(ValueError, match="larger than"):
        read_bounded_with_status(str(path), len(data) - 1)
    (tmp_path / "link.json").symlink_to(path)
    os.mkfifo(tmp_path / "fifo.json")
    for planted in ("link.json", "fifo.json"):  # refused at once: never followed, never waited on
        with pytest.raises(NotRegularFile):
            read_bounded_with_status(str(tmp_path / planted))
    reader, writer = os.pipe()  # a source that gives its bytes in pieces: read_up_to gathers them

    def trickle() -> None:
        for start in range(0, 3000, 1000):
            os.write(writer, data[start:start + 1000])
        os.close(writer)

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        assert read_up_to(reader, 2500) == data[:2500]
        assert read_up_to(reader, 2500) == data[2500:3000]  # fewer only at the end
        assert read_up_to(reader, 10) == b""
    finally:
        thread.join()
        os.close(reader)
