"""One day's report: read the night, make thumbnails and plots, write the pages.

``reports/lsst_alerts_YYYYMMDD.json`` records the fingerprint of the inputs the report was
made from; ``days_to_report`` picks the days whose CSVs have no up-to-date report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from alert_pipeline.consumer.layout import OutputLayout, report_stem
from alert_pipeline.consumer.records import FILE_COLUMNS, LIGHTCURVE
from alert_pipeline.durable import write_atomically
from alert_pipeline.report.night import (
    CUTOUT_KINDS,
    Night,
    csv_days,
    fingerprint,
    iso_day,
    quarantine_days,
    read_night,
    read_observing_night,
)
from alert_pipeline.report.pages import AlertCells, page_name, render_page
from alert_pipeline.report.plots import night_plots
from alert_pipeline.report.thumbnails import CUTOUT_CELL, Job, Result, render_thumbnails, sparkline_scale

PAGE_SIZE = 200
PARALLEL_FROM = 300  # thumbnails; fewer are rendered in this process
CHUNK = 90  # thumbnails per task: 30 alerts


class NoAlertsObserved(ValueError):
    """An observing night's report was asked for and no alert of that night was written."""


@dataclass
class ReportResult:
    day: str
    path: Path  # the first page
    pages: int
    alerts: int
    thumbnails: int
    unreadable: int


#: Per row, (the CSV column, the kind): the three cutouts, then the light-curve table.
FILE_JOBS = tuple(zip(FILE_COLUMNS, (*CUTOUT_KINDS, LIGHTCURVE), strict=True))


def report_days(output_dir: Path) -> list[str]:
    """Every UTC day with a CSV or a quarantined message (a night of only bad messages
    still gets a page saying so)."""
    return sorted(set(csv_days(output_dir)) | set(quarantine_days(output_dir)))


def days_to_report(output_dir: Path) -> list[str]:
    """Days that have a CSV or quarantined messages and no report made from their current inputs."""
    reports = Path(OutputLayout.at(output_dir).reports)
    due = []
    for day in report_days(output_dir):
        try:
            made_from = json.loads((reports / f"{report_stem(day)}.json").read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            made_from = None
        if made_from != fingerprint(output_dir, day) or not (reports / f"{report_stem(day)}.html").exists():
            due.append(day)
    return due


def build_report(output_dir: Path, day: str, page_size: int = PAGE_SIZE,
                 observing_night: bool = False, site: Path | None = None) -> ReportResult:
    """Write the pages, thumbnails and plots of a UTC processing day (or, with
    ``observing_night``, of the night whose dayObs is ``day``) under ``output_dir/reports``.
    ``site``: the event storehouse's site (``transient_kind_builder.py pages``), linked from
    every page when its ``index.html`` exists."""
    layout = OutputLayout.at(output_dir)
    reports = Path(layout.reports)
    Path(layout.thumbs).mkdir(parents=True, exist_ok=True)
    made_from = fingerprint(output_dir, None if observing_night else day)
    night = read_observing_night(output_dir, day) if observing_night else read_night(output_dir, day)
    if observing_night and not night.alerts:
        raise NoAlertsObserved(f"no alert of the observing night {iso_day(day)} in {layout.data}")
    stem = report_stem(day, observing_night)
    jobs = [(row.get(column) or "", kind) for row in night.alerts for column, kind in FILE_JOBS]
    plots: dict[str, str] = {}
    results = _thumbnails(output_dir, reports, jobs, meanwhile=lambda: plots.update(
        night_plots(night.alerts, reports, stem)) if night.alerts else None)
    cells, made, unreadable = _cells(night, jobs, results, reports)
    pages = max(1, -(-len(cells) // page_size))
    site_link = site_index_link(site, reports)
    for number in range(1, pages + 1):
        start = (number - 1) * page_size
        text = render_page(night, stem, number, pages, cells[start:start + page_size], plots, start,
                           site_link)
        write_atomically(str(reports / page_name(stem, number)), text.encode("utf-8"), durable=False)
    _remove_stale_pages(reports, stem, pages)
    write_atomically(str(reports / f"{stem}.json"), json.dumps(
        {"fingerprint": made_from, "pages": pages, "alerts": len(night.alerts)}).encode(), durable=False)
    return ReportResult(day, reports / page_name(stem, 1), pages, len(night.alerts), made, unreadable)


def site_index_link(site: Path | None, reports: Path) -> str | None:
    """The relative link from the report's pages to the site's index, or None when there is
    no site (not made yet, or skipped): a link that would not resolve is never written."""
    if site is None or not (site / "index.html").is_file():
        return None
    return Path(os.path.relpath(os.path.abspath(site / "index.html"), os.path.abspath(reports))).as_posix()


def _cells(night: Night, jobs: list[Job], results: list[Result],
           reports: Path) -> tuple[list[AlertCells], int, int]:
    """Each row's cells (thumbnails, light curve and its scale, links to the FITS files);
    how many thumbnails there are and how many cutouts could not be read."""
    cells, made, unreadable = [], 0, 0
    per_row = len(FILE_JOBS)
    for index, row in enumerate(night.alerts):
        files = {}
        for offset, (_, kind) in enumerate(FILE_JOBS):
            cell = jobs[index * per_row + offset][0]
            status, name = results[index * per_row + offset]
            ours = CUTOUT_CELL.fullmatch(cell) and status != "missing"
            files[kind] = (status, name, f"../{cell}" if ours else None)  # cutouts/ beside reports/
            if kind != LIGHTCURVE:
                made += status == "ok"
                unreadable += status == "unreadable"
        status, sparkline, _ = files[LIGHTCURVE]
        scale = sparkline_scale(reports / sparkline) if status == "ok" and sparkline else None
        cells.append(AlertCells(row, {kind: files[kind] for kind in CUTOUT_KINDS}, files[LIGHTCURVE], scale))
    return cells, made, unreadable


def _thumbnails(output_dir: Path, reports: Path, jobs: list[Job],
                meanwhile: Callable[[], None] = lambda: None) -> list[Result]:
    """Every (cutout, kind)'s thumbnail, in chunks (one zscale fit per chunk). Many are
    rendered by two forked processes while this one runs ``meanwhile`` (the plots):
    reading FITS files and writing PNGs is CPU work, and the cores are otherwise idle."""
    chunks = [jobs[start:start + CHUNK] for start in range(0, len(jobs), CHUNK)]
    if len(jobs) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        meanwhile()
        return [result for chunk in chunks for result in render_thumbnails(output_dir, reports, chunk)]
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
        rendered = pool.map(render_thumbnails, [output_dir] * len(chunks), [reports] * len(chunks), chunks)
        meanwhile()
        return [result for chunk in rendered for result in chunk]


def _remove_stale_pages(reports: Path, stem: str, pages: int) -> None:
    """Pages of an earlier, longer report of the same day."""
    number = pages + 1
    while (reports / page_name(stem, number)).exists():
        (reports / page_name(stem, number)).unlink()
        number += 1
