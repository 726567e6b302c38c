"""Attacks on ``pages``' rendering: hostile slot values, the worker pool, the main process's
writes, and a ``pages`` killed mid-run then rerun.

The storehouse is test_incremental_state_attack's small one (the real S230518h alert, Auger's
first rows, four transients, cross-matched). Runs that may hang, die or blow up memory are
child processes with limits and a timeout; the others call ``build.run`` here (one worker
unless the pool is the point).

A test whose docstring starts "Bug:" fails on the code as reviewed and passes once the
problem it names is fixed; the others pin what held."""

from __future__ import annotations

import html
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from tests import test_incremental_state_attack as state_attack
from tests.conftest import SUBPROCESS_PYTHONPATH
from tests.test_incremental_state_attack import assert_clean, differs_from_fresh, pages

GW_EVENT = "S230518h"
AUGER = "Auger-20040119T121801"  # an uhecr slot without candidates
HUGE = "1" * 400  # an integer JSON allows; orjson refuses it, so the slot is read by json as an int
MEMORY = 3 << 30


def _deep(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


# ------------------------------------------------------------------ storehouses

#: test_incremental_state_attack's storehouse without a site (built once for this module) and one
#: copy of it with its site made by the command (its state recorded).
built, sited = state_attack.built, state_attack.sited


@pytest.fixture
def store(built, tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(built, copy, symlinks=True)
    return copy


@pytest.fixture
def site_store(sited, tmp_path) -> Path:
    """A copy of ``sited`` whose records match its files again (a copy's slot files have new
    inodes, so the copy's first run re-reads every slot; it writes no page)."""
    copy = tmp_path / "store"
    shutil.copytree(sited, copy, symlinks=True)
    assert_clean(done := pages(copy))
    assert json.loads(done.stdout)["files_written"] <= 1  # the index: it names the storehouse's path
    return copy


def slot_path(store: Path, kind: str, stem: str) -> Path:
    return store / kind / f"{stem}.json"


def edit(store: Path, kind: str, stem: str, change) -> None:
    path = slot_path(store, kind, stem)
    slot = json.loads(path.read_text())
    change(slot)
    path.write_text(json.dumps(slot))  # json writes a lone surrogate as \ud800, NaN as NaN


def run_here(store: Path, workers: int = 1) -> dict:
    from alert_pipeline.storehouse.site import build

    return build.run(str(store), workers=workers)


def html_pages(store: Path) -> list[Path]:
    return sorted((store / "site").rglob("*.html"))


def assert_rest_of_site(store: Path, done: dict, spoiled: tuple[str, str] | None = None) -> None:
    """Every page but the spoiled slot's is there; the spoiled one has a page or is counted."""
    site = store / "site"
    for kind in ("transient", "uhecr", "gw"):
        for path in (store / kind).glob("*.json"):
            if path.name in ("index.json", "roster.json") or (kind, path.stem) == spoiled:
                continue
            assert (site / kind / f"{path.stem}.html").is_file(), (kind, path.stem)
    assert (site / "index.html").is_file()
    if spoiled:
        assert (site / spoiled[0] / f"{spoiled[1]}.html").is_file() or done["unreadable_slots"] == 1


def child(script: str, *args: str, memory: int = MEMORY, timeout: float = 90) -> subprocess.CompletedProcess:
    """``script`` in a child Python process with address-space, CPU and wall-clock limits."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (120, 120))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limits, env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


# ------------------------------------------------------------------ values that fail the whole run

@pytest.mark.parametrize("kind,stem,field", [("transient", "ZTF23aaaaaaa", "host"),
                                             ("uhecr", AUGER, "provenance"),
                                             ("transient", "ZTF23aaaaaab", "source_fields")])
def test_deeply_nested_lists_in_a_slot_field_cost_that_slot_only(store, kind, stem, field):
    """Bug: a list nested 500 deep (JSON allows it: orjson refuses past 1024, then json reads
    it) in any field shown by ``markup.generic`` raises RecursionError (generic + its
    generator expression: two frames a level), which is not in ``build.UNRENDERABLE``: the
    whole ``pages`` run fails ("failed with an unexpected error") instead of that slot."""
    edit(store, kind, stem, lambda slot: slot.update({field: {"x": _deep(500)} if field == "source_fields"
                                                      else _deep(500)}))
    done = run_here(store)
    assert_rest_of_site(store, done, (kind, stem))


@pytest.mark.parametrize("kind,stem,field", [("transient", "ZTF23aaaaaaa", '"ra_deg":'),
                                             ("transient", "ZTF23aaaaaaa", '"n_chance":'),
                                             ("uhecr", AUGER, '"mjd":'),
                                             ("gw", GW_EVENT, '"far_hz":')])
def test_a_400_digit_integer_in_a_number_field_costs_that_slot_only(store, kind, stem, field):
    """Bug: a 400-digit integer (orjson refuses it, json reads it as an int) where a number
    belongs: ``summaries._number`` calls ``math.isfinite`` on it (OverflowError), and a
    coincidence's ``n_chance`` kept in the summary makes ``state.record_of``'s
    ``orjson.dumps`` raise (TypeError: integer exceeds 64 bits). Both are called in
    ``build._job`` / ``build._summaries_only`` outside the ``UNRENDERABLE`` guard: the whole
    run fails."""
    path = slot_path(store, kind, stem)
    text = path.read_text()
    assert field in text
    name = field.strip('":')
    path.write_text(text.replace(field, f'"{name}":{HUGE},"was_{name}":', 1))
    done = run_here(store)
    assert_rest_of_site(store, done, (kind, stem))


@pytest.mark.parametrize("kind,stem,field", [("uhecr", AUGER, "time"), ("uhecr", AUGER, "experiment"),
                                             ("gw", GW_EVENT, "time"),
                                             ("transient", "ZTF23aaaaaab", "first_detection")])
def test_a_lone_surrogate_in_a_slot_string_costs_that_slot_only(store, kind, stem, field):
    """Bug (events): ``"\\ud800"`` in a JSON string is valid JSON (json reads it where orjson
    refuses); in an event's ``time`` or ``experiment`` it reaches the event's summary, whose
    ``orjson.dumps`` in ``state.record_of`` (called by ``build._summaries_only``, unguarded)
    raises TypeError: the whole run fails before any page. (A transient's held: its page's
    ``encode`` raises UnicodeEncodeError, a ValueError, inside the guard.)"""
    edit(store, kind, stem, lambda slot: slot.update({field: "2023\ud800"}))
    done = run_here(store)
    assert_rest_of_site(store, done, (kind, stem))


@pytest.mark.parametrize("n_chance", [None, "0.1", [1]])
def test_the_index_survives_a_coincidence_whose_n_chance_is_not_a_number(store, n_chance):
    """Bug: a transient coincidence with ``"n_chance": null`` (or a string) while another has
    a number: ``index._transients`` sorts by ``min(i.get("n_chance", 1e9) ...)`` unguarded
    (``best_chances`` beside it checks the type), so comparing None with a float raises
    TypeError in the main process while writing index.html: the whole run fails, after every
    page was written and before the state is saved."""
    edit(store, "transient", "ZTF23aaaaaaa", lambda slot: slot["multimessenger"][0].update(n_chance=n_chance))
    done = run_here(store)
    assert (store / "site" / "index.html").is_file() and done["pages"] == 45


# ------------------------------------------------------------------ the gw sky map

@pytest.mark.parametrize("slot_id", ["S230518h $\\sqrt{$", "$" + "{" * 300 + "}" * 300 + "$"])
def test_a_gw_slot_id_is_drawn_as_text_in_the_sky_maps_title(store, slot_id):
    """Bug: the sky map's title is ``f"{slot_id}: sky map"`` passed to matplotlib, which reads
    ``$...$`` as mathtext (``skymap_plot.mollweide_png``, ``axes.set_title``). A slot id with a
    malformed formula loses the whole gw page (ValueError: no page, counted unreadable); one of
    nested braces raises RecursionError from pyparsing, not in ``UNRENDERABLE``: the whole run
    fails. A title drawn as plain text (``parse_math=False``) draws both."""
    edit(store, "gw", GW_EVENT, lambda slot: slot.update(slot_id=slot_id))
    done = run_here(store)
    assert done["unreadable_slots"] == 0
    assert (store / "site" / "gw" / f"{GW_EVENT}.html").is_file()
    assert (store / "site" / "gw" / f"{GW_EVENT}.png").is_file()


def test_a_fifo_named_as_a_gw_slots_sky_map_does_not_hang_pages(store):
    """Bug: ``build._gw_image`` opens the slot's ``skymap`` file with plain ``open`` (every other
    storehouse read goes through ``open_regular``, which refuses a FIFO without waiting): a
    FIFO planted in gw/ and named by the slot blocks ``pages`` forever."""
    os.mkfifo(store / "gw" / "trap.multiorder.fits")
    edit(store, "gw", GW_EVENT, lambda slot: slot.update(skymap="trap.multiorder.fits"))
    try:
        done = pages(store, "--workers", "1", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("pages hung opening a FIFO named as the sky map")
    assert_clean(done)
    assert (store / "site" / "gw" / f"{GW_EVENT}.html").is_file()


# ------------------------------------------------------------------ odd shapes that lose a page

def test_scalars_where_lists_belong_in_upper_limits_or_a_minor_bodys_curve_draw_nothing_not_fail():
    """Bug: the light curve's points treat a number or string where a list belongs as no point
    (this session's ``plots._points``), but ``plots._limits`` (``zip(curve.get("mjd") or [],
    ...)``) and ``minor_body_page.detections`` (``enumerate(data.get("mjd") or [])``,
    ``col[index]``) still raise TypeError on the same hand edit: the page is lost."""
    from alert_pipeline.storehouse.site import minor_body_page, transient_page
    from alert_pipeline.storehouse.site.context import PageContext

    transient = {"slot_id": "ZTF23aaaaaaa", "light_curve": {"g": {"mjd": [60000.0], "mag": [19.0]}},
                 "upper_limits": {"g": {"mjd": 60001.0, "mag": 20.5}}}
    assert b"ZTF23aaaaaaa" in transient_page.render(transient, PageContext())
    for curve in ({"mjd": 60000.0, "mag": 19.0}, {"mjd": [60000.0, 60001.0], "mag": 19.0, "mag_err": 0.1}):
        body = {"slot_id": "2019 AB", "designation": "2019 AB", "light_curve": {"g": curve}}
        assert b"2019 AB" in minor_body_page.render(body, PageContext())


def test_a_slot_too_big_to_render_in_memory_costs_that_slot_only(store):
    """Bug: a 30 MB slot (1.5 M light-curve points; the read limit is 256 MB) renders a 210 MB
    page and needs over a gigabyte to do it (a 10 MB slot: a 69 MB page, 480 MB peak); given
    600 MB over what the run needs anyway, the MemoryError is not in ``UNRENDERABLE`` and the
    whole run fails. Either bound what a page draws or count the slot unreadable."""
    n = 1_500_000
    slot = {"slot_id": "ZTF23aaaaaac", "kind": "transient",
            "light_curve": {"g": {"mjd": [60000 + i * 1e-3 for i in range(n)], "mag": [18 + (i % 100) / 100
                                                                                      for i in range(n)],
                                  "mag_err": [0.1] * n}}}
    slot_path(store, "transient", "ZTF23aaaaaac").write_bytes(orjson.dumps(slot))
    del slot
    done = child("""
        import resource, sys
        import matplotlib; matplotlib.use("Agg")
        from matplotlib.figure import Figure
        from alert_pipeline.storehouse.site import build, skymap_plot
        size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + (600 << 20),) * 2)
        done = build.run(sys.argv[1], workers=1)
        print("RESULT", done["pages"], done["unreadable_slots"])
    """, str(store), memory=6 << 30, timeout=120)
    assert done.returncode == 0 and "RESULT" in done.stdout, done.stderr[-2000:]
    assert (store / "site" / "index.html").is_file()
    assert len(list((store / "site" / "transient").glob("*.html"))) >= 4


def test_a_slot_file_stem_of_250_characters_does_not_fail_every_run_once_its_page_exists(site_store):
    """Bug: ``slot_files`` accepts a transient stem of 250 characters (its file name is 255
    bytes) and the first run creates its page in place; once the slot changes, ``build.write``
    replaces the page through ``write_atomically``'s ``<page>.html.tmp-<pid>``, a name longer
    than 255 bytes: OSError ENAMETOOLONG, and every later run fails until the slot is removed."""
    stem = "A" * 250
    path = slot_path(site_store, "transient", stem)
    path.write_text(json.dumps({"slot_id": stem, "kind": "transient"}))
    assert_clean(pages(site_store))
    assert (site_store / "site" / "transient" / f"{stem}.html").is_file()
    path.write_text(json.dumps({"slot_id": stem, "kind": "transient", "subtype": "changed"}))
    assert_clean(pages(site_store))
    assert b"changed" in (site_store / "site" / "transient" / f"{stem}.html").read_bytes()


def test_write_atomically_replaces_a_file_whose_temp_name_would_be_too_long(tmp_path):
    """The short temp name is ``write_atomically``'s own (every caller's): a 250-byte name is
    replaced like any other, through ``.tmp-<pid>-<thread>``, which ``TEMP_NAME`` knows as a
    temp file of this pid; a short name keeps ``<name>.tmp-<pid>``."""
    import threading

    from alert_pipeline.durable import TEMP_NAME, temp_name, write_atomically

    long = tmp_path / ("B" * 250)
    long.write_bytes(b"old")
    write_atomically(str(long), b"new", durable=False)
    assert long.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == [long.name]
    short_temp = os.path.basename(temp_name(str(long)))
    assert short_temp == f".tmp-{os.getpid()}-{threading.get_ident()}"
    assert int(TEMP_NAME.search(short_temp).group(1)) == os.getpid()
    assert temp_name(str(tmp_path / "page.html")) == f"{tmp_path}/page.html.tmp-{os.getpid()}"
    assert int(TEMP_NAME.search(f"page.html.tmp-{os.getpid()}").group(1)) == os.getpid()
    from alert_pipeline.storehouse.site.build import remove_stale_temps

    left = [".tmp-99999999-140000", "page.html.tmp-99999999", short_temp]  # two of a gone run, one of this one
    for name in left:
        (tmp_path / name).write_bytes(b"half")
    remove_stale_temps(str(tmp_path), left)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([long.name, short_temp])


# ------------------------------------------------------------------ killed mid-run, then rerun

KILLED_IN_CREATE = """
    import os, signal, sys
    from alert_pipeline.storehouse.site import build

    def create_new(path, data):  # killed between creating the file and writing it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.kill(os.getpid(), signal.SIGKILL)

    build.create_new = create_new
    build.run(sys.argv[1], workers=1)
