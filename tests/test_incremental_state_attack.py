"""Attacks on the incremental state: the site's records (``state/pages.json`` + ``state/pages/records-N.arrow``),
the incremental rerun compared with a fresh build, ``KindStore.patch_index`` under hand-made
indexes, and the TNS internal-name aliasing in blocks.

Every builder run is a child process with address-space, CPU and wall-clock limits (a hang
or a memory blow-up fails the test instead of the machine). A docstring starting "Before:"
names a bug these tests found (fixed since); the others pin what held."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO, SUBPROCESS_PYTHONPATH

MEMORY = 3 << 30
CPU_SECONDS = 200
GW_EVENT = "S230518h"
ON_GW = ("ZTF23aaaaaaa", "ZTF23aaaaaab")  # the transients the cross-match puts on S230518h


def _limits(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def run_builder(*args: str, memory: int = MEMORY, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=lambda: _limits(memory),
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def pages(store: Path, *extra: str, **limits) -> subprocess.CompletedProcess:
    return run_builder("pages", "--storehouse", str(store), *extra, **limits)


def assert_clean(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]


# ------------------------------------------------------------------ a small storehouse

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return small_storehouse(tmp_path_factory.mktemp("round5") / "store")


def small_storehouse(store: Path) -> Path:
    """The real S230518h alert and Auger's first rows, four transients (two in the gw map,
    AT2019dsg, one without position), cross-matched. No site yet."""
    from tests.test_crossmatch import AT2019DSG, EVENT_MJD, position_at_level, skymap_table, transient, write_transients
    from tests.test_messengers import ALERT, AUGER, load

    assert load(store, ALERT, AUGER).returncode == 0
    table = skymap_table()
    write_transients(store, [
        transient("ZTF23aaaaaaa", *position_at_level(table, 0.5), EVENT_MJD + 2.0, EVENT_MJD + 20),
        transient("ZTF23aaaaaab", *position_at_level(table, 0.3), EVENT_MJD + 3.0, EVENT_MJD + 20),
        transient("ZTF19aapreis", *AT2019DSG, 58582.46, 58800.0),
        transient("ZTF21aaaaaaz", None, None, 59000.0, 59001.0)])
    done = run_builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    assert json.loads((store / "gw" / f"{GW_EVENT}.json").read_text())["transients"] == list(ON_GW)
    return store


@pytest.fixture
def store(built, tmp_path) -> Path:
    """A copy with its site made (so its records exist and match its files)."""
    copy = tmp_path / "store"
    shutil.copytree(built, copy, symlinks=True)
    assert_clean(pages(copy))
    return copy


def read_slot(store: Path, kind: str, stem: str) -> dict:
    return json.loads((store / kind / f"{stem}.json").read_text())


def write_slot(store: Path, kind: str, stem: str, slot: dict) -> None:
    (store / kind / f"{stem}.json").write_text(json.dumps(slot))


def site_bytes(site: Path) -> dict[str, bytes]:
    """Every file of a site (its mark aside), the index's time of making blanked."""
    found = {}
    for path in sorted(site.rglob("*")):
        if path.is_file() and path.name != ".storehouse-site":
            data = path.read_bytes()
            if path == site / "index.html":
                data = re.sub(rb"Site made [^<]*\.</p>", b"Site made X.</p>", data)
            found[str(path.relative_to(site))] = data
    return found


def differs_from_fresh(store: Path, elsewhere: Path) -> list[str]:
    """The files in which ``store``'s site differs from a build from nothing (``--out``
    another directory, the storehouse's site state set aside meanwhile)."""
    state, kept = store / "state", elsewhere.parent / (elsewhere.name + "-state")
    shutil.copytree(state, kept)
    (state / "pages.json").unlink()
    shutil.rmtree(state / "pages")
    try:
        assert_clean(pages(store, "--out", str(elsewhere)))
    finally:
        shutil.rmtree(state)
        shutil.copytree(kept, state)
    mine, fresh = site_bytes(store / "site"), site_bytes(elsewhere)
    return sorted(name for name in set(mine) | set(fresh) if mine.get(name) != fresh.get(name))


def records_path(store: Path) -> Path:
    return store / "state" / "pages" / json.loads((store / "state" / "pages.json").read_text())["records"]


