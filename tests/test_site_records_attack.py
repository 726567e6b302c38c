"""The site's records decoded when first needed (state.py, build.py) and light curves drawn
as one path a band (plots.py), attacked: each test failed before its fix; the docstring says
what happened then. A summary of the wrong shape costs a full render, never a traceback; a
run that starts again without its state counts once and still removes the pages of slots
that went; odd light-curve numbers never break a page or its paths."""

from __future__ import annotations

import json
import re

import orjson
import pytest

from tests import test_incremental_state_attack as state_attack
from tests.test_incremental_state_attack import (
    GW_EVENT,
    differs_from_fresh,
    pages,
    read_slot,
    rewrite_records,
    with_matching_digest,
    write_slot,
)

#: That file's storehouse (built once for this module) and a copy of it with its site made, per test.
built, store = state_attack.built, state_attack.store


def _summary(kind: str, stem: str, change):
    """One record's summary (kind/stem) rewritten through ``change(dict) -> bytes``; the other rows as written."""
    import pyarrow as pa

    def rewrite(table):
        kinds, stems, summaries = (table[n].to_pylist() for n in ("kind", "stem", "summary"))
        summaries = [change(orjson.loads(s)) if (k, st) == (kind, stem) else s
                     for k, st, s in zip(kinds, stems, summaries, strict=True)]
        return table.set_column(table.schema.get_field_index("summary"), "summary", pa.array(summaries, pa.binary()))
    return rewrite


def _with(field, value):
    """A summary with its id and stem first (it passes ``summary_prefix`` and ``summary_of``) and ``field`` = ``value``."""
    def change(found):
        found[field] = value
        return orjson.dumps(found)
    return change


def _not_json_after_prefix(found):
    return orjson.dumps({"id": found["id"], "stem": found["stem"]})[:-1] + b',"class":'


def _clean(done):
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]


def _far(storehouse):
    event = read_slot(storehouse, "gw", GW_EVENT)
    event["far_hz"] = 1e-12
    write_slot(storehouse, "gw", GW_EVENT, event)


# ------------------------------------------------------------------ 1. lazily decoded records

@pytest.mark.parametrize(("field", "value"), [("mm", [1]), ("mm", 5), ("first", 5)],
                         ids=["mm a list of ints", "mm an int", "first an int"])
def test_a_records_summary_of_wrong_types_costs_a_full_render_not_a_traceback(store, tmp_path, field, value):
    """A transient summary that is JSON, a dict, with its own id and stem (so ``summary_prefix``
    and ``summary_of`` accept it) but a field of another type: the next run that renders the
    index (any transient changed) exits 1 with a traceback from index.body
    (AttributeError/TypeError), on every run until the state is deleted by hand."""
    rewrite_records(store, _summary("transient", "ZTF23aaaaaab", _with(field, value)))
    with_matching_digest(store)
    slot = read_slot(store, "transient", "ZTF19aapreis")
    slot["fink_classification"] = "Something new"
    write_slot(store, "transient", "ZTF19aapreis", slot)
    done = pages(store)
    _clean(done)
    assert "records are unreadable" in done.stderr and "is not its slot's" in done.stderr
    assert differs_from_fresh(store, tmp_path / "fresh") == []


@pytest.mark.parametrize("value", [5, "a\u0000b", ["x"]], ids=["int", "NUL", "list"])
def test_a_gw_summary_naming_an_odd_sky_map_costs_a_full_render_not_a_traceback(store, value):
    """``stamp_of`` joins the recorded summary's ``skymap`` into a path before anything is
    rendered: an int/list (TypeError from os.path.join) or a NUL (ValueError from os.stat)
    makes every run exit 1 with a traceback, even a rerun with nothing new."""
    rewrite_records(store, _summary("gw", GW_EVENT, _with("skymap", value)))
    with_matching_digest(store)
    done = pages(store)
    _clean(done)
    assert "records are unreadable" in done.stderr
    again = pages(store)  # the state that run saved is sound: nothing to render
    _clean(again)
    assert json.loads(again.stdout)["rendered"] == 0 and "unreadable" not in again.stderr


def test_a_restart_counts_each_unreadable_slot_once(store):
    """The restart reuses the first attempt's counters: an unreadable slot met before the
    bad summary is found (here at the index) is counted twice (``unreadable_slots`` 2),
    and ``rendered`` (49) exceeds the number of pages (44)."""
    (store / "transient" / "ZTF21aaaaaaz.json").write_text("{broken")
    rewrite_records(store, _summary("transient", "ZTF19aapreis", _not_json_after_prefix))
    with_matching_digest(store)
    _far(store)
    done = pages(store)
    _clean(done)
    assert "records are unreadable" in done.stderr  # the restart happened
    summary = json.loads(done.stdout)
    assert summary["unreadable_slots"] == 1
    assert summary["rendered"] <= summary["pages"] + summary["unreadable_slots"]


