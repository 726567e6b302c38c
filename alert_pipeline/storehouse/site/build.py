"""``pages``: the site, incrementally.

Order: the events' summaries (a few thousand slots), then the alert kinds' pages
(transient, minor_body: each slot read once, summarised and rendered against the events'
summaries), then the events' pages (against the transients' summaries), then pages of
slots that are gone removed, then the index and the assets. A page is rendered when its
slot's stamp or the site's version changed, when the summary of a slot it links to changed
(appeared, went) since the state was saved, or when it is missing; it is written only when
its bytes differ from the recorded ones. So a rerun with nothing new opens no slot and
writes nothing; a changed slot rewrites its page, the pages that show its summary (when
that changed) and the index (when what it shows changed). New pages are created in place,
replaced pages atomically (temp file + rename), and the whole site made durable with one
filesystem sync.

Pages are rendered in ``workers`` processes when there are many (forked: they share the
summaries already made) and written by the main process as they come.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from alert_pipeline.durable import TEMP_NAME, create_new, open_regular, sync_filesystem, write_atomically
from alert_pipeline.storehouse import collector, kinds
from alert_pipeline.storehouse.enrich import crossmatch
from alert_pipeline.storehouse.enrich import tns as tns_state
from alert_pipeline.storehouse.layout import (
    SITE_DIRECTORY,
    StateFile,
    StorehouseLayout,
    read_bounded,
    read_json_file,
    read_json_file_with_status,
    read_roster,
)
from alert_pipeline.storehouse.site import event_pages, index, minor_body_page, state, transient_page
from alert_pipeline.storehouse.site.assets import ASSETS
from alert_pipeline.storehouse.site.context import PageContext
from alert_pipeline.storehouse.site.state import Record, link_key, record_of, summary_of
from alert_pipeline.storehouse.site.summaries import (
    ALERT_KINDS,
    MINOR_BODY,
    TRANSIENT,
    digest,
    links,
    sky_map_name,
    summary,
)
from alert_pipeline.storehouse.slots import is_reserved, utc_now

log = logging.getLogger("transient_kind_builder")
#: The site's directory under the storehouse when ``--out`` is not given (the layout's).
DEFAULT_SITE = SITE_DIRECTORY
#: Below this cost of pages to render, no worker process is started.
PARALLEL_FROM = 400
#: The cost of pages a worker is given at a time.
CHUNK = 500
#: What rendering a slot of unexpected values may raise: that slot has no page, the rest is made.
UNRENDERABLE = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, ZeroDivisionError,
                RecursionError, MemoryError)
#: Chunks given to each worker ahead of the one being written.
WINDOW = 3
GW = "gw"
#: What one page costs to render, in transient pages, where it differs much: a gw page draws its sky map.
RENDER_COST = {GW: 500}
IMAGE_SUFFIX = ".png"
#: The file that marks a directory as a site ``pages`` made (so it may write there again).
SITE_MARK = ".storehouse-site"


class SiteError(ValueError):
    """The storehouse cannot be made into a site (it does not exist, holds no kind, or the site would
    overwrite it)."""


def kind_names(storehouse: str) -> list[str]:
    """The registry's kinds whose directory exists, alert kinds first."""
    present = [name for name in kinds.names() if os.path.isdir(os.path.join(storehouse, name))]
    return [name for name in present if name in ALERT_KINDS] + [name for name in present if name not in ALERT_KINDS]


def slot_files(storehouse: str, kind: str, known: Container[str] = ()) -> dict[str, str]:
    """Stem → slot file path of every slot file of a kind (other files left alone). A stem
    in ``known`` (the recorded ones: the same rule accepted them) is not checked again."""
    names = kinds.spec(kind).names
    directory = os.path.join(storehouse, kind)
    found = {}
    for name in os.listdir(directory):
        stem = name[:-5]
        if stem in known and name.endswith(".json") or name.endswith(".json") and not name.startswith(".") \
                and not is_reserved(stem) and names.slot_id(stem) is not None:
            found[stem] = f"{directory}/{name}"
    return found


