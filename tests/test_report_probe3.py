"""The report items of the third probe (issue 33, "Lower"): a night outside the calendar,
the quarantine table's order and times, a deep-field light curve's scale and time axis,
and a real Rubin science cutout whose host galaxy keeps its core.

The browser check (the alert table fits a 1280-pixel window, broker links on screen) is
``tests/test_report.py::test_report_in_a_real_browser``."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import struct
import subprocess
import sys
from pathlib import Path

import fastavro
import numpy as np
from astropy.io import fits
from astropy.visualization import AsinhStretch, ManualInterval, ZScaleInterval
from PIL import Image

from alert_pipeline.consumer.sources import write_frames_file
from alert_pipeline.quarantine import QuarantineItem, write_quarantine
from devtools.factory import AlertFactory

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "report"
#: A real Rubin alert (LSSTCam, schema 9.0, Confluent framing); see tests/data/report/README.md.
RUBIN_ALERT = DATA / "rubin-7912941781254298.avro"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def _report(output: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(str(REPO / "lsst_alert_report.py"), "--output-dir", str(output), *args)


def _consume(output: Path, source: Path) -> None:
    done = _run(str(REPO / "lsst_alert_consumer.py"), "--from-file", str(source), "--output-dir", str(output))
    assert done.returncode == 0, done.stderr


def test_a_night_or_day_outside_the_calendar_is_refused_with_a_clear_message(tmp_path):
    """``--night 0001-01-01`` used to become the day "10101" and the message "1010-1-"."""
    (tmp_path / "data").mkdir()
    for option, text, says in (("--night", "0001-01-01", "outside 2000-01-01 to 2099-12-31"),
                               ("--date", "00010101", "outside 2000-01-01 to 2099-12-31"),
                               ("--night", "2026-02-29", "not a calendar date"),
                               ("--date", "2026111", "not written with two-digit months and days"),
                               ("--night", "2026-3-18", "not written with two-digit months and days")):
        done = _report(tmp_path, option, text)
        assert done.returncode == 2, (option, text, done.stderr)
        assert f"argument {option}: '{text}' is {says}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "1010-1-" not in done.stderr
    assert not (tmp_path / "reports").exists()  # refused before anything was written


def test_quarantine_table_in_numeric_offset_order_with_utc_times_in_z(tmp_path):
    """Sidecar names sort as text (offset 10 before 9, partition 10 before 2); the page lists
    messages by topic, partition and offset as numbers, and every time as ...Z."""
    output = tmp_path / "out"
    (output / "data").mkdir(parents=True)
    (output / "quarantine").mkdir()
    processed = dt.datetime(2026, 3, 18, 23, 59, 59, tzinfo=dt.UTC)
    placed = [("lsst-alerts", 0, 100), ("lsst-alerts", 10, 3), ("lsst-alerts", 0, 9), ("lsst-alerts", 2, 5),
              ("lsst-alerts", 0, 10), ("lsst-alerts", 0, 8), ("a-topic", 1, 11)]
    for topic, partition, offset in placed:
        write_quarantine(str(output / "quarantine"), {"topic": topic, "partition": partition, "offset": offset},
                         b"not avro", [QuarantineItem("undecodable", "bad magic byte")], processed)
    sidecars = sorted(path.read_text() for path in (output / "quarantine").glob("*.json"))
    assert all('"processed_at": "2026-03-18T23:59:59+00:00"' in text for text in sidecars)  # as stored
    done = _report(output)
    assert done.returncode == 0, done.stderr
    page = (output / "reports" / "lsst_alerts_20260318.html").read_text()
    table = page[page.index('<table class="quarantine">'):]
    listed = [(topic, int(partition), int(offset)) for topic, partition, offset in
              re.findall(r"<td>([\w-]+) \[(\d+)\] @ (\d+)</td>", html.unescape(table))]
    assert listed == [("a-topic", 1, 11), ("lsst-alerts", 0, 8), ("lsst-alerts", 0, 9), ("lsst-alerts", 0, 10),
                      ("lsst-alerts", 0, 100), ("lsst-alerts", 2, 5), ("lsst-alerts", 10, 3)]
    assert table.count("<td>2026-03-18T23:59:59Z</td>") == len(placed)
    assert "+00:00" not in page


#: A deep-drilling history, built by hand: a wide-survey season a year before (30 r-band
#: visits, every 4 days, 1000 to 3900 nJy), a 253-day season gap, then a deep-drilling season
#: (16 nights every 2 days, 20 g-band visits a night 2 min apart, 4000 to 7190 nJy) and the
#: alert itself (g, 10000 nJy). Fluxes exact in float32. Magnitudes by hand (31.4 − 2.5 log10 f):
#: brightest 10000 nJy = 21.40, faintest 1000 nJy = 23.90; span 400 days, one gap cut.
ALERT_MJD, WIDE_START, DEEP_START = 61000.25, 61000.25 - 400, 61000.25 - 31


def _deep_field_packet() -> dict:
    factory = AlertFactory("11.1", seed=331)
    packet = factory.alert(cutout_size=30, n_prv_sources=350)
    times = [WIDE_START + 4 * visit for visit in range(30)]
    times += [DEEP_START + 2 * night + visit * 2 / 1440 for night in range(16) for visit in range(20)]
    bands = ["r"] * 30 + ["g"] * 320
    fluxes = [1000.0 + 100 * visit for visit in range(30)] + [4000.0 + 10 * visit for visit in range(320)]
    for source, mjd, band, flux in zip(packet["prvDiaSources"], times, bands, fluxes, strict=True):
        source.update(midpointMjdTai=mjd, band=band, psfFlux=flux, psfFluxErr=flux / 20)
    packet["diaSource"].update(midpointMjdTai=ALERT_MJD, band="g", psfFlux=10000.0, psfFluxErr=100.0)
    return factory, packet


def test_a_deep_field_sparkline_prints_its_magnitude_range_and_spreads_its_points(tmp_path):
    from alert_pipeline.report.sparkline import BAND_COLOURS, MARGIN, WIDTH
    factory, packet = _deep_field_packet()
    frames = tmp_path / "deep.frames"
    write_frames_file(str(frames), [factory.frame(packet)])
    output = tmp_path / "out"
    _consume(output, frames)
    done = _report(output)
    assert done.returncode == 0, done.stderr
    (page_path,) = (output / "reports").glob("lsst_alerts_*[0-9].html")
    page = page_path.read_text()
    cell = page[page.index('<td class="lc">'):]
    cell = cell[:cell.index("</td>")]
    text = re.sub(r"<[^>]+>", " ", cell)
    assert text.split() == ["21.40", "23.90", "400", "d,", "1", "gap", "cut"]  # brighter on top
    assert "351 detections" in html.unescape(cell)

    sparkline = re.search(r'src="([^"]+\.lc\.png)"', cell).group(1)
    pixels = np.asarray(Image.open(output / "reports" / sparkline).convert("RGB"))
    plot_width = WIDTH - 2 * MARGIN

    def columns(band: str) -> np.ndarray:
        return np.flatnonzero((pixels == BAND_COLOURS[band]).all(axis=2).any(axis=0))

    deep, wide = columns("g"), columns("r")
    # The 320 deep-drilling visits (31 of 400 days: 11 pixels on a linear axis) spread
    # over at least 40 % of the plot, the wide-survey season keeps its own stretch...
    assert deep.max() - deep.min() >= 0.4 * plot_width
    assert wide.max() - wide.min() >= 0.25 * plot_width and wide.max() < deep.min()
    # ...and together the points cover most of the plot, edge to edge.
    covered = np.union1d(deep, wide)
    assert covered.min() <= MARGIN + 1 and covered.max() >= WIDTH - 1 - MARGIN - 1
    assert covered.size >= 0.75 * plot_width


def _rubin_science_cutout() -> np.ndarray:
    """The real alert's science cutout, read from the file with fastavro and astropy."""
    from alert_pipeline.consumer.decode import bundled_schema
    data = RUBIN_ALERT.read_bytes()
    (schema_id,) = struct.unpack(">I", data[1:5])
    record = fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(bundled_schema(schema_id)))
    return fits.getdata(io.BytesIO(record["cutoutScience"])).astype(np.float64)


