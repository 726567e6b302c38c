"""tns under attack and in a new user's hands (the TNS findings of a later probe).

Every file here is built from the real rows of tests/data/tns/ (origins in its README) or
from the generated rows of tests/test_tns.py; expected values are read from those rows by
hand (SN 2022and is SN II at z 0.043 and names ZTF22aaaifcx; SN 2018lzf is SN Ia at
z 0.074 and names ZTF18abquxjv; AT 2026cqa names ZTF26aafuoxy and has no type)."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import test_tns
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.peak import RUN_AND_MEASURE
from tests.test_crossmatch import builder, read
from tests.test_tns import (
    DATE_LINE,
    HEADER,
    PUBLIC,
    PUBLIC_HEADER,
    ROW_2018LZF,
    ROW_2022AND,
    ROW_2026CQA,
    SEARCH_2019,
    offset,
    public_row,
    tns,
)

public_store, storehouse = test_tns.public_store, test_tns.storehouse  # the fixtures, shared

#: The tns command's address space in the wide-row bomb test: far above a normal run, far
#: below what the old reader took for it.
ADDRESS_SPACE = 2 << 30


def state_dir(store: Path) -> Path:
    return store / "state" / "tns"


def tns_of(store: Path, slot_id: str) -> dict | None:
    return read(store, "transient", slot_id).get("tns")


def write_public(path: Path, *rows: str, date: str = DATE_LINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([date, HEADER, *rows]) + "\n")
    return path


# -- 1. a lost catalogue never removes a record ---------------------------------------------


def test_a_lost_catalogue_is_no_state_and_the_same_whole_file_applies_again(public_store):
    assert tns(public_store, PUBLIC).returncode == 0
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"
    for kept in state_dir(public_store).glob("catalogue-*.arrow"):
        kept.unlink()
    done = tns(public_store, PUBLIC)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [f["status"] for f in summary["files"]] == ["applied"]  # not "nothing to apply"
    assert "WARNING" in done.stderr and "catalogue" in done.stderr
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"
    assert tns_of(public_store, "ZTF18abquxjv")["name"] == "SN 2018lzf"
    assert summary["tns_objects"] == 3 and summary["catalogue_complete"] is True


def test_a_delta_after_a_lost_catalogue_keeps_the_records_it_does_not_name(public_store, tmp_path):
    assert tns(public_store, PUBLIC).returncode == 0
    for kept in state_dir(public_store).glob("catalogue-*.arrow"):
        kept.unlink()
    delta = write_public(tmp_path / "tns_public_objects_20260210.csv", ROW_2022AND.replace('"0.043"', '"0.044"'),
                         date='"2026-02-11 00:00:00"')
    done = tns(public_store, delta)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["catalogue_complete"] is False
    assert tns_of(public_store, "ZTF22aaaifcx")["redshift"] == 0.044  # what the delta names is applied
    assert tns_of(public_store, "ZTF18abquxjv")["name"] == "SN 2018lzf"  # what it does not name is kept
    assert tns_of(public_store, "ZTF26aafuoxy")["name"] == "AT 2026cqa"


# -- 2. a duplicated objid: the last version wins, nothing is lost --------------------------


def test_a_duplicated_objid_keeps_its_last_row_and_every_other_object(storehouse, tmp_path):
    rows = [public_row(5, "SN", "2024eee", offset(7200.0, 0), "SN Ia", "0.1", internal="ZTF24aaaaaaa"),
            public_row(5, "SN", "2024eee", offset(7200.0, 0), "SN Ia", "0.2", internal="ZTF24aaaaaaa"),
            public_row(7, "SN", "2024ggg", offset(7200.0, 90), "SN II", "0.07", internal="ZTF24aaaaaab"),
            public_row(9, "SN", "2024iii", offset(7200.0, 180), "SN Ib", "0.09", internal="ZTF24aaaaaac")]
    path = tmp_path / "tns_public_objects.csv"
    path.write_text("\n".join(['"2024-03-26 00:00:00"', PUBLIC_HEADER, *rows]) + "\n")
    done = tns(storehouse, path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tns_objects"] == 3
    assert (tns_of(storehouse, "ZTF24aaaaaaa")["name"], tns_of(storehouse, "ZTF24aaaaaaa")["redshift"]) == (
        "SN 2024eee", 0.2)
    assert tns_of(storehouse, "ZTF24aaaaaab")["name"] == "SN 2024ggg"
    assert tns_of(storehouse, "ZTF24aaaaaac")["name"] == "SN 2024iii"


# -- 3. a corrupt zip, or a file too large for memory, is that file's problem -------------------


def corrupt_zip(path: Path, method: int) -> Path:
    """The real sample zipped, one byte of its compressed data flipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("tns_public_objects.csv", PUBLIC.read_bytes())
    data = bytearray(buffer.getvalue())
    start = 30 + len("tns_public_objects.csv")  # the local header, then the member's data
    data[start + len(data) // 4] ^= 0x20
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_a_corrupt_zip_given_is_named_and_exits_9(public_store, tmp_path, method):
    bad = corrupt_zip(tmp_path / "tns_public_objects.csv.zip", method)
    done = tns(public_store, bad)
    assert done.returncode == 9, done.stderr
    assert "Traceback" not in done.stderr and bad.name in done.stderr


def test_a_corrupt_zip_in_a_directory_blocks_nothing_else(public_store, tmp_path):
    folder = tmp_path / "tns"
    folder.mkdir()
    corrupt_zip(folder / "tns_public_objects_20260210.csv.zip", zipfile.ZIP_STORED)
    write_public(folder / "tns_public_objects.csv", ROW_2026CQA, ROW_2022AND, ROW_2018LZF)
    done = tns(public_store, folder)
    assert done.returncode == 9, done.stderr
    summary = json.loads(done.stdout)
    assert [(f["file"], f["status"]) for f in summary["files"]] == [("tns_public_objects.csv", "applied")]
    assert [left["file"] for left in summary["files_left_out"]] == ["tns_public_objects_20260210.csv.zip"]
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"


@pytest.mark.parametrize("error", ["MemoryError", "ArrowMemoryError"])
def test_running_out_of_memory_on_a_file_is_that_files_problem(public_store, tmp_path, monkeypatch, error):
    import pyarrow as pa

    from alert_pipeline.storehouse.enrich import tns as tns_module
    folder = tmp_path / "tns"
    big = write_public(folder / "tns_public_objects_20260210.csv", ROW_2022AND, date='"2026-02-11 00:00:00"')
    write_public(folder / "tns_public_objects.csv", ROW_2026CQA, ROW_2022AND, ROW_2018LZF)
    real = tns_module._read_rows
    failure = MemoryError() if error == "MemoryError" else pa.ArrowMemoryError("malloc of size 1 failed")

    def read_rows(path, *args):
        if path == str(big):
            raise failure
        return real(path, *args)

    monkeypatch.setattr(tns_module, "_read_rows", read_rows)
    summary = tns_module.apply(str(public_store), str(folder))
    assert [left["file"] for left in summary["files_left_out"]] == [big.name]
    assert "memory" in summary["files_left_out"][0]["reason"]
    assert [f["status"] for f in summary["files"]] == ["applied"]


# -- 4. memory bounded by the rows kept -----------------------------------------------------


def test_a_zip_of_wide_rows_within_the_limits_runs_in_bounded_memory(public_store, tmp_path):
    """~140,000 rows of 250 internal names each, just under the uncompressed limit (the
    old reader, whose limit was 1 GiB, needed several GB: merge and sort copies, the alias
    split of 35 M names). Under RLIMIT_AS it is applied, its cells cut and counted."""
    from alert_pipeline.storehouse.enrich.tns import MAX_CSV_BYTES
    bomb = tmp_path / "tns_public_objects.csv.zip"
    names = ", ".join(f"ZTF24{i:07d}" for i in range(250))
    header = (b'"2026-02-10 00:00:00"\n"objid","name_prefix","name","ra","declination","redshift","type",'
              b'"discoverydate","internal_names"\n')
    written = len(header)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("tns_public_objects.csv", "w", force_zip64=True) as member:
        member.write(header)
        objid = 1
        while True:
            block = b"".join(f'"{objid + i}","AT","x{objid + i}","{(objid + i) % 360}","1","","","","{names}"\n'
                             .encode() for i in range(1000))
            if written + len(block) > MAX_CSV_BYTES - (1 << 20):
                break
            member.write(block)
            written += len(block)
            objid += 1000
    rows = objid - 1
    assert rows > 100_000 and bomb.stat().st_size < 64 << 20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    done = subprocess.run([sys.executable, "-c", RUN_AND_MEASURE, str(REPO / "transient_kind_builder.py"), "tns",
                           "--storehouse", str(public_store), str(bomb)], capture_output=True, text=True, timeout=600,
                          preexec_fn=limit, cwd=REPO,
                          # RLIMIT_AS counts address space: glibc reserves 64 MB of it per thread arena,
                          # as many arenas as threads happened to contend, which varies with the
                          # machine's load; two arenas make the limit measure the reader, not the scheduler
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH, "MALLOC_ARENA_MAX": "2"})
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["tns_objects"] == rows and summary["cut_cells"] == {"internal_names_cut": rows}


