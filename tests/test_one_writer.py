"""One writer at a time per storehouse: tns, crossmatch, load-messengers and
rebuild-index wait while another command (a build) holds the storehouse, so a slot the
build rewrites in the meantime is never overwritten with what they read before it.
The test holds the lock itself, as a build would, rewrites a slot while the command
waits, then lets it go on."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_crossmatch import transient, write_transients
from tests.test_messengers import AUGER

TNS_SAMPLE = REPO / "tests" / "data" / "tns" / "tns_public_objects_sample.csv"


def start(*args: str, log: Path) -> subprocess.Popen:
    with log.open("w") as handle:
        return subprocess.Popen([sys.executable, str(REPO / "transient_kind_builder.py"), *args], stdout=subprocess.PIPE,
                                stderr=handle, text=True, env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def wait_for_waiting(process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while "another command is writing the storehouse" not in log.read_text():
        if process.poll() is not None:
            pytest.fail(f"the command ended without waiting: {log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the command never said it waits")
        time.sleep(0.05)


def held(store: Path) -> int:
    """The writer lock, taken as every command takes it: on the storehouse directory."""
    descriptor = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def row_position() -> tuple[float, float]:
    import csv

    with TNS_SAMPLE.open() as handle:
        next(handle)  # the file's date
        for row in csv.DictReader(handle):
            if row["name"] == "2022and":
                return float(row["ra"]), float(row["declination"])
    raise AssertionError("SN 2022and is not in the sample")


@pytest.mark.parametrize("command", ["tns", "crossmatch", "rebuild-index", "load-messengers"])
def test_a_command_waits_for_the_writer_and_keeps_what_it_wrote(tmp_path, command):
    store = tmp_path / "store"
    ra, dec = row_position()
    write_transients(store, [transient("ZTF22aaaifcx", ra, dec, 59600.0, 59610.0)])
    args = {"tns": ("tns", "--storehouse", str(store), str(TNS_SAMPLE)),
            "crossmatch": ("crossmatch", "--storehouse", str(store)),
            "rebuild-index": ("rebuild-index", "--storehouse", str(store)),
            "load-messengers": ("load-messengers", "--storehouse", str(store), str(AUGER))}[command]
    lock = held(store)
    try:
        process = start(*args, log=tmp_path / "command.log")
        wait_for_waiting(process, tmp_path / "command.log")
        slot_path = store / "transient" / "ZTF22aaaifcx.json"
        slot = json.loads(slot_path.read_text())
        slot["n_alerts"] = 17  # what a build writes while the command waits
        slot_path.write_text(json.dumps(slot))
    finally:
        os.close(lock)
    process.communicate(timeout=120)
    assert process.returncode == 0, (tmp_path / "command.log").read_text()
    after = json.loads((store / "transient" / "ZTF22aaaifcx.json").read_text())
    assert after["n_alerts"] == 17
    if command == "tns":
        assert after["tns"]["name"] == "SN 2022and"


def test_a_command_on_a_storehouse_that_does_not_exist_creates_nothing(tmp_path):
    missing = tmp_path / "typo"
    done = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "tns", "--storehouse", str(missing),
                           str(TNS_SAMPLE)], capture_output=True, text=True, timeout=120,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert "Traceback" not in done.stderr
    assert not missing.exists()
