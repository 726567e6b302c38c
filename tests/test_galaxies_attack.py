"""Hostile and sloppy inputs of load-galaxies and hosts: each is refused with a clear error and
its documented exit code (or costs only itself), never a traceback or a hang, and what was
stored before (the catalogue, the slots) is byte for byte what it was. The builder runs in a
child process with memory, CPU and wall-clock limits."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED, EXIT_OK, EXIT_OUTPUT
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_crossmatch import transient, write_transients

DATA = REPO / "tests" / "data" / "galaxies"
GLADE_TXT = DATA / "skyportal_GLADE.txt"
GW_MAP = REPO / "tests" / "data" / "messengers" / "MS181101ab-bayestar.multiorder.fits"
#: NGC4548's row of the real GLADE+ file (line 2).
NGC4548 = GLADE_TXT.read_bytes().split(b"\r\n")[1]
MEMORY = 6 << 30
CPU_SECONDS = 150


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def builder(*args: str, timeout: float = 200) -> subprocess.CompletedProcess:
    """The builder in a child process with memory, CPU and time limits (a hang is a failure)."""
    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_limits,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def digests(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links not followed) by its content's digest."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()}


def assert_no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A storehouse whose catalogue holds the real GLADE+ rows (loaded once; tests copy it)."""
    store = tmp_path_factory.mktemp("stored") / "store"
    done = builder("load-galaxies", "--storehouse", str(store), str(GLADE_TXT))
    assert done.returncode == EXIT_OK, done.stderr
    return store


