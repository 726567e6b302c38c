"""The site's slot reads through one descriptor, the records file's stamp in pages.json, the
frozen heap for the workers and the in-process reruns (build.py, state.py, layout.py,
durable.py), attacked. Each test here failed when written; its docstring says what happened
and what is expected instead."""

from __future__ import annotations

import gc
import json
import shutil
import weakref

import pytest

from tests import test_incremental_state_attack as state_attack
from tests.test_incremental_state_attack import (
    GW_EVENT,
    ON_GW,
    assert_clean,
    differs_from_fresh,
    pages,
    read_slot,
)

#: That file's storehouse (built once for this module) and a copy of it with its site made, per test.
built, store = state_attack.built, state_attack.store


class _Node:
    pass


@pytest.fixture
def thawed():
    """Whatever a test froze is thawed after it (the rest of the session's collector intact)."""
    yield
    gc.unfreeze()


def test_an_in_process_rerun_leaves_the_whole_heap_frozen(store, thawed):
    """``state.load`` (``_read_records``) calls ``gc.freeze()`` on every run that finds a state,
    and only ``_run_jobs`` ever thaws, when it starts a pool. A rerun with nothing to render (or
    a few pages: no pool) returns with every object of the caller's process in the permanent
    generation: a reference cycle that was garbage when the run started is never collected
    again (each rerun of a long-lived caller leaks whatever cyclic garbage was pending), and
    ``gc.get_freeze_count()`` stays at the heap's size. Expected: the run leaves the collector
    as it found it (nothing frozen by it, pending garbage still collectable)."""
    from alert_pipeline.storehouse.site import build

    gc.collect()
    before = gc.get_freeze_count()
    enabled = gc.isenabled()
    gc.disable()  # no automatic pass may collect the cycle before the run freezes it
    try:
        cycle = _Node()
        cycle.self = cycle
        gone = weakref.ref(cycle)
        del cycle
        done = build.run(str(store), workers=1)
    finally:
        if enabled:
            gc.enable()
    assert done["rendered"] == 0  # a rerun with nothing new: no pool, nothing thawed
    gc.collect()
    assert gone() is None, "a garbage cycle pending when the run started survives gc.collect() after it"
    assert gc.get_freeze_count() == before


def test_a_run_with_workers_thaws_what_its_caller_had_frozen(store, monkeypatch, thawed):
    """``_run_jobs`` ends with ``gc.unfreeze()``, which thaws the whole permanent generation, not
    what it froze: a caller that froze its own heap (the pre-fork pattern the gc docs suggest,
    e.g. a server that forks its own workers after a preload) finds it thawed after one
    ``build.run`` that used a pool (``gc.get_freeze_count()`` 0). Expected: what the caller had
    frozen before the run is still frozen after it."""
    from alert_pipeline.storehouse.site import build

    monkeypatch.setattr(build, "PARALLEL_FROM", 1)
    shutil.rmtree(store / "state" / "pages")  # no state: every page rendered, through the pool
    (store / "state" / "pages.json").unlink()
    gc.collect()
    marker = [object()]  # one of the caller's objects, frozen with the rest
    gc.freeze()  # the caller's own freeze
    frozen = gc.get_freeze_count()
    assert frozen > 0 and all(found is not marker for found in gc.get_objects())
    done = build.run(str(store), workers=2)
    assert done["rendered"] == done["pages"] > 0
    # frozen objects that died meanwhile leave the count; the rest, the marker among them, stay frozen
    assert gc.get_freeze_count() > frozen // 2, "the caller's frozen heap was thawed by the run"
    assert all(found is not marker for found in gc.get_objects()), "the caller's frozen object was thawed"


def test_an_event_slot_replaced_between_its_two_reads_leaves_its_transients_pages_stale_for_good(store, tmp_path,
                                                                                                  monkeypatch):
    """An event's slot is read twice in one run: by ``_summaries_only`` (its summary decides which
    transient pages are rendered again, and is what they show) and again by ``_job`` when its own
    page is rendered (that read's stamp and summary are what the state saves). A gw slot rewritten
    by the storehouse between the two (an update landing during a run): the transient pages show
    the first read's headline, the records save the second read's summary with the new file's
    stamp, so the next run finds the gw slot unchanged and never renders those transient pages
    again: the site differs from a fresh build for good. Expected: the next run (at the latest)
    gives the site a fresh build gives."""
    from alert_pipeline.durable import write_atomically
    from alert_pipeline.storehouse.site import build

    event = read_slot(store, "gw", GW_EVENT)
    event["far_hz"] = 1e-9  # the first update: the transient pages are rendered again with this headline
    (store / "gw" / f"{GW_EVENT}.json").write_text(json.dumps(event))
    real = build._summaries_only

    def then_updated(kind, files, recorded):
        found = real(kind, files, recorded)
        if kind == "gw":  # a second update lands while the run is rendering
            event["far_hz"] = 1e-12
            write_atomically(str(store / "gw" / f"{GW_EVENT}.json"), json.dumps(event).encode())
        return found

    monkeypatch.setattr(build, "_summaries_only", then_updated)
    build.run(str(store), workers=1)
    monkeypatch.setattr(build, "_summaries_only", real)
    assert_clean(pages(store))  # the next run, nothing changed since
    stale = differs_from_fresh(store, tmp_path / "fresh")
    assert stale == [], f"pages showing the gw event's first read, never rendered again: {stale} ({ON_GW})"


def test_a_run_that_fails_leaves_its_records_in_the_process(store, monkeypatch, thawed):
    """``run`` clears ``_Shared.records`` only when it returns: a run that raises (a full disk
    while a page is written) leaves every record of the storehouse (100,000 summaries at
    scale) held by the module until the next run, which is what the last commit says no run
    does ("a run leaves no records behind in its process"). Expected: the records are
    dropped however the run ends."""
    import errno

    from alert_pipeline.storehouse.site import build

    monkeypatch.setattr(build, "PARALLEL_FROM", 1)
    shutil.rmtree(store / "state" / "pages")  # no state: every page rendered (so written)
    (store / "state" / "pages.json").unlink()
    shutil.rmtree(store / "site")

    def full(item):
        raise OSError(errno.ENOSPC, "No space left on device", item[0])

    monkeypatch.setattr(build, "write", full)
    gc.collect()
    frozen = gc.get_freeze_count()
    with pytest.raises(OSError):
        build.run(str(store), workers=2)
    assert gc.get_freeze_count() == frozen
    assert build._Shared.records == {} and build._Shared.by_id is None, \
        f"records of {sorted(build._Shared.records)} kept after the failed run"
