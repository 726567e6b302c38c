"""Store galaxy files as a HATS catalogue (``<storehouse>/catalogues/<name>/``).

The files are read (``read``) into Parquet parts, hats-import partitions them into a HATS
catalogue in a staging directory, and the finished catalogue is swapped in: a load that
fails (a file refused, an import error, a kill) leaves the stored catalogue as it was.
hats-import needs a ``dask.distributed`` client: by default one in this process
(``processes=False``: no worker process; its HTTP servers on loopback, random ports),
or the cluster at ``scheduler`` when one is named. Parquet is written with zstd level 3
(hats' default level 15 doubles the build time for 5 % less disk).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow.parquet as pq

from alert_pipeline.durable import write_atomically
from alert_pipeline.storehouse.galaxies.read import SCHEMA, BadRows, GalaxyFileError, read_tables, sniff
from alert_pipeline.storehouse.layout import StorehouseLayout

log = logging.getLogger("transient_kind_builder")

#: Rows a HEALPix partition holds at most (23M GLADE+ rows: about 200 partitions).
PIXEL_THRESHOLD = 250_000
#: The finest partition order (a partition is never smaller than about 0.2 deg²).
HIGHEST_ORDER = 7
#: Rows per Parquet part handed to hats-import.
ROWS_PER_PART = 2_000_000
#: Parquet compression of the catalogue's files.
WRITE_TABLE_KWARGS = {"compression": "zstd", "compression_level": 3}
#: What the load records beside the catalogue.
LOAD_REPORT = "load_report.json"


@contextmanager
def dask_client(scheduler: str | None = None, threads: int = 2) -> Iterator[Any]:
    """A ``dask.distributed`` client: the cluster at ``scheduler``, or one in this process
    whose servers listen on loopback only."""
    from dask.distributed import Client

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would bury the load's
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with Client(processes=False, n_workers=1, threads_per_worker=threads, dashboard_address="127.0.0.1:0",
                worker_dashboard_address="127.0.0.1:0") as client:
        yield client


def load(storehouse: str, name: str, files: Sequence[str], scheduler: str | None = None) -> dict[str, Any]:
    """Read ``files`` into catalogue ``name`` (replacing it whole when everything worked);
    the load's summary. GalaxyFileError (nothing changed) when a file is not a galaxy file."""
    layout = StorehouseLayout.at(storehouse)
    for path in files:
        sniff(path)  # every file's format before anything is read
    _refuse_repeated(files)
    started = time.monotonic()
    parts, out, tmp, old = (layout.catalogue_staging(name, suffix) for suffix in (".parts", "", ".tmp", ".old"))
    recover(storehouse, name)
    for leftover in (parts, out, tmp, old):
        _remove(leftover)
    try:
        bad = BadRows()
        rows, part_files = _write_parts(files, parts, bad)
        if rows == 0:
            raise GalaxyFileError("no usable galaxy in " + ", ".join(files))
        _import(part_files, out, tmp, name, scheduler)
        summary = {"catalogue": name, "files": list(files), "rows": rows, "bad_rows": bad.as_dict(),
                   "bad_rows_named": bad.named, "seconds": round(time.monotonic() - started, 1)}
        write_atomically(os.path.join(out, LOAD_REPORT), json.dumps(summary, indent=1).encode() + b"\n")
        _swap(out, layout.catalogue(name), old)
    finally:
        for leftover in (parts, out, tmp, old):
            _remove(leftover)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(out))  # the staging directory, unless another load uses it
    return summary


def _remove(path: str) -> None:
    """Remove a leftover of a load: a directory, or what a replaced catalogue's place held (a
    file or a link planted there). rmtree refuses those, and one left in ``.staging`` would
    make every later swap fail (a directory cannot be renamed over a file)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _refuse_repeated(files: Sequence[str]) -> None:
    """The same file named twice (by another path, or through a link) would store each of
    its galaxies twice, and count them twice in every GW volume: refused, nothing loaded."""
    seen: dict[tuple[int, int], str] = {}
    for path in files:
        found = os.stat(path)
        key = (found.st_dev, found.st_ino)
        if key in seen:  # a file met before, by this path or another
            raise GalaxyFileError(f"{path}: the same file as {seen[key]}, given twice (its galaxies would be stored "
                                  "twice)")
        seen[key] = path


def recover(storehouse: str, name: str) -> bool:
    """Put back the catalogue a load moved aside when it was killed between the two renames
    of ``_swap`` (the catalogue missing, the whole previous one in ``.staging/NAME.old``):
    otherwise the next load would clear it away as a leftover. True when it was put back."""
    layout = StorehouseLayout.at(storehouse)
    stored, old = layout.catalogue(name), layout.catalogue_staging(name, ".old")
    if os.path.lexists(stored) or not os.path.isfile(os.path.join(old, "hats.properties")):
        return False
    os.rename(old, stored)
    log.warning("load-galaxies: catalogue %s was moved aside by a load that did not finish; put back", name)
    return True


def _write_parts(files: Sequence[str], parts: str, bad: BadRows) -> tuple[int, list[str]]:
    """The good rows of every file as Parquet parts of about ROWS_PER_PART rows. A file
    that gives no galaxy (every row bad, or none) is refused like a file of another format:
    nothing is loaded, rather than a catalogue stored without what the user gave."""
    os.makedirs(parts)
    written, part_files, writer, in_part = 0, [], None, 0
    try:
        for path in files:
            before = written
            for table in read_tables(path, bad):
                if table.num_rows == 0:
                    continue
                if writer is None:
                    part_files.append(os.path.join(parts, f"part-{len(part_files):05d}.parquet"))
                    writer = pq.ParquetWriter(part_files[-1], SCHEMA)
                writer.write_table(table)
                written += table.num_rows
                in_part += table.num_rows
                if in_part >= ROWS_PER_PART:
                    writer.close()
                    writer, in_part = None, 0
            log.info("load-galaxies: %s read (%d galaxies so far; skipped %s)", path, written, bad.as_dict())
            if written == before and len(files) > 1:
                raise GalaxyFileError(f"{path}: no usable galaxy in it (skipped so far: {bad.as_dict()})")
    finally:
        if writer is not None:
            writer.close()
    return written, part_files


def _import(part_files: list[str], out: str, tmp: str, name: str, scheduler: str | None) -> None:
    """hats-import of the parts into ``out`` (whose leaf is the catalogue's name)."""
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    arguments = ImportArguments(
        output_path=os.path.dirname(out), output_artifact_name=name, input_file_list=part_files,
        file_reader="parquet", ra_column="ra", dec_column="dec", pixel_threshold=PIXEL_THRESHOLD,
        highest_healpix_order=HIGHEST_ORDER, tmp_dir=tmp, resume=False, progress_bar=False,
        write_table_kwargs=WRITE_TABLE_KWARGS)
    with dask_client(scheduler) as client:
        pipeline_with_client(arguments, client)


def _swap(built: str, stored: str, old: str) -> None:
    """Put the built catalogue where the stored one is: the stored one is moved aside
    first and removed after, so there is always a whole catalogue or none in between."""
    os.makedirs(os.path.dirname(stored), exist_ok=True)
    if os.path.lexists(stored):
        os.rename(stored, old)
    try:
        os.rename(built, stored)
    except OSError:
        if os.path.lexists(old) and not os.path.lexists(stored):
            os.rename(old, stored)  # the caller's clean-up would remove it: the stored one goes back
        raise