def rewrite_records(store: Path, change) -> None:
    """The records table through ``change`` (read into memory first: never truncate a mapped file)."""
    import pyarrow as pa

    path = records_path(store)
    table = pa.ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()
    table = change(table)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    path.write_bytes(sink.getvalue().to_pybytes())


def column(name: str, values):
    def change(table):
        index = table.schema.get_field_index(name)
        array = values(table) if callable(values) else values
        return table.set_column(index, name, array)
    return change


def _wrong_shapes():
    import pyarrow as pa
    import pyarrow.compute as pc

    n = lambda table: len(table)  # noqa: E731
    return {
        "kind int64": column("kind", lambda t: pa.array(range(n(t)), pa.int64())),
        "kind binary": column("kind", lambda t: t["kind"].cast(pa.binary())),
        "kind dictionary": column("kind", lambda t: pc.dictionary_encode(t["kind"])),
        "links null": column("links", lambda t: pa.nulls(n(t), pa.list_(pa.string()))),
        "links of ints": column("links", lambda t: pa.array([[1]] * n(t), pa.list_(pa.int64()))),
        "links a string": column("links", lambda t: pa.array([f"gw/{GW_EVENT}"] * n(t), pa.string())),
        "page int64": column("page", lambda t: pa.array(range(n(t)), pa.int64())),
        "id int64": column("id", lambda t: pa.array(range(n(t)), pa.int64())),
        "id a list": column("id", lambda t: pa.array([["x"]] * n(t), pa.list_(pa.string()))),
        "summary not JSON": column("summary", lambda t: pa.array([b"{not json"] * n(t), pa.binary())),
        "summary a list": column("summary", lambda t: pa.array([b"[1,2]"] * n(t), pa.binary())),
        "summary without id": column("summary", lambda t: pa.array([b"{}"] * n(t), pa.binary())),
    }


WRONG_SHAPES = ["kind int64", "kind binary", "kind dictionary", "links null", "links of ints", "links a string",
                "page int64", "id int64", "id a list", "summary not JSON", "summary a list", "summary without id"]


def with_matching_digest(store: Path) -> None:
    """Make ``pages.json`` name the records' present bytes (as if whoever changed them also
    knew the digest), so the checks behind the digest are the ones tried."""
    import hashlib

    state = json.loads((store / "state" / "pages.json").read_text())
    state["records_digest"] = hashlib.blake2b(records_path(store).read_bytes(), digest_size=16).hexdigest()
    (store / "state" / "pages.json").write_text(json.dumps(state))


@pytest.fixture(scope="module")
def sited(built, tmp_path_factory) -> Path:
    """One copy with its site made, whose state the in-process tests copy."""
    copy = tmp_path_factory.mktemp("sited") / "store"
    shutil.copytree(built, copy, symlinks=True)
    assert_clean(pages(copy))
    return copy


def load_state_copy(sited: Path, tmp_path: Path, change) -> tuple[dict, dict]:
    """``state.load`` (in this process: pure reading) of a copy of ``sited``'s state after ``change``."""
    from alert_pipeline.storehouse.site import state

    store = tmp_path / "store"
    shutil.copytree(sited / "state", store / "state")
    change(store)
    data = json.loads((sited / "state" / "pages.json").read_text())
    return state.load(str(store), data["out"], data["site_version"])


@pytest.mark.parametrize("how", WRONG_SHAPES)
def test_records_of_a_wrong_shape_are_no_state(sited, tmp_path, how, caplog):
    """Before: the records' schema was never checked, and summaries were decoded only when
    used, so a column of another type (or a summary that is not a JSON object with an id)
    passed ``load`` and broke the run later (ArrowNotImplementedError in the stem check,
    TypeError in ``os.path.join``/``_pages``/``save``, JSONDecodeError or AttributeError in
    ``stamp_of`` for gw, KeyError in the index); ``links`` as a plain string column was
    accepted and the pages that show a changed event were kept stale. Now any of them,
    even under a digest that matches, is no state, said in the log."""
    def change(store):
        rewrite_records(store, _wrong_shapes()[how])
        with_matching_digest(store)
    data, records = load_state_copy(sited, tmp_path, change)
    assert records == {} and data["records"] is None
    assert "records" in caplog.text and "rendered again" in caplog.text


