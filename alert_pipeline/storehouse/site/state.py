"""What the site was made from: ``<storehouse>/state/pages.json``.

Per kind, per slot file stem: ``[stamp, summary, inputs, page]`` — the slot file's stamp
(inode, size, mtime, ctime: any rewrite, restore or replacement changes it; a gw slot's
also covers its sky-map file), the slot's summary (``summaries``), the digest of the
summaries of the slots its page links to, and the digest of the page's bytes (and of its
image, for gw). A slot whose stamp and inputs are the recorded ones has the recorded page:
it is not opened. The state names the site directory and the site's version (its style,
script and page code): another directory or version is no state. A state that is missing,
unreadable or of another layout is no state either: the next run renders every page, and
writes only those whose bytes differ.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

from alert_pipeline.storehouse.layout import StateFile, StorehouseLayout

#: The site's memory between runs: ``state/pages.json``.
STATE_NAME = "pages"
STATE_VERSION = 1
#: Positions in a slot's record.
STAMP, SUMMARY, INPUTS, PAGE = range(4)


def file_stamp(path: str) -> str | None:
    """What changes whenever the file is replaced or rewritten (None when it is missing)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return f"{found.st_ino}:{found.st_size}:{found.st_mtime_ns}:{found.st_ctime_ns}"


@functools.cache
def site_version() -> str:
    """A digest of the code and assets that make the pages: a new version renders every page
    again. Taken once per process, from the files as they were when it first ran (the code
    it runs: an edit meanwhile is seen by the next process)."""
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read())
    return digest.hexdigest()


def load(storehouse: str, out: str, version: str) -> dict[str, Any]:
    """The recorded state for this site directory and version, or an empty one."""
    data = StateFile(StorehouseLayout.at(storehouse), STATE_NAME).read()
    if (isinstance(data, dict) and data.get("version") == STATE_VERSION and data.get("out") == out
            and data.get("site_version") == version and isinstance(data.get("slots"), dict)):
        return data
    return {"version": STATE_VERSION, "out": out, "site_version": version, "slots": {}, "index": None}


def save(storehouse: str, data: dict[str, Any]) -> None:
    StateFile(StorehouseLayout.at(storehouse), STATE_NAME).write(data)