def test_a_real_science_cutout_keeps_its_host_galaxy_core(tmp_path):
    """The science cutout (30x30, nJy) of a real Rubin alert on a galaxy: its core peaks at
    1943 nJy at FITS row 17, column 11, with about 1000-1650 nJy three pixels away, while
    zscale's upper limit is 764 nJy (6.4 % of the pixels above it: a flat white disc). The
    thumbnail (no WCS, no ROTPA: shown as stored, FITS row 17 at PNG row 12) must clip
    under 1 % of its pixels and show the core brighter than its surroundings."""
    science = _rubin_science_cutout()
    assert science.shape == (30, 30) and round(float(science[17, 11])) == 1943  # as read by hand
    low, high = ZScaleInterval().get_limits(science)
    assert np.mean(science >= high) > 0.05  # what zscale alone saturates

    output = tmp_path / "out"
    _consume(output, RUBIN_ALERT)
    assert _report(output).returncode == 0
    (png,) = (output / "reports" / "thumbs").glob("7912941781254298_science_*.png")
    grey = np.asarray(Image.open(png)).astype(int)
    assert grey.shape == (30, 30)
    assert np.mean(grey == 255) < 0.01
    core = grey[12, 11]
    assert core == grey.max()
    rows, columns = np.mgrid[0:30, 0:30]
    ring = grey[np.abs(np.hypot(rows - 12, columns - 11) - 3) < 0.5]
    assert ring.max() < core and ring.mean() <= core - 20  # the core stands out of its host
    assert len(np.unique(grey[11:14, 10:13])) >= 5  # graded, not a flat disc
    sky = np.median(grey)
    assert 10 <= sky < core - 100  # and the sky is neither black nor washed out