@pytest.mark.parametrize("how", ["links a string", "summary without id"])
def test_records_of_a_wrong_shape_cost_a_full_render_never_a_traceback_or_a_stale_page(store, tmp_path, how):
    """End to end, with the gw event's false-alarm rate changed too (a page must be rendered again)."""
    event = read_slot(store, "gw", GW_EVENT)
    event["far_hz"] = 1e-12
    write_slot(store, "gw", GW_EVENT, event)
    rewrite_records(store, _wrong_shapes()[how])
    with_matching_digest(store)
    done = pages(store)
    assert_clean(done)
    assert differs_from_fresh(store, tmp_path / "fresh") == []
    assert "records" in done.stderr and "rendered again" in done.stderr  # said, not silently trusted


def _prefixed(tail: bytes):
    """Every summary beginning as its slot's (id and stem first) and going on with ``tail``."""
    import orjson
    import pyarrow as pa

    def change(table):
        summaries = [orjson.dumps({"id": slot_id, "stem": stem})[:-1] + b"," + tail
                     for slot_id, stem in zip(table["id"].to_pylist(), table["stem"].to_pylist(), strict=True)]
        return table.set_column(table.schema.get_field_index("summary"), "summary", pa.array(summaries, pa.binary()))
    return change


@pytest.mark.parametrize("tail", [b'"class":', b'"id":"someone else"}', b'"stem":"other"}'],
                         ids=["not JSON after its id", "a second id", "a second stem"])
def test_a_summary_that_begins_as_its_slots_but_is_not_costs_a_full_render_when_first_needed(store, tmp_path, tail):
    """Summaries are decoded when a page first needs them, not at load (a rerun with nothing
    new decodes none): one that begins with its slot's id and stem but is not JSON, or names
    another slot further on, is found then; the run starts again with no state, says so,
    and makes the site a fresh build makes."""
    event = read_slot(store, "gw", GW_EVENT)
    event["far_hz"] = 1e-12  # the gw page is rendered: it decodes its candidates' summaries
    write_slot(store, "gw", GW_EVENT, event)
    rewrite_records(store, _prefixed(tail))
    with_matching_digest(store)
    done = pages(store)
    assert_clean(done)
    assert "records are unreadable" in done.stderr and "rendered again" in done.stderr
    assert differs_from_fresh(store, tmp_path / "fresh") == []
    again = pages(store)  # the state saved by that run is sound
    assert_clean(again)
    assert json.loads(again.stdout)["files_written"] == 0 and "unreadable" not in again.stderr


def _tolerated():
    import pyarrow as pa

    return {
        "stem large_string": column("stem", lambda t: t["stem"].cast(pa.large_string())),
        "summary as string": column("summary", lambda t: t["summary"].cast(pa.string())),
        "stamp int64": column("stamp", lambda t: pa.array(range(len(t)), pa.int64())),
        "every stem twice": lambda t: pa.concat_tables([t, t]),
        "no rows": lambda t: t.slice(0, 0),
        "no links column": lambda t: t.drop_columns(["links"]),
        "stem is dot-dot": column("stem", lambda t: pa.array([".."] * len(t), pa.string())),
    }


@pytest.mark.parametrize("how", ["stem large_string", "summary as string", "stamp int64", "every stem twice",
                                 "no rows", "no links column", "stem is dot-dot"])
def test_records_that_are_odd_are_no_state_or_what_was_written(sited, tmp_path, how):
    """Records of another layout are no state; the same rows twice, or none, load as such."""
    def change(store):
        rewrite_records(store, _tolerated()[how])
        with_matching_digest(store)
    _, records = load_state_copy(sited, tmp_path, change)
    if how in ("every stem twice", "no rows"):
        expected = {} if how == "no rows" else load_state_copy(sited, tmp_path / "as-made", lambda store: None)[1]
        assert {k: sorted(v) for k, v in records.items()} == {k: sorted(v) for k, v in expected.items()}
    else:
        assert records == {}