@pytest.fixture
def store(stored, tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(stored, copy, symlinks=True)
    return copy


def test_a_fifo_is_refused_not_waited_on(store, tmp_path):
    """Before: open() of a FIFO with no writer blocked the load forever."""
    fifo = tmp_path / "galaxies.txt"
    os.mkfifo(fifo)
    before = digests(store / "catalogues")
    done = builder("load-galaxies", "--storehouse", str(store), str(fifo), timeout=90)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr
    assert "galaxies.txt: cannot be read (a FIFO)" in done.stderr and "nothing was loaded" in done.stderr
    assert_no_traceback(done)
    assert digests(store / "catalogues") == before


def test_bytes_that_are_not_utf8_cost_their_rows_not_the_load(store, tmp_path):
    """Before: a Latin-1 name in a CSV, or a line of binary junk in GLADE+ text, was a pyarrow
    traceback (exit 1) and nothing was loaded."""
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name,ra,dec,d_L\nCaf\xe9,10.5,20.5,30.0\nPlain,12.0,22.0,33.0\n".encode("latin-1"))
    junk = tmp_path / "junk.txt"
    junk.write_bytes(NGC4548 + b"\n" + bytes(range(128, 256)) * 40 + b"\n" + NGC4548.replace(b"NGC4548", b"Again", 1)
                     + b"\n")
    done = builder("load-galaxies", "--storehouse", str(store), str(latin1), str(junk))
    assert done.returncode == EXIT_OK, done.stderr
    assert_no_traceback(done)
    summary = json.loads(done.stdout)
    assert summary["rows"] == 4 and summary["bad_rows"]["malformed"] == 1
    import lsdb

    names = set(lsdb.read_hats(str(store / "catalogues" / "glade")).compute(progress_bar=False)["name"])
    assert names == {"Caf\ufffd", "Plain", "NGC4548", "Again"}


def test_a_file_that_gives_no_galaxy_beside_good_ones_is_refused(store, tmp_path):
    """Before: a header-only CSV (or a file of only bad rows) given with GLADE+ was silently
    unused, exit 0, and the stored catalogue replaced."""
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("name,ra,dec,d_L\n")
    before = digests(store / "catalogues")
    done = builder("load-galaxies", "--storehouse", str(store), str(GLADE_TXT), str(header_only))
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr
    assert "header_only.csv: no usable galaxy in it" in done.stderr and "nothing was loaded" in done.stderr
    assert_no_traceback(done)
    assert digests(store / "catalogues") == before


def test_the_same_file_given_twice_is_refused(store, tmp_path):
    """Before: every galaxy was stored twice (and counted twice in every GW volume), exit 0."""
    link = tmp_path / "again.txt"
    link.symlink_to(GLADE_TXT)
    before = digests(store / "catalogues")
    for twice in ((GLADE_TXT, GLADE_TXT), (GLADE_TXT, link)):
        done = builder("load-galaxies", "--storehouse", str(store), *map(str, twice))
        assert done.returncode == EXIT_INPUT_UNUSED, done.stderr
        assert "given twice" in done.stderr and "nothing was loaded" in done.stderr
    assert digests(store / "catalogues") == before


@pytest.mark.parametrize("header", ["name,ra,dec,d_L,ra", "name,RA,ra,dec,d_L"])
def test_a_header_naming_a_used_column_twice_is_refused(store, tmp_path, header):
    """Before: one of the two columns was read, silently (which one depended on the case)."""
    path = tmp_path / "twice.csv"
    path.write_text(header + "\nA,10,20,30,11\n")
    before = digests(store / "catalogues")
    done = builder("load-galaxies", "--storehouse", str(store), str(path))
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr
    assert "names a column more than once" in done.stderr
    assert digests(store / "catalogues") == before


def _moved_aside(store: Path) -> dict[str, str]:
    """The state a load killed between the two renames of its swap leaves: the catalogue in
    .staging/glade.old, none in its place. Its digests, as stored."""
    before = digests(store / "catalogues" / "glade")
    (store / "catalogues" / ".staging").mkdir()
    (store / "catalogues" / "glade").rename(store / "catalogues" / ".staging" / "glade.old")
    return before


def test_a_catalogue_moved_aside_by_a_killed_load_survives_the_next_failed_load(store, tmp_path):
    """Before: the next load cleared .staging/glade.old as a leftover before reading its files,
    so a load that then failed (or any later load) lost the previous catalogue for good."""
    before = _moved_aside(store)
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("ra,dec,d_L\n")
    done = builder("load-galaxies", "--storehouse", str(store), str(header_only))
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr
    assert "put back" in done.stderr
    assert digests(store / "catalogues" / "glade") == before


def test_hosts_puts_back_a_catalogue_moved_aside(store):
    before = _moved_aside(store)
    done = builder("hosts", "--storehouse", str(store))
    assert done.returncode == EXIT_OK, done.stderr
    assert digests(store / "catalogues" / "glade") == before


def test_a_file_in_the_catalogues_place_does_not_wedge_later_loads(tmp_path):
    """Before: the first load moved the planted file to .staging/glade.old, which rmtree could
    not remove; every later load then failed (exit 4: a directory cannot be renamed over a file)."""
    store = tmp_path / "store"
    (store / "catalogues").mkdir(parents=True)
    (store / "catalogues" / "glade").write_text("planted\n")
    for _ in range(2):
        done = builder("load-galaxies", "--storehouse", str(store), str(GLADE_TXT))
        assert done.returncode == EXIT_OK, done.stderr
    assert (store / "catalogues" / "glade" / "hats.properties").is_file()
    assert not (store / "catalogues" / ".staging").exists()


def test_a_swap_whose_second_rename_fails_keeps_the_stored_catalogue(tmp_path, monkeypatch):
    """Before: the stored catalogue, moved aside, was then removed by the load's clean-up."""
    from alert_pipeline.storehouse.galaxies import store as galaxy_store

    built, stored, old = tmp_path / "built", tmp_path / "catalogues" / "glade", tmp_path / "old"
    built.mkdir()
    stored.mkdir(parents=True)
    (stored / "hats.properties").write_text("stored\n")
    rename = os.rename

    def failing(source, target):
        if Path(source) == built:
            raise OSError(28, "No space left on device")
        rename(source, target)

    monkeypatch.setattr(galaxy_store.os, "rename", failing)
    with pytest.raises(OSError):
        galaxy_store._swap(str(built), str(stored), str(old))
    assert (stored / "hats.properties").read_text() == "stored\n" and not old.exists()


# ------------------------------------------------------------------ hosts
@pytest.fixture
def with_slots(store) -> Path:
    """Two gw slots with the real BAYESTAR map and a transient at NGC4548."""
    (store / "gw").mkdir()
    for slot_id in ("MS181101ab", "MS181101zz"):
        shutil.copy(GW_MAP, store / "gw" / f"{slot_id}.multiorder.fits")
        (store / "gw" / f"{slot_id}.json").write_text(json.dumps({"slot_id": slot_id, "kind": "gw"}))
    write_transients(store, [transient("ZTFhost", 188.860123, 14.49632, 60000, 60001)])
    return store


def test_a_damaged_catalogue_is_a_clear_error_and_no_slot_is_touched(with_slots):
    """Before: a truncated partition was a pyarrow traceback (exit 1)."""
    store = with_slots
    for part in (store / "catalogues" / "glade" / "dataset").rglob("Npix=*.parquet"):
        part.write_bytes(part.read_bytes()[:100])
    before = {kind: digests(store / kind) for kind in ("gw", "transient")}
    done = builder("hosts", "--storehouse", str(store))
    assert done.returncode == EXIT_OUTPUT, done.stderr
    assert "hosts: the galaxy catalogue" in done.stderr and "load it again with load-galaxies" in done.stderr
    assert_no_traceback(done)
    assert {kind: digests(store / kind) for kind in ("gw", "transient")} == before


def test_damaged_catalogue_metadata_is_a_clear_error(with_slots):
    store = with_slots
    (store / "catalogues" / "glade" / "hats.properties").write_bytes(bytes(range(256)) * 8)
    done = builder("hosts", "--storehouse", str(store))
    assert done.returncode == EXIT_OUTPUT, done.stderr
    assert "cannot be read" in done.stderr
    assert_no_traceback(done)


def test_a_damaged_sky_map_costs_its_slot_only(with_slots):
    """Before: one truncated map stopped the whole step with a traceback (exit 1): no other
    gw slot ranked, no transient given its host."""
    store = with_slots
    damaged = store / "gw" / "MS181101zz.multiorder.fits"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    slot_before = (store / "gw" / "MS181101zz.json").read_bytes()
    done = builder("hosts", "--storehouse", str(store))
    assert done.returncode == EXIT_OK, done.stderr
    assert "gw MS181101zz: its sky map" in done.stderr and "cannot be read" in done.stderr
    assert_no_traceback(done)
    summary = json.loads(done.stdout)
    assert summary["gw"]["ranked"] == 1 and summary["gw"]["unreadable_map"] == 1
    assert (store / "gw" / "MS181101zz.json").read_bytes() == slot_before
    assert "n_galaxies_90_volume" in json.loads((store / "gw" / "MS181101ab.json").read_text())
    assert json.loads((store / "transient" / "ZTFhost.json").read_text())["host"]["name"] == "NGC4548"
    again = builder("hosts", "--storehouse", str(store))  # tried again, never recorded as done
    assert again.returncode == EXIT_OK and json.loads(again.stdout)["gw"]["unreadable_map"] == 1
