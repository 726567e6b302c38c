"""The documentation as a reader meets it: README.md and the pages of docs/ (issue 35, item 6).

The site builds with ``mkdocs build --strict`` (no broken link, anchor or page left out of the
navigation; nothing fetched); every relative link of README.md and docs/*.md resolves, to its
file and, where it names one, to a heading of that file as GitHub renders it; every command
the docs show in a ``bash`` block names repository files that exist; and every documented
entry point answers ``--help`` with exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: The entry points the docs must show (a parser that finds nothing would pass every check).
MAIN_ENTRY_POINTS = {"lsst_alert_consumer.py", "lsst_alert_report.py", "transient_kind_builder.py",
                     "antares_extendedness_filter.py", "run_lsst_consumer.sh", "run_tests.sh",
                     "scripts/local_services.sh"}
#: What a command names as a repository file, by where it lives.
REPOSITORY_PREFIXES = ("scripts/", "benchmarks/", "tests/", "alert_pipeline/", "devtools/")
#: Documented entry points that do not answer --help with 0 yet (each is another file's fix).
HELP_NOT_YET: dict[str, str] = {}


def _page_name(page: Path) -> str:
    return str(page.relative_to(REPO))


def _prose(text: str) -> str:
    """The text outside fenced code blocks, with inline code blanked."""
    text = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "``", text)


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"^ *```bash\n(.*?)^ *```", text, re.S | re.M)


# ------------------------------------------------------------------------------------ the site
def test_the_site_builds_strict_and_offline(tmp_path):
    """Strict: a warning (a broken link or anchor, a page not in the navigation, a docstring
    the reference cannot read) fails the build. Offline: every proxy points at a closed port,
    so a plugin or theme that fetched anything would fail it too."""
    site = tmp_path / "site"
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead,
           "no_proxy": "", "NO_PROXY": ""}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    for page in (REPO / "docs").glob("*.md"):
        assert (site / page.with_suffix(".html").name).is_file(), page.name
    # The site works offline: no script, stylesheet or font from elsewhere.
    for html in site.glob("*.html"):
        remote = re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=\"(?:https?:)?//[^\"]*\"", html.read_text())
        assert not remote, (html.name, remote)
    # The module reference covers every public module of the package and the four tools.
    reference = (site / "reference.html").read_text()
    modules = ["lsst_alert_consumer", "lsst_alert_report", "transient_kind_builder", "antares_extendedness_filter"]
    for path in sorted((REPO / "alert_pipeline").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(part.startswith("_") for part in parts):
            modules.append(".".join(parts))
    missing = [name for name in modules if f'id="{name}"' not in reference]
    assert not missing, f"not in the module reference: {missing}"


# ----------------------------------------------------------------------------------- the links
def _github_anchors(page: Path) -> set[str]:
    """The ids GitHub gives the headings of a Markdown file (duplicates get -1, -2 …)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _headings(page):
        slug = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", line)
        slug = re.sub(r"[^\w\- ]", "", slug.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _headings(page: Path) -> list[str]:
    text = re.sub(r"^ *```.*?^ *```", "", page.read_text(), flags=re.S | re.M)
    return [match.group(1).strip() for match in re.finditer(r"^#{1,6} +(.*)$", text, re.M)]


def _relative_links(page: Path) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(page.read_text()))
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_the_pages_have_links_to_check():
    assert len(_relative_links(REPO / "README.md")) >= 15
    in_docs = [target for page in PAGES[1:] for target in _relative_links(page)]
    assert len(in_docs) >= 20 and sum("#" in target for target in in_docs) >= 5, in_docs


@pytest.mark.parametrize("page", PAGES, ids=_page_name)
def test_every_relative_link_resolves_to_its_file_and_heading(page):
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor:
            if resolved.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in _github_anchors(resolved):
                broken.append(f"{target}: no heading #{anchor} in {_page_name(resolved)}")
    assert not broken, "\n".join(broken)


# -------------------------------------------------------------------------------- the commands
def _commands() -> list[tuple[Path, list[str]]]:
    """Every command line of every bash block (continued lines joined), as shell words."""
    found = []
    for page in PAGES:
        for block in _bash_blocks(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                try:
                    words = shlex.split(line, comments=True)
                except ValueError:
                    words = line.split()
                if words:
                    found.append((page, words))
    return found


def _named_files(words: list[str]) -> list[str]:
    """The repository files a command names: the script ``python`` runs, a ``./…sh``, and any
    path under scripts/, benchmarks/, tests/ (tests/data/ …), alert_pipeline/, devtools/."""
    named = []
    for index, word in enumerate(words):
        word = word.rstrip(";")
        before = words[index - 1] if index else ""
        if before.endswith("python") and word.endswith(".py"):
            named.append(word)
        elif re.fullmatch(r"\./[\w./-]+\.sh", word):
            named.append(word.removeprefix("./"))
        elif word.startswith(REPOSITORY_PREFIXES) and not re.search(r"[<>*$]", word):
            named.append(word)
        elif before == "-m" and word.startswith(("alert_pipeline.", "devtools.")):
            named.append(word.replace(".", "/") + ".py")
    return named


def test_every_command_names_files_that_exist():
    named = {(page, name) for page, words in _commands() for name in _named_files(words)}
    missing = sorted(f"{_page_name(page)}: {name}" for page, name in named if not (REPO / name).exists())
    assert not missing, "the docs name files that do not exist:\n" + "\n".join(missing)
    assert MAIN_ENTRY_POINTS <= {name for _, name in named}, MAIN_ENTRY_POINTS - {name for _, name in named}


def _entry_points() -> list[str]:
    """Each documented entry point once, as the words before ``--help``: a tool (with each
    sub-command the docs show), a shell script, a module run with ``-m``."""
    points = set()
    for _, words in _commands():
        for index, word in enumerate(words):
            before = words[index - 1] if index else ""
            rest = words[index + 1:]
            if before.endswith("python") and word.endswith(".py") and "/" not in word:
                sub = rest[0] if rest and re.fullmatch(r"[a-z][a-z-]+", rest[0]) else None
                points.add(f"{word} {sub}" if sub else word)
            elif re.fullmatch(r"(\./[\w-]+|scripts/[\w-]+)\.sh", word):
                points.add(word.removeprefix("./"))
            elif before == "-m" and word.startswith("alert_pipeline."):
                points.add(f"-m {word}")
    return sorted(points)


def test_the_docs_show_every_sub_command_of_the_builder():
    shown = {point.split()[1] for point in _entry_points() if point.startswith("transient_kind_builder.py ")}
    assert {"rebuild-index", "load-fink", "load-messengers", "crossmatch", "tns", "load-galaxies", "hosts",
            "pages"} <= shown, shown


def test_the_known_exceptions_are_documented_entry_points():
    assert set(HELP_NOT_YET) <= set(_entry_points()), "fixed or gone: remove from HELP_NOT_YET"


@pytest.mark.parametrize("point", [
    pytest.param(point, marks=pytest.mark.xfail(strict=True, reason=HELP_NOT_YET[point]))
    if point in HELP_NOT_YET else point for point in _entry_points()])
def test_every_documented_entry_point_answers_help(point):
    words = point.split()
    if words[0] == "-m" or words[0].endswith(".py"):
        argv = [sys.executable, *words]
    else:
        argv = [str(REPO / words[0]), *words[1:]]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LSST_CONSUMER_")}
    env["PYTHON"] = sys.executable
    done = subprocess.run([*argv, "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip(), "no help text"