def test_records_with_a_path_for_a_stem_remove_nothing_outside_the_site(store, tmp_path):
    event = read_slot(store, "gw", GW_EVENT)
    event["far_hz"] = 1e-12
    write_slot(store, "gw", GW_EVENT, event)
    rewrite_records(store, _tolerated()["stem is dot-dot"])
    with_matching_digest(store)
    outside = store.parent / "victim.html"
    outside.write_text("mine\n")
    done = pages(store)
    assert_clean(done)
    assert outside.read_text() == "mine\n" and json.loads(done.stdout)["files_removed"] == 0
    assert differs_from_fresh(store, tmp_path / "fresh") == []


@pytest.mark.parametrize("how", ["link to /dev/zero", "link to a directory", "sparse 8 GB", "link elsewhere",
                                 "bytes changed"])
def test_records_replaced_by_a_link_a_huge_file_or_other_bytes_are_no_state(sited, tmp_path, how, caplog):
    def change(store):
        path = records_path(store)
        if how == "link to /dev/zero":
            path.unlink()
            path.symlink_to("/dev/zero")
        elif how == "link to a directory":
            path.unlink()
            path.symlink_to(tmp_path)
        elif how == "sparse 8 GB":
            with open(path, "r+b") as handle:
                handle.truncate(8 << 30)
        elif how == "link elsewhere":
            moved = tmp_path / "elsewhere.arrow"
            shutil.move(path, moved)
            path.symlink_to(moved)
        else:
            rewrite_records(store, _tolerated()["no rows"])  # a valid file, not the one named
    data, records = load_state_copy(sited, tmp_path, change)
    assert records == {} and data["records"] is None and "rendered again" in caplog.text