def test_the_stretch_is_astropys_asinh_over_zscale_low_to_the_999th_percentile():
    """On the real cutout, our 8-bit thumbnail equals astropy's own ManualInterval +
    AsinhStretch with the interval and softening the module documents."""
    from alert_pipeline.report.thumbnails import stretch
    science = _rubin_science_cutout()
    low, high = ZScaleInterval().get_limits(science)
    top = max(high, np.percentile(science, 99.9))
    softening = min(0.1, (high - low) / (top - low))
    expected = AsinhStretch(a=softening)(ManualInterval(low, top)(science, clip=True), clip=True)
    ours = stretch(science, "science", (low, high))
    assert np.abs(ours.astype(int) - np.flipud(np.floor(expected * 255 + 0.5)).astype(int)).max() <= 1


def test_a_day_file_left_as_one_huge_line_costs_only_itself_in_bounded_memory(tmp_path):
    """A second day file of the same day that a crash left as 4 GiB of NUL bytes (sparse):
    the page is made from the good file, the bad one is named, in a child limited to 1.5 GiB."""
    import resource

    frames = tmp_path / "night.frames"
    factory = AlertFactory("11.1", seed=4242)
    write_frames_file(str(frames), [factory.frame(factory.alert(cutout_size=20)) for _ in range(3)])
    _consume(tmp_path, frames)
    day_csv = sorted((tmp_path / "data").glob("lsst_alerts_*.csv"))[0]
    bad = day_csv.with_name(day_csv.stem + "_2.csv")
    with bad.open("wb") as handle:
        handle.truncate(4 << 30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29,) * 2)

    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_report.py"), "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, preexec_fn=limit)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MemoryError" not in done.stderr and "Traceback" not in done.stderr
    assert f"{bad.name} is read only up to where it stops being readable: line 1: a row longer than" in done.stderr
    page = next((tmp_path / "reports").glob("*.html")).read_text()
    assert page.count('class="alert"') == 3  # the good file's three alerts