def stamp_of(kind: str, path: str, recorded: Record | None) -> str | None:
    """The slot file's stamp, with its sky map's for gw (named by the recorded summary)."""
    stamp = state.file_stamp(path)
    if kind == GW and stamp is not None and recorded and summary_of(recorded).get("skymap"):
        stamp += "|" + str(state.file_stamp(os.path.join(os.path.dirname(path), summary_of(recorded)["skymap"])))
    return stamp


def read_slot(path: str) -> tuple[str | None, dict[str, Any] | None]:
    """The slot file's stamp and content ((None, None) when it cannot be read; a content
    that is not an object: None). The stamp is the open file's, taken before it is read: a
    slot rewritten meanwhile is rendered again next run."""
    found, slot = read_json_file_with_status(path)
    if found is None:
        return None, None
    return state.stamp(found), slot if isinstance(slot, dict) else None


class _Shared:
    """What every worker needs (set before the pool forks)."""

    storehouse = ""
    out = ""
    rules: Mapping[str, Any] = {}
    #: The records of every kind known so far (kind → stem → record).
    records: dict[str, dict[str, Record]] = {}
    #: The same by (kind, slot id), made when a page is first rendered (a rerun with nothing
    #: to render never needs it); None when ``records`` changed since.
    by_id: dict[tuple[str, str], Record] | None = None


def _by_id() -> dict[tuple[str, str], Record]:
    """Two slot files claiming one id (a hand-copied slot): the one whose file stem is the id,
    else the first stem in order, whatever order the files were listed or rendered in."""
    if _Shared.by_id is None:
        by_id: dict[tuple[str, str], Record] = {}
        stems: dict[tuple[str, str], str] = {}
        for kind, found in _Shared.records.items():
            for stem, record in found.items():
                key = (kind, record.slot_id)
                other = stems.get(key)
                if other is None or (stem == record.slot_id) > (other == record.slot_id) \
                        or (stem == record.slot_id) == (other == record.slot_id) and stem < other:
                    by_id[key], stems[key] = record, stem
        _Shared.by_id = by_id
    return _Shared.by_id