def test_a_fifo_in_place_of_the_records_is_not_waited_on(store, tmp_path):
    """Before: ``pa.memory_map`` opens the FIFO and blocks for a writer forever (the
    project refuses FIFOs everywhere else: StateFile.read, day files, galaxies, messengers)."""
    path = records_path(store)
    path.unlink()
    os.mkfifo(path)
    try:
        done = pages(store, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("pages hung on a FIFO in place of state/pages/records-N.arrow")
    assert_clean(done)
    assert differs_from_fresh(store, tmp_path / "fresh") == []


def test_a_compressed_records_bomb_is_refused_within_bounded_memory(store):
    """Before: an IPC file with zstd-compressed buffers is read whole: ~2 MB on disk
    expands to ~5 GB of summaries (ArrowMemoryError traceback under the 2 GB limit here;
    unbounded memory without one)."""
    import pyarrow as pa

    path = records_path(store)
    table = pa.ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()
    huge = b'{"id":"x","stem":"y","pad":"' + b" " * 50_000_000 + b'"}'
    table = table.set_column(table.schema.get_field_index("summary"), "summary",
                             pa.array([huge] + [b"{}"] * (len(table) - 1), pa.binary()))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        for _ in range(100):
            writer.write_table(table)
    path.write_bytes(sink.getvalue().to_pybytes())
    assert path.stat().st_size < 8 << 20
    done = pages(store, memory=2 << 30)
    assert_clean(done)


@pytest.mark.parametrize("where", ["the named generation", "a stale generation"])
def test_a_directory_named_like_a_records_generation_costs_no_failure(store, where):
    """Before (exit 4 on every run that saves): a directory named ``records-1.arrow``
    (what pages.json names) makes the records unreadable, then the new generation is
    numbered 1 again and its rename onto the directory fails; a stray ``records-9.arrow``
    directory fails the clean-up's unlink (IsADirectoryError) after the commit."""
    if where == "the named generation":
        path = records_path(store)
        path.unlink()
        path.mkdir()
    else:
        (store / "state" / "pages" / "records-9.arrow").mkdir()
    event = read_slot(store, "gw", GW_EVENT)
    event["far_hz"] = 1e-12
    write_slot(store, "gw", GW_EVENT, event)
    assert_clean(pages(store))


# ------------------------------------------------------------------ the rerun against a fresh build

def _change(store: Path, how: str) -> None:
    if how == "transient class":
        slot = read_slot(store, "transient", "ZTF23aaaaaaa")
        slot["fink_classification"] = "Kilonova candidate"
        write_slot(store, "transient", "ZTF23aaaaaaa", slot)
    elif how == "gw far_hz":
        slot = read_slot(store, "gw", GW_EVENT)
        slot["far_hz"] = 1e-12
        write_slot(store, "gw", GW_EVENT, slot)
    elif how == "transient deleted":
        (store / "transient" / "ZTF23aaaaaab.json").unlink()
    elif how == "new transient on the event":
        slot = read_slot(store, "transient", "ZTF23aaaaaab")
        slot["slot_id"] = "ZTF23aaaaaac"
        write_slot(store, "transient", "ZTF23aaaaaac", slot)
        event = read_slot(store, "gw", GW_EVENT)
        event["transients"].append("ZTF23aaaaaac")
        write_slot(store, "gw", GW_EVENT, event)
    elif how == "id differs from stem":
        slot = read_slot(store, "transient", "ZTF23aaaaaab")
        slot["slot_id"] = "ZTF23aaaaaax"
        write_slot(store, "transient", "ZTF23aaaaaab", slot)
    elif how == "gw deleted":
        (store / "gw" / f"{GW_EVENT}.json").unlink()


GW_PAGE, GW_IMAGE = f"gw/{GW_EVENT}.html", f"gw/{GW_EVENT}.png"
REWRITTEN = {
    "transient class": {GW_PAGE, "index.html", "transient/ZTF23aaaaaaa.html"},
    "gw far_hz": {GW_PAGE, "index.html", "transient/ZTF23aaaaaaa.html", "transient/ZTF23aaaaaab.html"},
    "transient deleted": {GW_PAGE, GW_IMAGE, "index.html", "transient/ZTF23aaaaaab.html"},
    "new transient on the event": {GW_PAGE, GW_IMAGE, "index.html", "transient/ZTF23aaaaaac.html"},
    "id differs from stem": {GW_PAGE, GW_IMAGE, "index.html", "transient/ZTF23aaaaaab.html"},
    "gw deleted": {GW_PAGE, GW_IMAGE, "index.html", "transient/ZTF23aaaaaaa.html", "transient/ZTF23aaaaaab.html"},
}


@pytest.mark.parametrize("how", list(REWRITTEN))
def test_a_rerun_after_a_slot_change_rewrites_exactly_the_pages_that_show_it(store, tmp_path, how):
    before = site_bytes(store / "site")
    _change(store, how)
    assert_clean(pages(store))
    after = site_bytes(store / "site")
    assert {name for name in set(before) | set(after) if before.get(name) != after.get(name)} == REWRITTEN[how]
    assert differs_from_fresh(store, tmp_path / "fresh") == []
    again = pages(store)
    assert_clean(again)
    assert json.loads(again.stdout)["rendered"] == 0


def test_a_changed_crossmatch_rule_rerenders_the_pages_that_draw_it(store, tmp_path):
    """Before (older than round 5): a cosmic ray's page draws the cross-match's match
    radius (``PageContext.rules``), but a page is rendered again only when its slot's stamp
    or a linked summary changed; ``crossmatch --uhecr-radius-deg 5`` rewrites no uhecr slot
    that gains no match, so every uhecr page keeps its 3-degree circle while a fresh build
    draws 5 degrees."""
    done = run_builder("crossmatch", "--storehouse", str(store), "--uhecr-radius-deg", "5")
    assert done.returncode == 0, done.stderr
    assert_clean(pages(store))
    stale = differs_from_fresh(store, tmp_path / "fresh")
    assert stale == [], f"{len(stale)} stale pages, e.g. {stale[:3]}"


@pytest.mark.parametrize("stem,claims", [("ZTF23aaaaaab", "ZTF23aaaaaaa"), ("ZTF23aaaaaaa", "ZTF23aaaaaab")])
def test_two_slot_files_claiming_one_id_render_as_a_fresh_build_does(store, tmp_path, stem, claims):
    """Before (in one of the two directions, which depended on directory order): pages
    look linked slots up by (kind, id), the last record of that id wins, and the records'
    order after a rerun (kept ones first, rendered ones after) is not a fresh build's (the
    directory's), so the gw page and the index show the other slot's summary."""
    slot = read_slot(store, "transient", stem)
    slot["slot_id"], slot["fink_classification"] = claims, "DUPLICATE"
    write_slot(store, "transient", stem, slot)
    assert_clean(pages(store))
    assert differs_from_fresh(store, tmp_path / "fresh") == []


def test_a_gw_image_goes_when_the_sky_map_goes(store, tmp_path):
    """Before (low): the page is rendered again without its image, but the old
    ``gw/<stem>.png`` stays in the site (a fresh build has none)."""
    (store / "gw" / f"{GW_EVENT}.multiorder.fits").unlink()
    assert_clean(pages(store))
    assert differs_from_fresh(store, tmp_path / "fresh") == []


# ------------------------------------------------------------------ KindStore.patch_index

def _entry(slot_id, **fields) -> dict:
    return {"slot_id": slot_id, "ra_deg": 1.5, "dec_deg": -2.0, "tns_type": None, **fields}


def _index_with(tmp_path: Path, slots: list, count: int | None = None):
    from alert_pipeline.storehouse.slots import KindStore

    store = KindStore(str(tmp_path), "transient")
    store.write_index([_entry("placeholder")])
    path = Path(store.layout.index("transient"))
    raw = orjson.dumps({"kind": "transient", "count": len(slots) if count is None else count,
                        "built_at": "2020-01-01T00:00:00Z", "slots": slots}) + b"\n"
    path.write_bytes(raw)
    return store, path, raw


def _whole_rewrite(raw: bytes, changes: dict) -> list:
    """What tns's fallback writes: ``_read_index``'s entries, changed, sorted by slot id."""
    entries = [e for e in orjson.loads(raw)["slots"] if isinstance(e, dict) and isinstance(e.get("slot_id"), str)]
    return sorted((changes.get(e["slot_id"], e) for e in entries), key=lambda e: e["slot_id"])


def _patched_or_refused(store, path: Path, raw: bytes, changes: dict) -> None:
    if store.patch_index(changes):
        after = orjson.loads(path.read_bytes())
        assert after["slots"] == _whole_rewrite(raw, changes)
        assert after["count"] == len(after["slots"])
    else:
        assert path.read_bytes() == raw


PATCH_CASES = {
    # FAIL NOW: patched, but not what a whole rewrite gives
    "duplicate slot id": ([_entry("A"), _entry("B"), _entry("B", ra_deg=2.0)], None),
    "entries out of order": ([_entry("C"), _entry("B"), _entry("A")], None),
    "count lies, nested objects": ([_entry("A", hosts=[{"z": 1}, {"slot_id": "B"}, {"slot_id": "C"}]), _entry("B")], 4),
    "an entry without a string id": ([_entry("A"), {"slot_id": None}, _entry("B")], None),
    # hold
    "hostile strings": ([_entry("A", n='},{"slot_id":"B"}'), _entry("B", n="\\"), _entry("C", n='\\"},{"slot_id":"B"')],
                        None),
    "unicode ids": ([_entry("A"), _entry("B"), _entry("B\u00e9"), _entry("B\u2028")], None),
    "a prefix id": ([_entry("A"), _entry("B"), _entry("B1"), _entry("BB")], None),
    "nested list, honest count": ([_entry("A", hosts=[{"z": 1}, {"slot_id": "B"}]), _entry("B")], None),
}


@pytest.mark.parametrize("how", list(PATCH_CASES))
def test_patch_index_gives_a_whole_rewrite_or_refuses_and_writes_nothing(tmp_path, how):
    slots, count = PATCH_CASES[how]
    store, path, raw = _index_with(tmp_path, slots, count)
    _patched_or_refused(store, path, raw, {"B": _entry("B", tns_type='SN Ia"},{"slot_id":"A"')})


def test_patch_index_random_hostile_indexes(tmp_path):
    """Random sorted indexes of hostile values (JSON's structural characters, escapes,
    nested objects and lists, ids that prefix one another) and random changes: patched
    equals rewritten, or refused and untouched; the file always parses."""
    rng = random.Random(5)
    alphabet = ['{', '}', '[', ']', '"', ',', ':', '\\', ' ', 'slot_id', '\u2028', '\x00', 'é', 'B', '},{"slot_id":']

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    def value(depth: int = 0):
        pick = rng.random()
        if depth < 2 and pick < 0.2:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        if depth < 2 and pick < 0.4:
            keys = ["slot_id", "z", text()]
            return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 3))}
        return rng.choice([text(), rng.random(), None, True, rng.randint(-5, 5)])

    for round_ in range(300):
        ids = sorted({rng.choice(["A", "AB", "B", "B\\", 'B"', "Bé", "C", "C1"]) for _ in range(rng.randint(1, 6))})
        slots = [{"slot_id": slot_id, **{key: value() for _ in range(rng.randint(0, 3))
                                         if (key := text() or "x") != "slot_id"}} for slot_id in ids]
        directory = tmp_path / str(round_)
        directory.mkdir()
        store, path, raw = _index_with(directory, slots)
        changes = {slot_id: {"slot_id": slot_id, "tns_type": text(), "extra": value()}
                   for slot_id in rng.sample(ids, rng.randint(1, len(ids)))}
        _patched_or_refused(store, path, raw, changes)
        orjson.loads(path.read_bytes())