def test_a_huge_type_cell_is_cut_and_counted(public_store, tmp_path):
    path = write_public(tmp_path / "tns_public_objects.csv", ROW_2026CQA, ROW_2022AND.replace('"SN II"',
                                                                                              f'"{"X" * 10_000}"'))
    done = tns(public_store, path)
    assert done.returncode == 0, done.stderr
    assert tns_of(public_store, "ZTF22aaaifcx")["type"] == "X" * 256
    assert json.loads(done.stdout)["cut_cells"] == {"type_cut": 1}


# -- 5. the state files are not trusted ---------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("catalogue", 5), ("applied", []), ("generation", "x"),
                                              ("as_of", 5), ("slots", [1]), ("seen", {"x": {"digest": 1}}),
                                              ("catalogue", "../../../victim.txt")])
def test_a_bad_state_is_no_state(public_store, tmp_path, field, value):
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    assert tns(public_store, PUBLIC).returncode == 0
    state = json.loads((state_dir(public_store) / "state.json").read_text())
    state[field] = value
    (state_dir(public_store) / "state.json").write_text(json.dumps(state))
    newer = write_public(tmp_path / "newer" / "tns_public_objects.csv", ROW_2026CQA, ROW_2018LZF,
                         ROW_2022AND.replace('"0.043"', '"0.045"'), date='"2026-02-11 00:00:00"')
    done = tns(public_store, newer)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "WARNING" in done.stderr and "no state" in done.stderr
    assert victim.read_text() == "not yours\n"
    assert tns_of(public_store, "ZTF22aaaifcx")["redshift"] == 0.045
    assert tns_of(public_store, "ZTF18abquxjv")["name"] == "SN 2018lzf"