"""

KILLED_IN_REPLACE = """
    import os, signal, sys
    from alert_pipeline.storehouse.site import build

    def write_atomically(path, data, durable=True):  # killed with half the temp file written
        with open(f"{path}.tmp-{os.getpid()}", "xb") as handle:
            handle.write(data[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    build.write_atomically = write_atomically
    build.run(sys.argv[1], workers=1)
"""


@pytest.mark.parametrize("missing", ["transient/ZTF19aapreis.html", f"gw/{GW_EVENT}.png"])
def test_a_page_left_empty_by_a_kill_is_made_again_by_the_rerun(site_store, tmp_path, missing):
    """Bug: a recorded page (or gw image) that is missing is rendered again and, being new,
    created in place (``build.write`` → ``create_new``: open O_EXCL, then write). ``pages``
    killed between the two leaves an empty file; the state still records the slot's stamp
    and page digest, and ``_pages`` keeps a page whose stamp matches and whose file exists
    without looking at its bytes: the rerun leaves the empty page forever."""
    (site_store / "site" / missing).unlink()
    done = child(KILLED_IN_CREATE, str(site_store))
    if done.returncode == -signal.SIGKILL:  # killed creating the page, or (replaced atomically) its temp file
        spoiled = site_store / "site" / missing
        assert not spoiled.exists() or spoiled.stat().st_size == 0
    else:
        assert done.returncode == 0, done.stderr[-2000:]
    assert_clean(pages(site_store))
    assert (site_store / "site" / missing).stat().st_size > 0
    assert differs_from_fresh(site_store, tmp_path / "fresh") == []


def test_a_kill_while_a_page_is_replaced_leaves_no_temp_file_after_the_rerun(site_store, tmp_path):
    """Bug: ``pages`` killed while replacing a page leaves ``<page>.html.tmp-<pid>`` in the site;
    ``write_atomically`` only removes a temp file of its own pid, and nothing in ``pages``
    removes another's: every rerun keeps publishing it, so the site is never the fresh one."""
    edit(site_store, "transient", "ZTF19aapreis", lambda slot: slot.update(subtype="tde"))
    done = child(KILLED_IN_REPLACE, str(site_store))
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert list((site_store / "site").rglob("*.tmp-*"))
    assert_clean(pages(site_store))
    assert list((site_store / "site").rglob("*.tmp-*")) == []
    assert differs_from_fresh(site_store, tmp_path / "fresh") == []


SLOW_POOL = """
    import os, sys, time
    from alert_pipeline.storehouse.site import build, event_pages

    real = event_pages.render_point

    def slow(*args, **kwargs):
        time.sleep(0.3)
        return real(*args, **kwargs)

    event_pages.render_point = slow
    build.PARALLEL_FROM, build.CHUNK, build.WINDOW = 1, 1, 1
    build.run(sys.argv[1], workers=3)
"""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as handle:
            found += [int(item) for item in handle.read().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_workers_exit_when_pages_is_killed(store):
    """Bug: ``pages`` SIGKILLed (the OOM killer, a timeout) while its pool renders leaves every
    worker process alive for good (blocked on the pool's queue; nothing tells them the parent
    is gone), each holding a forked copy of the run's memory; each killed run adds more."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SLOW_POOL), str(store)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limits,
                               env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((store / "site" / "uhecr").glob("*.html")):
            time.sleep(0.05)
        workers = _children(process.pid)
        assert len(workers) >= 3, "the pool did not start"
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.1)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in workers:  # the orphans this test made, by their ids
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------ what held

def test_a_worker_that_dies_fails_the_run_at_once_and_the_rerun_is_the_fresh_site(site_store, tmp_path):
    """A worker that dies (``os._exit`` while rendering one slot) fails the run at once with
    BrokenProcessPool (no hang, the main process exits); no temp file is left, and the next
    run makes the site a fresh build makes."""
    for stem in ("ZTF23aaaaaaa", "ZTF23aaaaaab", "ZTF19aapreis"):  # more than one job: the pool renders them
        edit(site_store, "transient", stem, lambda slot: slot.update(subtype="changed"))
    edit(site_store, "uhecr", AUGER, lambda slot: slot.update(experiment="changed"))
    done = child("""
        import os, sys
        from alert_pipeline.storehouse.site import build, transient_page

        real = transient_page.render

        def render(slot, context):
            if slot.get("slot_id") == "ZTF23aaaaaab":
                os._exit(9)
            return real(slot, context)

        transient_page.render = render
        build.PARALLEL_FROM, build.CHUNK, build.WINDOW = 1, 1, 1
        build.run(sys.argv[1], workers=2)
    """, str(site_store), timeout=60)
    assert done.returncode == 1 and "BrokenProcessPool" in done.stderr, done.stderr[-2000:]
    assert list((site_store / "site").rglob("*.tmp-*")) == []
    assert_clean(pages(site_store))
    assert differs_from_fresh(site_store, tmp_path / "fresh") == []


def test_an_unexpected_error_in_one_chunk_keeps_the_written_pages_and_the_rerun_is_the_fresh_site(
        site_store, tmp_path, monkeypatch):
    """An error not in ``UNRENDERABLE`` raised by a worker's chunk reaches the caller; the pages
    already written stay (none truncated), no temp file is left, the state is not saved,
    and the next run gives the fresh site."""
    from alert_pipeline.storehouse.site import build, event_pages

    for stem in sorted(path.stem for path in (site_store / "uhecr").glob("Auger-*.json"))[:10]:
        edit(site_store, "uhecr", stem, lambda slot: slot.update(experiment="Auger (changed)"))
    state_before = (site_store / "state" / "pages.json").read_bytes()
    victim = sorted(path.stem for path in (site_store / "uhecr").glob("Auger-*.json"))[6]
    real = event_pages.render_point

    def render_point(kind, slot, context):
        if slot.get("slot_id") == victim:
            raise RuntimeError("boom")
        return real(kind, slot, context)

    monkeypatch.setattr(event_pages, "render_point", render_point)
    monkeypatch.setattr(build, "PARALLEL_FROM", 1)
    monkeypatch.setattr(build, "CHUNK", 2)
    monkeypatch.setattr(build, "WINDOW", 1)
    with pytest.raises(RuntimeError, match="boom"):
        build.run(str(site_store), workers=2)
    changed = [p for p in (site_store / "site" / "uhecr").glob("*.html") if b"Auger (changed)" in p.read_bytes()]
    assert changed and all(p.read_bytes().endswith(b"</html>\n") for p in changed)
    assert (site_store / "state" / "pages.json").read_bytes() == state_before
    assert list((site_store / "site").rglob("*.tmp-*")) == []
    monkeypatch.undo()
    assert_clean(pages(site_store))
    assert differs_from_fresh(site_store, tmp_path / "fresh") == []


HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>&amp;"


class Markup(HTMLParser):
    """Every start tag with its attributes, and where scripts run."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def test_hostile_markup_in_every_field_and_key_reaches_no_page_as_markup(store):
    """Markup in every value and key a slot can carry (names, classes, bands, coincidence
    fields, host candidates, a gw's classification, an event's fields) is text on every
    page and in the index: no script but site.js, no event-handler attribute, no element a
    slot could add (iframe, img but the sky map)."""
    def transient(slot):
        slot.update(fink_classification=HOSTILE, subtype=HOSTILE, first_detection=HOSTILE, bands=[HOSTILE],
                    tns={"name": HOSTILE, "type": HOSTILE, HOSTILE: HOSTILE}, host={HOSTILE: [HOSTILE, {"a": HOSTILE}]},
                    source_fields={HOSTILE: HOSTILE}, n_alerts=HOSTILE, mag_brightest=HOSTILE,
                    light_curve={HOSTILE: {"mjd": [60000.0, 60001.0], "mag": [19.0, 18.5]}},
                    upper_limits={HOSTILE: {"mjd": [59999.0], "mag": [20.5]}})
        slot["multimessenger"][0].update({HOSTILE: HOSTILE, "dt_days": HOSTILE})
        slot["multimessenger"].append({"kind": HOSTILE, "event": HOSTILE, "n_chance": 0.5})

    edit(store, "transient", "ZTF23aaaaaaa", transient)
    edit(store, "gw", GW_EVENT, lambda slot: slot.update(
        classification={HOSTILE: 0.9}, alert_type=HOSTILE, time=HOSTILE, extra={HOSTILE: HOSTILE},
        host_candidates=[{HOSTILE: HOSTILE}], transients=[*slot["transients"], HOSTILE]))
    edit(store, "uhecr", AUGER, lambda slot: slot.update(experiment=HOSTILE, time=HOSTILE, transients=[HOSTILE],
                                                         zenith_deg=HOSTILE, **{HOSTILE: HOSTILE}))
    done = run_here(store)
    assert done["unreadable_slots"] == 0
    for path in html_pages(store):
        data = path.read_text()
        parser = Markup()
        parser.feed(data)
        for tag, attrs in parser.tags:
            assert tag not in ("iframe", "object", "embed"), path
            assert not [name for name, _ in attrs if name.startswith("on")], (path, tag, attrs)
            if tag == "script":
                assert [name for name, _ in attrs] == ["src"] and dict(attrs)["src"].endswith("site.js"), path
            if tag == "img":
                assert dict(attrs)["src"].endswith(".png") and path.parent.name == "gw", path
            for _, value in attrs:
                assert not (value or "").lower().lstrip().startswith("javascript:"), (path, tag, attrs)
        assert "<script>alert" not in data
    shown = (store / "site" / "transient" / "ZTF23aaaaaaa.html").read_text()
    assert html.escape(HOSTILE, quote=True) in shown


def test_odd_values_where_numbers_and_lists_belong_never_fail_the_run(store):
    """Bools, NaN, infinities, strings, nested junk and huge floats where numbers and lists
    belong: every page is made (what cannot be drawn is not drawn)."""
    junk = [True, None, float("nan"), float("inf"), -float("inf"), "19.5", [1, [2]], {"a": 1}, 1e308, -1e308,
            2 ** 63, 5e-324]

    def transient(slot):
        slot.update(ra_deg=float("nan"), dec_deg=True, first_mjd="x", n_alerts=[1], mag_brightest=float("inf"),
                    light_curve={"g": {"mjd": junk + [60000.0, 60001.0], "mag": list(reversed(junk)) + [19.0, 18.0],
                                       "mag_err": junk, "positive": "no"},
                                 "r": {"mjd": 60000.0, "mag": "19"}, "i": junk, "z": None},
                    upper_limits={"g": {"mjd": [60000.5, "x", float("nan")], "maglim": [20.0, 21.0]}, "r": 5})
        slot["multimessenger"][0].update(dt_days=float("nan"), n_chance=float("inf"), credible_level="high")

    edit(store, "transient", "ZTF23aaaaaaa", transient)
    edit(store, "transient", "ZTF23aaaaaab", lambda slot: slot.update(light_curve=junk, upper_limits=junk))
    edit(store, "gw", GW_EVENT, lambda slot: slot.update(far_hz=float("nan"), classification={"BNS": "x", "a": None},
                                                         transients=[1, None, *slot["transients"]]))
    edit(store, "uhecr", AUGER, lambda slot: slot.update(ra_deg=1e308, dec_deg=-1e308, energy_eev=float("nan"),
                                                         error_radius_deg=float("inf"), transients="ZTF"))
    done = run_here(store)
    assert done["unreadable_slots"] == 0 and done["pages"] == 45
    assert_rest_of_site(store, done)


def test_text_returns_plain_strings_unchanged_and_escapes_each_special_character():
    """``markup.text``'s shortcut: a string with none of & < > " ' comes back as it is; one
    with any of them comes back escaped for an attribute as for text."""
    from alert_pipeline.storehouse.site.markup import attr, text

    plain = "ZTF23aaaaaaa SN Ia — 2023-05-18"
    assert text(plain) is plain
    for special, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
        assert text(f"a{special}b") == f"a{escaped}b" == attr(f"a{special}b")
    assert text(True) == "True" and text(["<x>"]) == "[&#x27;&lt;x&gt;&#x27;]" and text(None) == "—"
    assert re.fullmatch(r"[^<>&\"']*", text({"<": ">"}).replace("&lt;", "").replace("&gt;", "").replace("&#x27;", ""))