def test_tns_after_a_slot_whose_id_differs_from_its_file_leaves_no_stale_index_entry(tmp_path):
    """Before: ``ZTF22aaaifcy.json`` holds slot id ZTF22aaaifcx (a copied slot), so
    ``rebuild-index`` writes two ZTF22aaaifcx entries. tns matches ZTF22aaaifcx to SN 2022and
    and patches only the first entry: the index then holds one entry with the TNS distance and
    one without (a whole rewrite replaces both)."""
    from tests.test_crossmatch import builder
    from tests.test_tns import PUBLIC, SN_2018LZF, SN_2022AND, away, slot

    store = tmp_path / "store"
    (store / "transient").mkdir(parents=True)
    named = slot("ZTF22aaaifcx", away(SN_2022AND, 0.5))
    for stem, content in (("ZTF22aaaifcx", named), ("ZTF22aaaifcy", named),
                          ("ZTF18abquxjv", slot("ZTF18abquxjv", away(SN_2018LZF, 90)))):
        (store / "transient" / f"{stem}.json").write_text(json.dumps(content))
    assert builder("rebuild-index", "--storehouse", str(store), "--kind", "transient").returncode == 0
    index = json.loads((store / "transient" / "index.json").read_text())
    assert [e["slot_id"] for e in index["slots"]] == ["ZTF18abquxjv", "ZTF22aaaifcx", "ZTF22aaaifcx"]
    done = run_builder("tns", "--storehouse", str(store), str(PUBLIC))
    assert_clean(done)
    entries = [e for e in json.loads((store / "transient" / "index.json").read_text())["slots"]
               if e["slot_id"] == "ZTF22aaaifcx"]
    assert len(entries) == 2 and entries[0]["distance"] is not None
    assert entries[0] == entries[1]