# -- 6. a whole file applies whatever its date ----------------------------------------------------


def test_a_future_dated_file_does_not_supersede_the_files_after_it(public_store, tmp_path):
    typo = write_public(tmp_path / "tns_public_objects_20301231.csv", ROW_2026CQA)
    assert tns(public_store, typo).returncode == 0
    done = tns(public_store, PUBLIC)
    assert done.returncode == 0, done.stderr
    assert [f["status"] for f in json.loads(done.stdout)["files"]] == ["applied"]
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"
    next_day = write_public(tmp_path / "tns_public_objects_20260210.csv", ROW_2018LZF.replace('"0.074"', '"0.075"'),
                            date='"2026-02-11 00:00:00"')
    done = tns(public_store, next_day)
    assert done.returncode == 0, done.stderr
    assert tns_of(public_store, "ZTF18abquxjv")["redshift"] == 0.075


def test_a_superseded_delta_given_explicitly_exits_9_saying_why(public_store, tmp_path):
    assert tns(public_store, PUBLIC).returncode == 0  # the whole file of 2026-02-10
    old = write_public(tmp_path / "tns_public_objects_20260208.csv", ROW_2022AND.replace('"0.043"', '"0.5"'),
                       date='"2026-02-09 00:00:00"')
    done = tns(public_store, old)
    assert done.returncode == 9, done.stderr
    assert old.name in done.stderr and "superseded" in done.stderr
    assert tns_of(public_store, "ZTF22aaaifcx")["redshift"] == 0.043


# -- 7. what a directory applies, and what it names ---------------------------------------------


def test_a_directory_applies_a_link_to_a_download_and_names_what_it_ignores(public_store, tmp_path):
    downloads = tmp_path / "downloads"
    real = write_public(downloads / "tns_public_objects-2026-02-10.csv", ROW_2026CQA, ROW_2022AND, ROW_2018LZF)
    folder = tmp_path / "tns"
    folder.mkdir()
    (folder / "tns_public_objects.csv").symlink_to(real)
    write_public(folder / "tns_public_objects (1).csv", ROW_2022AND)
    write_public(folder / "tns_public_objects.csv.1", ROW_2022AND)
    done = tns(public_store, folder)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [(f["file"], f["status"]) for f in summary["files"]] == [("tns_public_objects.csv", "applied")]
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    for name in ("tns_public_objects (1).csv", "tns_public_objects.csv.1"):
        assert any(name in line and "rename it to tns_public_objects.csv" in line for line in warnings), warnings


def test_a_fifo_or_directory_named_like_a_tns_file_is_named_and_exits_9(public_store, tmp_path):
    folder = tmp_path / "tns"
    folder.mkdir()
    os.mkfifo(folder / "tns_public_objects_20260210.csv")
    (folder / "tns_public_objects_20260211.csv").mkdir()
    write_public(folder / "tns_public_objects.csv", ROW_2026CQA, ROW_2022AND, ROW_2018LZF)
    done = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "tns", "--storehouse",
                           str(public_store), str(folder)], capture_output=True, text=True, timeout=60,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert done.returncode == 9, done.stderr
    summary = json.loads(done.stdout)
    assert {left["file"]: left["reason"] for left in summary["files_left_out"]} == {
        "tns_public_objects_20260210.csv": "named like a TNS file but a FIFO: never read",
        "tns_public_objects_20260211.csv": "named like a TNS file but a directory: never read"}
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"


