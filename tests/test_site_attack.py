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