# ------------------------------------------------------------------ TNS aliases in blocks

def _catalogue(rows):
    import pyarrow as pa

    return pa.table({"objid": pa.array([r[0] for r in rows], pa.int64()),
                     "internal": pa.array([r[1] for r in rows], pa.string()),
                     "name": pa.array([f"AT {r[0]}" for r in rows], pa.string()),
                     "type": pa.nulls(len(rows), pa.string()), "redshift": pa.nulls(len(rows), pa.float64()),
                     "discovery": pa.nulls(len(rows), pa.string()),
                     "ra": pa.array([10.0] * len(rows)), "dec": pa.array([0.0] * len(rows))})


ALIAS_ROWS = [(1, "ATLAS19a, ZTF19aaaaaaa ,PS19b"), (2, " ZTF19aaaaaab"), (3, "ZTF19aaaaaab,ZTF19aaaaaac"),
              (4, ",".join(f"X{i}" for i in range(63)) + ",ZTF19aaaa64t,ZTF19aaaa65t"), (5, None), (6, ""),
              (7, "ZTF19aaaaaac"), (8, "ZTF19aaaaaad\t,\u00a0ZTF19aaaaaae\u3000"), (9, "," * 70 + "ZTF19aaaaaaf")]
WANTED = ["ZTF19aaaaaaa", "ZTF19aaaaaab", "ZTF19aaaaaac", "ZTF19aaaa64t", "ZTF19aaaa65t", "ZTF19aaaaaad",
          "ZTF19aaaaaae", "ZTF19aaaaaaf", "", "PS19b", "X" * 65]