def _linked(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    by_id = _by_id()
    return {pair: summary_of(by_id[pair]) for pair in pairs if pair in by_id}


#: A file to write: (path, bytes, whether to replace it atomically rather than create it in place).
Write = tuple[str, bytes, bool]


def to_write(path: str, data: bytes, recorded: str | None, exists: bool) -> tuple[str, Write | None]:
    """The digest of ``data`` and the write it needs: none when the file exists with the
    recorded digest (or, with none recorded, the same bytes: a lost state costs renders,
    not writes). A page the state records is never created in place: a run killed between
    creating and writing it would leave an empty file the next run takes for the page."""
    found = _bytes_digest(data)
    if exists and (found == recorded or recorded is None and _same_bytes(path, data)):
        return found, None
    return found, (path, data, exists or recorded is not None)


def write(item: Write) -> None:
    """A new file created in place, any other replaced atomically (``write_atomically``; the
    sync is the run's, once)."""
    path, data, replace = item
    if not replace:
        try:
            create_new(path, data)
            return
        except FileExistsError:
            pass
    write_atomically(path, data, durable=False)


def remove_stale_temps(directory: str, names: Iterable[str]) -> None:
    """Remove the temporary files (``durable.TEMP_NAME``) of ``names`` (in ``directory``) that
    a killed run left (its process gone; a live one's are its own)."""
    for name in names:
        found = TEMP_NAME.search(name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                os.unlink(os.path.join(directory, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _same_bytes(path: str, data: bytes) -> bool:
    try:
        return read_bounded(path, len(data)) == data
    except (OSError, ValueError):
        return False


def _bytes_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _render(kind: str, stem: str, slot: Mapping[str, Any], linked: list[tuple[str, str]], recorded: str | None,
            exists: bool) -> tuple[str, list[Write]]:
    """Render one slot's page (and a gw page's image); the page digest and the files to write.
    ``linked``: the slots the page links to; ``recorded``: the digests of the page (and image) last written."""
    context = PageContext(_linked(linked), _Shared.rules)
    directory = os.path.join(_Shared.out, kind)
    writes = []
    image_note = ""
    if kind == TRANSIENT:
        data = transient_page.render(slot, context)
    elif kind == MINOR_BODY:
        data = minor_body_page.render(slot, context)
    elif kind == GW:
        image = _gw_image(stem, slot, context)
        if image is not None:
            image_path = os.path.join(directory, stem + IMAGE_SUFFIX)
            image_digest, image_write = to_write(image_path, image, recorded.split("+")[-1] if recorded else None,
                                                 os.path.exists(image_path))
            writes += [image_write] if image_write else []
            image_note = "+" + image_digest
        else:  # the sky map is gone or unreadable: so is its image
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, stem + IMAGE_SUFFIX))
        data = event_pages.render_gw(slot, context, stem + IMAGE_SUFFIX if image is not None else None)
    else:
        data = event_pages.render_point(kind, slot, context)
    page_digest, page_write = to_write(os.path.join(directory, stem + ".html"), data,
                                       recorded.split("+")[0] if recorded else None, exists)
    return page_digest + image_note, writes + ([page_write] if page_write else [])


def _gw_image(stem: str, slot: Mapping[str, Any], context: PageContext) -> bytes | None:
    from alert_pipeline.storehouse.messengers.skymaps import SkyMapError, read_skymap
    from alert_pipeline.storehouse.site.skymap_plot import mollweide_png

    name = slot.get("skymap")
    if not isinstance(name, str) or os.path.basename(name) != name:
        return None
    try:
        with open_regular(os.path.join(_Shared.storehouse, GW, name)) as handle:  # a FIFO is refused, not waited on
            sky_map = read_skymap(handle)
    except (OSError, SkyMapError) as exc:
        log.warning("pages: gw %s: its sky map %s is unreadable (%s); the page has none", stem, name, exc)
        return None
    candidates = [(pair[1], found["ra"], found["dec"]) for pair, found in context.linked.items()
                  if isinstance(found.get("ra"), float) and isinstance(found.get("dec"), float)]
    order = {slot_id: rank for rank, slot_id in enumerate(slot.get("transients") or [])}
    candidates.sort(key=lambda item: order.get(item[0], len(order)))
    return mollweide_png(sky_map.uniq, sky_map.probdensity, candidates, f"{slot.get('slot_id')}: sky map")


def _job(kind: str, stem: str, path: str, recorded: str | None, exists: bool
         ) -> tuple[str, Record | None, list[Write]]:
    """Read, summarise and render one slot; (stem, its new record or None when unreadable, files to write).
    The stamp is taken before the slot is read: a slot replaced meanwhile is rendered again next run."""
    stamp, slot = read_slot(path)
    if slot is None or stamp is None:
        log.warning("pages: %s is not a readable slot; no page", path)
        return stem, None, []
    try:
        found = summary(kind, stem, slot)
        if kind == GW and (sky_map := sky_map_name(slot.get("skymap"))) is not None:
            found["skymap"] = sky_map
            stamp += "|" + str(state.file_stamp(os.path.join(os.path.dirname(path), found["skymap"])))
        linked = links(kind, found)
        page_digest, writes = _render(kind, stem, slot, linked, recorded, exists)
        return stem, record_of(stamp, found, linked, page_digest), writes
    except UNRENDERABLE as exc:  # a slot of values no page expects: named, and the rest of the site made
        _cannot_show(path, exc)
        return stem, None, []


def _cannot_show(path: str, exc: BaseException) -> None:
    log.warning("pages: %s holds values its page cannot show (%s: %s); no page", path, type(exc).__name__,
                str(exc)[:200])


def _chunk_jobs(jobs: list[tuple]) -> list[tuple[str, Record | None, list[Write]]]:
    return [_job(*job) for job in jobs]


def _run_jobs(jobs: list[tuple], workers: int) -> Iterator[tuple[str, Record | None, list[Write]]]:
    """The jobs' results (all of one kind) in order, run here, or in ``workers`` processes
    when they cost enough to pay for starting them (a few sky maps do, a few pages do
    not). The workers render; the files are written here, by one process: concurrent file
    creation on one file system costs more kernel time in all than the same files created
    by one (``benchmarks/site_scale.py``). At most ``WINDOW`` chunks per worker are
    waiting, so rendered pages never pile up in memory."""
    if jobs:
        _by_id()  # made once, before the workers fork
    cost = RENDER_COST.get(jobs[0][0], 1) if jobs else 0
    if len(jobs) < 2 or len(jobs) * cost < PARALLEL_FROM or workers <= 1:
        for job in jobs:
            yield _job(*job)
        return
    size = max(1, CHUNK // cost)
    chunks = deque(jobs[start:start + size] for start in range(0, len(jobs), size))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
                             initargs=(os.getpid(),)) as pool:
        pending: deque = deque()
        while chunks or pending:
            while chunks and len(pending) < WINDOW * workers:
                pending.append(pool.submit(_chunk_jobs, chunks.popleft()))
            yield from pending.popleft().result()


def _start_worker(parent: int) -> None:
    """A worker's collector never walks what it inherited (``gc.freeze``, in the worker: the
    objects' pages are not copied for it), and the worker dies with the run: killed (the OOM
    killer, a timeout), the run leaves no worker holding a copy of its memory (Linux's
    parent-death signal)."""
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the run died before the signal was asked for
        os._exit(1)


def _summaries_only(kind: str, files: Mapping[str, str], recorded: Mapping[str, Record]) -> dict[str, Record]:
    """The events' records with fresh summaries for every slot whose stamp changed (pages not rendered yet)."""
    records = {}
    for stem, path in files.items():
        before = recorded.get(stem)
        stamp = stamp_of(kind, path, before)
        if before is not None and stamp == before.stamp:
            records[stem] = before
            continue
        slot = read_slot(path)[1]
        if slot is None:
            log.warning("pages: %s is not a readable slot; no page", path)
            continue
        try:
            found = summary(kind, stem, slot)
            if kind == GW and (sky_map := sky_map_name(slot.get("skymap"))) is not None:
                found["skymap"] = sky_map
            records[stem] = record_of(None, found, links(kind, found), None)  # stamp unset: its page is rendered
        except UNRENDERABLE as exc:
            _cannot_show(path, exc)
    return records


def _changed_links(kind: str, records: Mapping[str, Record], recorded: Mapping[str, Record]) -> set[str]:
    """The links (``state.link_key``) to slots of a kind whose summary changed, appeared or
    went since the records were saved: the pages that link to them are rendered again."""
    changed = set()
    for stem, record in records.items():
        before = recorded.get(stem)
        if before is record:
            continue
        if before is None or before.summary != record.summary:
            changed.add(link_key(kind, record.slot_id))
            if before is not None:
                changed.add(link_key(kind, before.slot_id))
    changed.update(link_key(kind, before.slot_id) for stem, before in recorded.items() if stem not in records)
    return changed


def _pages(kind: str, files: Mapping[str, str], records: Mapping[str, Record], recorded: Mapping[str, Record],
           changed: set[str], workers: int, counts: Counter) -> dict[str, Record]:
    """Render the pages of one kind that need it (``changed``: the links whose summary
    changed); the kind's records afterwards."""
    directory = os.path.join(_Shared.out, kind)
    os.makedirs(directory, exist_ok=True)
    present = set(os.listdir(directory))
    remove_stale_temps(directory, present)
    jobs, kept = [], {}
    slots = os.open(os.path.join(_Shared.storehouse, kind), os.O_RDONLY | os.O_DIRECTORY)
    file_stamp, get_old, get_current = state.file_stamp, recorded.get, records.get
    try:
        for stem, path in files.items():  # a rerun's loop over every slot: kept short
            old = get_old(stem)
            current = get_current(stem, old)
            exists = f"{stem}.html" in present
            if current is not None and exists and current.stamp is not None \
                    and (current is not old or (file_stamp(f"{stem}.json", slots) if kind != GW
                                                else stamp_of(kind, path, current)) == current.stamp) \
                    and not (changed and any(key in changed for key in current.links)) \
                    and (kind != GW or "+" not in (current.page or "") or f"{stem}{IMAGE_SUFFIX}" in present):
                kept[stem] = current
                continue
            jobs.append((kind, stem, path, old.page if old else None, exists))
    finally:
        os.close(slots)
    for stem, record, writes in _run_jobs(jobs, workers):
        counts["rendered"] += 1
        if writes:
            started = time.perf_counter_ns()
            for item in writes:
                write(item)
            counts["writing_ns"] += time.perf_counter_ns() - started
        counts["files_written"] += len(writes)
        if record is not None:
            kept[stem] = _as_shown(record, records.get(stem))
        else:
            counts["unreadable"] += 1
    return kept


def _as_shown(record: Record, shown: Record | None) -> Record:
    """The record to keep of an event's slot read again for its page: when the slot changed
    since its summary was taken for the other pages of this run (an update landing meanwhile),
    the summary those pages show, unstamped: the next run reads the slot again, and renders
    its page and the pages that show it."""
    if shown is None or shown.summary == record.summary:
        return record
    return Record(None, shown.slot_id, shown.stem, shown.summary, shown.links, record.page, shown.decoded)


def _remove_gone(kind: str, kept: Mapping[str, Record], recorded: Mapping[str, Record], counts: Counter) -> None:
    for stem in set(recorded) - set(kept):
        for suffix in (".html", IMAGE_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(_Shared.out, kind, stem + suffix))
                counts["files_removed"] += 1


def _write_assets(out: str, counts: Counter) -> None:
    for name, data in ASSETS.items():
        path = os.path.join(out, name)
        try:
            same = read_bounded(path) == data
        except (OSError, ValueError):
            same = False
        if not same:
            write_atomically(path, data, durable=False)
            counts["files_written"] += 1


def _provenance(sources: Mapping[str, Any], summaries: Mapping[str, Mapping[str, dict[str, Any]]]) -> dict[str, Any]:
    """Which storehouse state the site shows: its path, its slots' digest, the cross-match's
    rules and the TNS catalogue's date (``sources``: all of it but the digest)."""
    return {"storehouse": sources["storehouse"], "slots digest": digest(summaries),
            "TNS catalogue as of": sources["TNS catalogue as of"], "cross-match rules": sources["cross-match rules"]}


def _sources(storehouse: str) -> dict[str, Any]:
    """What the index shows of the storehouse besides its slots: its path, the TNS catalogue's
    date and the cross-match's rules."""
    tns = read_json_file(os.path.join(StorehouseLayout.at(storehouse).state_directory(tns_state.STATE),
                                      tns_state.STATE_NAME))
    return {"storehouse": storehouse, "TNS catalogue as of": tns.get("full_as_of") if isinstance(tns, dict) else None,
            "cross-match rules": _Shared.rules or None}


def _index(storehouse: str, out: str, records: Mapping[str, Mapping[str, Record]], data: dict[str, Any],
           counts: Counter, summaries_unchanged: bool) -> None:
    """Write index.html when what it shows changed. Its inputs are the pages' summaries, the
    rosters and the sources: when no summary changed and the rosters and sources digest as
    before, the page is not even rendered (at 100,000 transients rendering it is most of a
    rerun with nothing new)."""
    layout = StorehouseLayout.at(storehouse)
    rosters = {kind: read_roster(layout, kind) for kind in records}
    sources = _sources(storehouse)
    inputs = digest({"rosters": rosters, "sources": sources})
    path = os.path.join(out, "index.html")
    if summaries_unchanged and inputs == data.get("index_inputs") and data.get("index") and os.path.exists(path):
        return
    # in stem order: the index's rows are the same whatever order the slots were listed or rendered in
    summaries = {kind: {stem: summary_of(found[stem]) for stem in sorted(found)} for kind, found in records.items()}
    markup = index.body(summaries, {k: v for k, v in rosters.items() if isinstance(v, dict)},
                        _provenance(sources, summaries))
    found = _bytes_digest(markup.encode())
    counts["state_changed"] += inputs != data.get("index_inputs")
    data["index_inputs"] = inputs
    if found == data.get("index") and os.path.exists(path):
        return
    write_atomically(path, index.render(markup, utc_now()), durable=False)
    counts["files_written"] += 1
    data["index"] = found


def _differ(records: Mapping[str, Mapping[str, Record]], before: Mapping[str, Mapping[str, Record]]) -> bool:
    """Whether any record is not the one loaded (a slot re-read, rendered, new or gone)."""
    if set(records) != set(before):
        return True
    return any(len(found) != len(before[kind]) or any(before[kind].get(stem) is not record
                                                      for stem, record in found.items())
               for kind, found in records.items())


def _rules(storehouse: str) -> dict[str, Any]:
    kept = StateFile(StorehouseLayout.at(storehouse), crossmatch.STATE_NAME).read()
    rules = kept.get("rules") if isinstance(kept, dict) else None
    return rules if isinstance(rules, dict) else {}


def _check_out(storehouse: str, out: str, names: list[str]) -> None:
    """SiteError unless ``out`` may hold the site. Compared where the paths really lead (a
    link named as ``--out`` may point into the storehouse): never the storehouse or a kind's
    directory. And never a directory holding files ``pages`` did not make (a home page, a
    document folder named by mistake), whose index.html, site.css, site.js and kind
    directories the site would overwrite: ``out`` must be missing, empty, the storehouse's
    own site directory, or a site made by ``pages`` (``SITE_MARK``, or the site the
    storehouse's state records, for a site made before the mark)."""
    real, home = os.path.realpath(out), os.path.realpath(storehouse)
    if os.path.commonpath([real, home]) == real:
        raise SiteError(f"the site directory {out} would hold the storehouse; choose another")
    if any(os.path.commonpath([real, os.path.join(home, name)]) == os.path.join(home, name) for name in names):
        raise SiteError(f"the site directory {out} is inside a kind's directory of the storehouse")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise SiteError(f"the site directory {out} is a file, not a directory; choose another (nothing was written)")
    if not os.path.isdir(out) or not os.listdir(out) or os.path.lexists(os.path.join(out, SITE_MARK)):
        return
    if real == os.path.realpath(StorehouseLayout.at(storehouse).site()):
        return
    recorded = StateFile(StorehouseLayout.at(storehouse), state.STATE_NAME).read()
    if isinstance(recorded, dict) and recorded.get("out") == out:
        return
    raise SiteError(f"the site directory {out} holds files that are not a site made by pages (its index.html, "
                    "site.css, site.js and kind directories would be overwritten); choose a new or empty "
                    "directory")


def run(storehouse: str, out: str | None = None, workers: int | None = None,
        timer: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Make or update the site of ``storehouse`` in ``out`` (default ``<storehouse>/site``); the run's summary.
    ``timer(phase, seconds)`` hears how long each phase took."""
    storehouse = os.path.abspath(storehouse)
    if not os.path.isdir(storehouse):
        raise SiteError(f"{storehouse} is not a storehouse directory (it does not exist); check --storehouse")
    names = kind_names(storehouse)
    if not names:
        raise SiteError(f"{storehouse} holds no kind's directory ({', '.join(kinds.names()[:3])} …): not a "
                        "storehouse, or nothing was loaded into it yet; check --storehouse (nothing was written)")
    out = os.path.abspath(out or StorehouseLayout.at(storehouse).site())
    _check_out(storehouse, out, names)
    workers = workers or os.cpu_count() or 1
    started = time.perf_counter()
    clock = [started]

    def phase(name: str) -> None:
        now = time.perf_counter()
        if timer:
            timer(name, now - clock[0])
        clock[0] = now

    os.makedirs(out, exist_ok=True)
    remove_stale_temps(out, os.listdir(out))
    if not os.path.lexists(os.path.join(out, SITE_MARK)):
        write_atomically(os.path.join(out, SITE_MARK), b"made by transient_kind_builder.py pages\n", durable=False)
    rules = _rules(storehouse)
    # The cross-match's rules are drawn on pages (a cosmic ray's radius): new rules, every page rendered again.
    version = f"{state.site_version()}-{digest(rules)}"
    counts: Counter = Counter()
    with collector.freezing() as freeze:
        data, before = state.load(storehouse, out, version)
        freeze()  # the records, kept all run: no collection walks them again (thawed when the run ends)
        _Shared.storehouse, _Shared.out, _Shared.rules = storehouse, out, rules
        try:
            _make(storehouse, out, names, data, before, before, workers, counts, phase)
        except state.RecordsUnreadable as exc:  # found when a summary was first needed: the records are no state
            log.warning("pages: the site's records are unreadable (%s); every page is rendered again", exc)
            done = {name: counts[name] for name in ("files_written", "files_removed", "writing_ns")}
            counts.clear()  # what the first attempt rendered is rendered again; what it wrote stays written
            counts.update(done)
            _make(storehouse, out, names, state.empty(out, version), {}, before, workers, counts, phase)
        finally:
            records = _Shared.records
            _Shared.records, _Shared.by_id = {}, None  # a process that runs again starts from its state, not these
    if timer:
        timer("(of the pages' phases, writing their files)", counts["writing_ns"] / 1e9)
    return {"site": out, "pages": sum(len(found) for found in records.values()),
            "by_kind": {kind: len(found) for kind, found in records.items()}, "rendered": counts["rendered"],
            "files_written": counts["files_written"], "files_removed": counts["files_removed"],
            "unreadable_slots": counts["unreadable"], "seconds": round(time.perf_counter() - started, 3)}


def _make(storehouse: str, out: str, names: list[str], data: dict[str, Any], before: dict[str, dict[str, Record]],
          recorded: dict[str, dict[str, Record]], workers: int, counts: Counter, phase: Callable[[str], None]) -> None:
    """The run's phases from the loaded state (``before``): events' summaries, the transients'
    and minor bodies' pages, the events' pages, what went, the index, the state. ``recorded``:
    the pages the loaded records name (``before``'s, or, when the run starts again without a
    state, the records found unreadable: their names were checked at load), whose slots went."""
    files = {kind: slot_files(storehouse, kind, before.get(kind, {})) for kind in names}
    records: dict[str, dict[str, Record]] = {}
    changed: set[str] = set()
    for kind in set(before) - set(names):
        changed |= _changed_links(kind, {}, before[kind])
    for kind in names:
        if kind not in ALERT_KINDS:
            records[kind] = _summaries_only(kind, files[kind], before.get(kind, {}))
            changed |= _changed_links(kind, records[kind], before.get(kind, {}))
    _Shared.records, _Shared.by_id = records, None
    phase("event summaries")
    for kind in names:
        if kind in ALERT_KINDS:
            records[kind] = _pages(kind, files[kind], {}, before.get(kind, {}), changed, workers, counts)
            changed |= _changed_links(kind, records[kind], before.get(kind, {}))
            _Shared.by_id = None
    phase("transient and minor-body pages")
    for kind in names:
        if kind not in ALERT_KINDS:
            records[kind] = _pages(kind, files[kind], records[kind], before.get(kind, {}), changed, workers, counts)
    phase("event pages")
    for kind in set(recorded) | set(records):
        _remove_gone(kind, records.get(kind, {}), recorded.get(kind, {}), counts)
    _index(storehouse, out, records, data, counts, not changed)
    _write_assets(out, counts)
    phase("index and assets")
    if counts["files_written"] or counts["files_removed"] or counts["state_changed"] or _differ(records, before):
        sync_filesystem(out)
        state.save(storehouse, data, records)
    phase("sync and state")
