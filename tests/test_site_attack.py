"""Hostile ``pages --out`` directories: a site is never written over files pages did not make,
nor (through a link) into the storehouse; what was there is byte for byte what it was. The
builder runs in a child process with memory, CPU and wall-clock limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_OK
from tests.test_crossmatch import transient, write_transients
from tests.test_galaxies_attack import builder, digests

MARK = ".storehouse-site"


@pytest.fixture
def store(tmp_path) -> Path:
    store = tmp_path / "store"
    write_transients(store, [transient("ZTF21abcdefg", 188.86, 14.49, 60000, 60001)])
    return store


def test_a_directory_of_the_users_files_is_refused_and_left_as_it_was(store, tmp_path):
    """Before: its index.html (and a kind directory's page of the same name) was overwritten."""
    mine = tmp_path / "www"
    (mine / "transient").mkdir(parents=True)
    (mine / "index.html").write_text("<h1>my home page</h1>\n")
    (mine / "transient" / "ZTF21abcdefg.html").write_text("my notes\n")
    before = digests(mine)
    done = builder("pages", "--storehouse", str(store), "--out", str(mine))
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "holds files that are not a site made by pages" in done.stderr
    assert digests(mine) == before and not (mine / MARK).exists()


@pytest.mark.parametrize("target", ["", "transient"])
def test_a_link_into_the_storehouse_is_refused(store, tmp_path, target):
    """Before: ``--out`` a link to the storehouse (or a kind's directory) passed the check,
    which compared the link's own path, and the site was written into the storehouse."""
    link = tmp_path / "site-link"
    link.symlink_to(store / target if target else store)
    before = digests(store)
    done = builder("pages", "--storehouse", str(store), "--out", str(link))
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "would hold the storehouse" in done.stderr or "inside a kind's directory" in done.stderr
    assert digests(store) == before


def test_a_site_pages_made_is_updated_wherever_it_is(store, tmp_path):
    elsewhere = tmp_path / "published"
    first = builder("pages", "--storehouse", str(store), "--out", str(elsewhere))
    assert first.returncode == EXIT_OK, first.stderr
    assert (elsewhere / MARK).is_file() and (elsewhere / "transient" / "ZTF21abcdefg.html").is_file()
    again = builder("pages", "--storehouse", str(store), "--out", str(elsewhere))
    assert again.returncode == EXIT_OK and json.loads(again.stdout)["files_written"] == 0
    # a site made before the mark existed: the storehouse's own, or the one its state records
    (elsewhere / MARK).unlink()
    assert builder("pages", "--storehouse", str(store), "--out", str(elsewhere)).returncode == EXIT_OK
    assert builder("pages", "--storehouse", str(store)).returncode == EXIT_OK
    (store / "site" / MARK).unlink()
    assert builder("pages", "--storehouse", str(store)).returncode == EXIT_OK


def _tamper_records(store: Path, how: str, victim: Path) -> None:
    """Replace the records ``pages.json`` names with a hostile or broken file."""
    import pyarrow as pa

    state = json.loads((store / "state" / "pages.json").read_text())
    path = store / "state" / "pages" / state["records"]
    if how == "missing":
        path.unlink()
        return
    if how == "torn":
        path.write_bytes(path.read_bytes()[:200])
        return
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    column = "kind" if how == "kind is a path" else "stem"
    # from the site directory: store/site/<kind>/<stem>.html; the victim is tmp_path/victim/<stem>.html
    escape = "../../victim" if column == "kind" else f"../../../{victim.stem}"
    table = table.set_column(table.schema.get_field_index(column), column,
                             pa.array([escape] * len(table), pa.string()))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


@pytest.mark.parametrize("how", ["missing", "torn", "kind is a path", "stem is a path"])
def test_damaged_or_hostile_site_records_cost_a_full_render_never_a_file_outside(store, tmp_path, how):
    """The site's records (``state/pages/records-N.arrow``) name files under the site that a
    run removes when their slot is gone: a record whose kind or stem is a path is refused
    (the whole file is no state: every page rendered, only changed bytes written)."""
    victim = tmp_path / "victim" / "ZTF21abcdefg.html"
    victim.parent.mkdir()
    victim.write_text("not the site's\n")
    (tmp_path / "ZTF21abcdefg.html").write_text("not the site's either\n")
    assert builder("pages", "--storehouse", str(store)).returncode == EXIT_OK
    page = store / "site" / "transient" / "ZTF21abcdefg.html"
    page_bytes, page_stat = page.read_bytes(), page.stat()
    _tamper_records(store, how, victim)
    done = builder("pages", "--storehouse", str(store))
    assert done.returncode == EXIT_OK, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rendered"] == 1 and summary["files_removed"] == 0
    assert summary["files_written"] == 1  # the index (it shows when it was made); the page's bytes were the same
    if how != "missing":
        assert "records" in done.stderr and "unreadable" in done.stderr
    assert victim.read_text() == "not the site's\n"
    assert (tmp_path / "ZTF21abcdefg.html").read_text() == "not the site's either\n"
    assert page.read_bytes() == page_bytes and (page_stat.st_ino, page_stat.st_mtime_ns) == (
        page.stat().st_ino, page.stat().st_mtime_ns)
    again = builder("pages", "--storehouse", str(store))  # the state is whole again
    assert json.loads(again.stdout)["rendered"] == 0