def _reference(rows, wanted) -> list:
    """A whole split in plain Python: the first 64 comma-separated names of a cell, trimmed."""
    return sorted((name.strip(), objid) for objid, cell in rows if cell is not None
                  for name in cell.split(",", 64)[:64] if name.strip() in set(wanted) and 0 < len(name.strip()) <= 64)


@pytest.mark.parametrize("block", [1, 2, 3, 32_768])
def test_aliases_in_blocks_are_a_whole_splits(monkeypatch, block):
    import pyarrow as pa

    from alert_pipeline.storehouse.enrich import tns

    monkeypatch.setattr(tns, "ALIAS_CHUNK_ROWS", block)
    table = pa.concat_tables([_catalogue(ALIAS_ROWS[:4]), _catalogue(ALIAS_ROWS[4:])])  # two chunks
    names, objids = tns._aliases_among(table, pa.array(WANTED, pa.string()))
    got = sorted(zip(names.to_pylist(), objids.to_pylist(), strict=True))
    assert got == _reference(ALIAS_ROWS, WANTED)
    assert ("ZTF19aaaa64t", 4) in got and not any(name in ("ZTF19aaaa65t", "ZTF19aaaaaaf") for name, _ in got)


@pytest.mark.parametrize("block", [1, 4, 32_768])
def test_match_by_internal_name_takes_the_lowest_tns_id_across_blocks(monkeypatch, block):
    from alert_pipeline.storehouse.enrich import tns

    monkeypatch.setattr(tns, "ALIAS_CHUNK_ROWS", block)
    rows = [(10, "ATLAS1"), (11, "ZTF19aaaaaab"), (12, "X, ZTF19aaaaaaa"), (13, "ZTF19aaaaaaa"), (14, "Y"),
            (15, " ZTF19aaaaaab ,ZTF19aaaaaac")]
    entries = [{"slot_id": s, "ra_deg": 200.0, "dec_deg": 40.0} for s in ("ZTF19aaaaaaa", "ZTF19aaaaaab",
                                                                          "ZTF19aaaaaac", "ZTF19aaaaaad")]
    found = tns.match(_catalogue(rows), entries, 1.5)
    assert {slot_id: objid for slot_id, (objid, _) in found.items()} == {
        "ZTF19aaaaaaa": 12, "ZTF19aaaaaab": 11, "ZTF19aaaaaac": 15}


ALIAS_MEMORY = """
import sys
import pyarrow as pa, pyarrow.compute as pc
from alert_pipeline.storehouse.enrich import tns
from tests.peak import peak_rss_kb
rows = 200_000
cell = ",".join(f" XX{i:013d} " for i in range(64))[:1024]
internal = pc.binary_join_element_wise(pa.array([cell] * rows, pa.string()),
                                       pa.array([str(i) for i in range(rows)]), "")
table = pa.table({"objid": pa.array(range(rows), pa.int64()), "internal": internal})
del cell
before = peak_rss_kb()
wanted = pa.array([f"ZTF{i:09d}" for i in range(100_000)] + ["XX0000000000010"], pa.string())
names, objids = tns._aliases_among(table, wanted)
assert len(names) == rows and set(names.to_pylist()) == {"XX0000000000010"}
print(f"GROWTH_KB={peak_rss_kb() - before}")
"""


def test_aliases_of_wide_cells_grow_memory_by_a_block_not_the_catalogue():
    """200,000 rows of 1,024-character internal-name cells (64 names each: 12.8 M names).
    The whole split grew the peak by ~430 MB; a block at a time by ~50 MB."""
    done = subprocess.run([sys.executable, "-c", ALIAS_MEMORY], capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: _limits(4 << 30), cwd=REPO,
                          env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert done.returncode == 0, done.stderr[-2000:]
    growth = int(re.search(r"GROWTH_KB=(-?\d+)", done.stdout).group(1))
    assert growth < 200 << 10, f"peak grew {growth >> 10} MB"