def test_a_restart_still_removes_the_pages_of_slots_that_went(store, tmp_path):
    """A transient slot deleted, and another's summary found bad when the gw page is rendered
    (before ``_remove_gone``): the restart forgets the recorded stems, so the deleted slot's
    page is never removed — not by this run, not by any later one (files_removed 0)."""
    (store / "transient" / "ZTF23aaaaaab.json").unlink()
    rewrite_records(store, _summary("transient", "ZTF23aaaaaaa", _not_json_after_prefix))
    with_matching_digest(store)
    _clean(pages(store))
    _clean(pages(store))
    assert not (store / "site" / "transient" / "ZTF23aaaaaab.html").exists()
    assert differs_from_fresh(store, tmp_path / "fresh") == []


# ------------------------------------------------------------------ 3. light curves as paths

def test_a_huge_negative_error_never_puts_inf_into_a_bands_path():
    """An error of -1e308 passes ``_points`` (finite) but ``error * sy`` overflows: the band's
    one "bars" path reads "M276.0 infV-inf…", invalid path data, and an SVG renderer stops
    drawing the path there, so every later error bar of the band is lost (one <line> each
    before 46d7bd5: only that bar was)."""
    from alert_pipeline.storehouse.site.plots import light_curve

    svg = light_curve({"slot_id": "X", "light_curve": {"g": {"mjd": [1.0, 2.0, 3.0], "mag": [18.0, 18.1, 18.2],
                                                            "mag_err": [0.1, -1e308, 0.1]}}})
    paths = re.findall(r' d="([^"]*)"', svg)
    assert not [path for path in paths if re.search(r"inf|nan", path)], paths
    assert len(re.findall(r"V", re.search(r'class="bars" d="([^"]+)"', svg).group(1))) == 2  # the two sound bars


@pytest.mark.parametrize("band", [{"mjd": [-1e308, 1e308], "mag": [18.0, 18.1]},
                                  {"mjd": [1.0, 2.0], "mag": [18.0, 18.1], "mag_err": [1e308, 0.1]}],
                         ids=["mjd spanning the float range", "an error of 1e308"])
def test_a_light_curve_of_finite_but_huge_values_never_fails(band):
    """Finite values whose span overflows (t1 - t0 or the error pad = inf): ``ticks`` raises
    OverflowError (math.floor(inf)); the page of such a slot is not written at all."""
    from alert_pipeline.storehouse.site.plots import light_curve

    svg = light_curve({"slot_id": "X", "light_curve": {"g": band}})
    if band["mjd"][0] == -1e308:
        assert svg == ""  # no float spans the range: no plot (the page says so), the page is written
    else:  # the points drawn, the absurd error without its bar, the other's bar kept
        assert len(re.findall(r"h0", re.search(r'class="points" d="([^"]+)"', svg).group(1))) == 2
        assert len(re.findall(r"V", re.search(r'class="bars" d="([^"]+)"', svg).group(1))) == 1


def test_records_changed_in_place_with_their_mtime_put_back_are_digested_and_refused(store, tmp_path):
    """The records file is digested only when its stamp is not the one saved beside its digest:
    a byte changed in place, the size kept and the mtime set back (``touch -d``), still changes
    the ctime no user can set, so the digest is taken, differs, and the run renders every page."""
    import os

    from tests.test_incremental_state_attack import records_path

    assert pages(store).returncode == 0
    saved = json.loads((store / "state" / "pages.json").read_text())
    path = records_path(store)
    before = os.stat(path)
    assert saved["records_stamp"] == f"{before.st_ino}:{before.st_size}:{before.st_mtime_ns}:{before.st_ctime_ns}"
    content = bytearray(path.read_bytes())
    at = content.index(b"ZTF") + 3  # a byte of a slot id inside the records: the size stays
    content[at] = ord("Q") if content[at] != ord("Q") else ord("R")
    with open(path, "r+b") as handle:  # in place: the same inode
        handle.write(bytes(content))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    done = pages(store)
    _clean(done)
    assert "its digest differs" in done.stderr and "every page is rendered again" in done.stderr
    assert json.loads(done.stdout)["rendered"] == json.loads(done.stdout)["pages"] > 0
    assert differs_from_fresh(store, tmp_path / "fresh") == []