def test_a_directory_of_nothing_it_applies_exits_9_saying_what_names_it_expects(public_store, tmp_path):
    folder = tmp_path / "tns"
    folder.mkdir()
    (folder / SEARCH_2019.name).write_bytes(SEARCH_2019.read_bytes())
    (folder / PUBLIC.name).write_bytes(PUBLIC.read_bytes())
    done = tns(public_store, folder)
    assert done.returncode == 9, done.stderr
    assert "tns_public_objects_YYYYMMDD.csv" in done.stderr and "Traceback" not in done.stderr
    assert "tns" not in read(public_store, "transient", "ZTF22aaaifcx")


def test_the_help_says_which_names_a_directory_applies():
    done = builder("tns", "--help")
    text = " ".join(done.stdout.split())
    assert "tns_public_objects_YYYYMMDD.csv[.zip]" in text and "search export only when given as a FILE" in text


# -- 8. a search export updates the objects it lists --------------------------------------------


def test_a_search_export_updates_the_objects_it_lists(public_store):
    assert tns(public_store, PUBLIC).returncode == 0
    done = tns(public_store, SEARCH_2019)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["tns_objects"] == 3 + 50 and summary["catalogue_complete"] is True
    assert "search" in summary["files"][0]["updates"]
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"


# -- 9. the refinement follows the current record -------------------------------------------------


def test_the_refinement_is_recomputed_when_the_class_changes_or_goes(public_store, tmp_path):
    """ZTF26aafuoxy: Fink said Unknown (subtype unknown, provisional)."""
    def whole(kind: str, *rows: str, day: str) -> Path:
        return write_public(tmp_path / kind / "tns_public_objects.csv", *rows, date=f'"2026-02-{day} 00:00:00"')

    classified = ROW_2026CQA.replace('"AT","2026cqa","38.8742717","23.9654567","","",""',
                                     '"SN","2026cqa","38.8742717","23.9654567","0.02","","SN II"')
    assert classified != ROW_2026CQA
    assert tns(public_store, whole("sn", classified, day="11")).returncode == 0
    first = read(public_store, "transient", "ZTF26aafuoxy")
    assert (first["subtype"], first["provisional"], first["spectroscopic_class"]) == ("sn", False, "SN II")
    assert tns(public_store, whole("tde", classified.replace('"SN II"', '"TDE"'), day="12")).returncode == 0
    tde = read(public_store, "transient", "ZTF26aafuoxy")
    assert (tde["subtype"], tde["provisional"], tde["spectroscopic_class"]) == ("unknown", False, "TDE")
    assert tns(public_store, whole("gone", ROW_2018LZF, day="13")).returncode == 0
    gone = read(public_store, "transient", "ZTF26aafuoxy")
    assert (gone.get("tns"), gone["subtype"], gone["provisional"], gone["spectroscopic_class"]) == (
        None, "unknown", True, None)
    assert gone["fink_classification"] == "Unknown"


# -- 10. exit codes ------------------------------------------------------------------------------


def test_a_missing_file_exits_9_and_a_bad_radius_2(public_store, tmp_path):
    missing = tns(public_store, tmp_path / "tns_public_objects.csv")
    assert missing.returncode == 9 and "no such file" in missing.stderr
    bad = tns(public_store, PUBLIC, "--radius-arcsec", "-1")
    assert bad.returncode == 2, bad.stderr


# -- 11. one bad byte costs its cell ------------------------------------------------------------


def test_a_latin1_byte_is_replaced_in_its_cell_and_the_file_applies(public_store, tmp_path):
    path = tmp_path / "tns_public_objects.csv"
    rows = [ROW_2026CQA.replace('"2026cqa"', '"2026cqa\udce9"'), ROW_2022AND.replace("PS22agq", "PS22agq\udce9"),
            ROW_2018LZF]
    path.write_bytes("\n".join([DATE_LINE, HEADER, *rows, ""]).encode("utf-8", errors="surrogateescape"))
    assert b"2026cqa\xe9" in path.read_bytes()
    done = tns(public_store, path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["tns_objects"] == 3 and summary["cut_cells"] == {"invalid_utf8_replaced": 2}
    assert tns_of(public_store, "ZTF26aafuoxy")["name"] == "AT 2026cqa\ufffd"
    assert tns_of(public_store, "ZTF22aaaifcx")["name"] == "SN 2022and"
