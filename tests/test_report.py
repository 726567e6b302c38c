"""The nightly report (lsst_alert_report.py) over real consumer output, and in a real
browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import csv
import functools
import html.parser
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alert_pipeline.consumer.sources import write_frames_file
from alert_pipeline.report.thumbnails import stretch
from devtools.factory import AlertFactory, encode_antares_locus, malformed_messages

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VERSIONS = ("4.0", "6.0", "9.0", "11.1")  # v4 and v6 carry no science cutout


def consume(tmp_path: Path, messages: list[bytes], output: Path) -> None:
    frames = tmp_path / f"{output.name}.frames"
    write_frames_file(str(frames), messages)
    done = subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames),
                           "--output-dir", str(output)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def report(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "lsst_alert_report.py"), *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@functools.cache
def _night_messages() -> list[bytes]:
    messages = []
    for index, version in enumerate(VERSIONS):
        factory = AlertFactory(version, seed=160 + index)
        messages += [factory.frame(factory.alert(cutout_size=40)) for _ in range(6)]
    messages += [value for _, value in list(malformed_messages(AlertFactory("11.1", seed=169)))[:2]]
    return messages


@pytest.fixture
def night(tmp_path):
    """Consumer output of 24 alerts of four schema versions and two broken messages, with
    one difference cutout damaged on disk afterwards."""
    output = tmp_path / "out"
    consume(tmp_path, _night_messages(), output)
    damaged = sorted((output / "cutouts").glob("*_difference_*.fits"))[0]
    damaged.write_bytes(damaged.read_bytes()[:3000])
    (csv_file,) = (output / "data").glob("lsst_alerts_*.csv")
    return output, csv_file, damaged


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class PageParser(html.parser.HTMLParser):
    """Alert rows, image sources, links and the text of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.unreadable = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("class") == "alert":
            self.alerts.append(attributes["id"].removeprefix("alert-"))
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "a":
            self.links.append(attributes["href"])
        if tag == "td" and "unreadable" in (attributes.get("class") or ""):
            self.unreadable += 1

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_report_of_a_night_holds_every_alert_thumbnail_and_count(night):
    output, csv_file, damaged = night
    done = report("--output-dir", str(output))
    assert done.returncode == 0, done.stderr
    day = csv_file.stem.split("_")[2]
    page_path = output / "reports" / f"lsst_alerts_{day}.html"
    page = parse(page_path)
    rows = csv_rows(csv_file)
    assert sorted(page.alerts) == sorted(row["diaSourceId"] for row in rows) and len(rows) == 24

    cutouts = [row[f"{kind}_cutout_path"] for row in rows for kind in ("science", "template", "difference")]
    present = [path for path in cutouts if path]
    assert len(present) == 24 * 3 - 12  # v4 and v6: no science cutout, an empty cell
    curves = [row["lightcurve_path"] for row in rows]
    assert all(curves)  # every LSST alert has its light-curve table
    # the cutouts' thumbnails, one sparkline per alert, the three plots
    assert page.unreadable == 1 and len(page.images) == len(present) - 1 + 24 + 3
    assert sorted(src for src in page.images if src.endswith(".lc.png")) == \
        sorted(f"thumbs/{Path(curve).stem}.lc.png" for curve in curves)
    for source in page.images:  # relative links only, every file there, every PNG a real image
        assert not source.startswith(("/", "http")) and (page_path.parent / source).is_file()
        with Image.open(page_path.parent / source) as image:
            assert image.format == "PNG" and image.size[0] > 0
    fits_links = [link for link in page.links if link.endswith(".fits")]
    assert len(fits_links) == len(present) + 24  # the unreadable one links to its file too
    assert all((page_path.parent / link).resolve() == (output / link[3:]).resolve() for link in fits_links)
    assert f"../cutouts/{damaged.name}" in fits_links

    text = " ".join(" ".join(page.text).split())
    assert f"Alerts 24 Cutouts {len(present)} Quarantined messages 2 (" in text
    assert re.search(r"Quarantined messages 2 \(\S+: \d", text)


def test_a_cutout_cell_outside_cutouts_is_never_opened(night):
    """An edited CSV (or a process_alert column) cannot make the report read or link a file
    outside cutouts/: the cell is marked unreadable, without a link."""
    output, csv_file, _ = night
    secret = output.parent / "secret.fits"
    secret.write_bytes(next((output / "cutouts").glob("*_template_*.fits")).read_bytes())
    rows = csv_rows(csv_file)
    rows[0]["template_cutout_path"] = "../secret.fits"
    with open(csv_file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert report("--output-dir", str(output)).returncode == 0
    page = parse(output / "reports" / f"lsst_alerts_{csv_file.stem.split('_')[2]}.html")
    assert not [link for link in page.links if "secret" in link] and page.unreadable == 2
    assert not list((output / "reports" / "thumbs").glob("secret*"))


def test_rerun_reuses_thumbnails_and_skips_up_to_date_days(night):
    output, csv_file, _ = night
    assert report("--output-dir", str(output)).returncode == 0
    thumbs = {path: path.stat().st_mtime_ns for path in (output / "reports" / "thumbs").glob("*.png")}
    again = report("--output-dir", str(output))
    assert again.returncode == 0 and "up to date" in again.stderr
    with open(csv_file, "a") as handle:  # the day gained a row: its report is remade
        handle.write(csv_file.read_text().splitlines()[1].replace(",", ",", 1) + "\n")
    third = report("--output-dir", str(output))
    assert third.returncode == 0 and "25 alerts" in third.stderr
    assert {path: path.stat().st_mtime_ns for path in thumbs} == thumbs  # made once, reused


def test_big_nights_are_paginated(night):
    output, csv_file, _ = night
    done = report("--output-dir", str(output), "--page-size", "10")
    assert done.returncode == 0, done.stderr
    day = csv_file.stem.split("_")[2]
    pages = [output / "reports" / f"lsst_alerts_{day}.html"] + \
        [output / "reports" / f"lsst_alerts_{day}_p{n}.html" for n in (2, 3)]
    parsed = [parse(page) for page in pages]
    assert [len(page.alerts) for page in parsed] == [10, 10, 4]
    assert sorted(sum((page.alerts for page in parsed), [])) == sorted(row["diaSourceId"] for row in csv_rows(csv_file))
    assert f"lsst_alerts_{day}_p3.html" in parsed[0].links and f"lsst_alerts_{day}.html" in parsed[2].links
    assert report("--output-dir", str(output), "--page-size", "200", "--date", day).returncode == 0
    assert not pages[1].exists()  # a shorter report leaves no stale pages behind


def test_empty_night_bad_date_and_default_output_dir(tmp_path):
    output = tmp_path / "lsst"
    (output / "data").mkdir(parents=True)
    from alert_pipeline.consumer.records import COLUMNS
    (output / "data" / "lsst_alerts_20261120.csv").write_text(",".join(COLUMNS) + "\n")
    done = report(env={"LSST_CONSUMER_OUTPUT_DIR": str(output)})
    assert done.returncode == 0, done.stderr
    page = parse(output / "reports" / "lsst_alerts_20261120.html")
    assert page.alerts == [] and "No alerts were written on this day." in page.text
    assert report("--output-dir", str(output), "--date", "2026-11-20").returncode == 2
    missing = report("--output-dir", str(output), "--date", "20261121")
    assert missing.returncode == 2 and "no CSV for 20261121" in missing.stderr
    assert report("--output-dir", str(tmp_path / "nowhere")).returncode == 2


def test_stretch_zscale_and_a_difference_image_symmetric_around_zero():
    rng = np.random.default_rng(3)
    difference = rng.normal(0, 1, (40, 40))
    difference[18:22, 18:22] = 40.0  # a brightening
    difference[5:8, 5:8] = -40.0  # a fading
    pixels = stretch(difference, "difference")
    zero = stretch(np.where(np.abs(difference) < 3, 0.0, difference), "difference")
    assert abs(int(np.median(zero)) - 128) <= 1  # zero is mid-grey
    assert pixels.max() == 255 and pixels.min() == 0
    science = stretch(rng.normal(1000, 10, (30, 30)), "science")
    assert 0 < science.mean() < 255 and len(np.unique(science)) > 20  # zscale spreads the noise
    assert stretch(np.full((5, 5), np.nan), "science").max() == 0


#: The narrowest window the report is made for (a laptop): the alert table, broker links
#: included, must fit it without scrolling sideways.
WINDOW_WIDTH = 1280


def test_report_in_a_real_browser(night, tmp_path):
    """Headless Chromium at 1280 px: every alert of the day is in the rendered DOM, the
    alert table fits the window with every broker link on screen, every thumbnail loads and
    is not blank, and the page is screenshotted (tmp_path/report.png)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: .ci/run installs it (apt-get install chromium)"
    output, csv_file, _ = night
    assert report("--output-dir", str(output)).returncode == 0
    day = csv_file.stem.split("_")[2]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(output))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": WINDOW_WIDTH, "height": 900})
            page.goto(f"http://127.0.0.1:{server.server_port}/reports/lsst_alerts_{day}.html", wait_until="load")
            alerts = page.eval_on_selector_all("tr.alert", "rows => rows.map(row => row.id.slice(6))")
            images = page.evaluate("""() => Array.from(document.images).map(img => {
                const canvas = document.createElement('canvas');
                canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
                const context = canvas.getContext('2d');
                context.drawImage(img, 0, 0);
                const data = canvas.width ? context.getImageData(0, 0, canvas.width, canvas.height).data : [];
                let low = 255, high = 0;
                for (let i = 0; i < data.length; i += 4) { low = Math.min(low, data[i]); high = Math.max(high, data[i]); }
                return {src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth,
                        range: high - low};
            })""")
            table_right = page.eval_on_selector("table.alerts", "table => table.getBoundingClientRect().right")
            page_width = page.evaluate("() => document.documentElement.scrollWidth")
            page.eval_on_selector("table.alerts", "table => table.scrollIntoView()")
            broker_links = page.eval_on_selector_all("td.links a", """links => links.map(link => {
                const box = link.getBoundingClientRect();
                const style = getComputedStyle(link);
                return {text: link.textContent, left: box.left, right: box.right, width: box.width,
                        visible: style.visibility === 'visible' && style.display !== 'none'};
            })""")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
            browser.close()
    finally:
        server.shutdown()
    assert sorted(alerts) == sorted(row["diaSourceId"] for row in csv_rows(csv_file))
    thumbnails = [image for image in images if image["src"].startswith("thumbs/")]
    assert len(thumbnails) == 24 * 3 - 12 - 1 + 24  # and a sparkline per alert
    broken = [image for image in images if not image["complete"] or image["width"] == 0 or image["range"] == 0]
    assert broken == []
    assert table_right <= WINDOW_WIDTH and page_width <= WINDOW_WIDTH  # nothing off-screen to the right
    assert len(broker_links) == 24 * 4
    assert {link["text"] for link in broker_links} == {"Fink", "ALeRCE", "Lasair", "ANTARES"}
    assert all(link["visible"] and link["width"] > 0 and 0 <= link["left"] and link["right"] <= WINDOW_WIDTH
               for link in broker_links)
    with Image.open(tmp_path / "report.png") as shot:
        assert shot.size == (WINDOW_WIDTH, 900) and len(set(shot.convert("L").getdata())) > 50
    if os.environ.get("REPORT_SCREENSHOT"):  # to look at it: REPORT_SCREENSHOT=/tmp/shot.png pytest -k browser
        shutil.copy(tmp_path / "report.png", os.environ["REPORT_SCREENSHOT"])


def _consume_at(tmp_path: Path, messages: list[bytes], output: Path, when: str) -> subprocess.CompletedProcess:
    frames = tmp_path / f"{output.name}-{when[:10]}.frames"
    write_frames_file(str(frames), messages)
    return subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames),
                           "--output-dir", str(output)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LSST_CONSUMER_TEST_START_TIME": when})


#: Observation times (TAI) and their observing nights, worked out by hand: MJD 61117 is
#: 2026-03-18 0h; dayObs is the date at UTC-12 h, and UTC = TAI - 37 s.
NIGHT_MJDS = {61117.03: "2026-03-17",  # 00:43 UTC on the 18th: the night that began on the 17th
              61117.49: "2026-03-17",  # 11:45 UTC: still that night (08:45 in Chile)
              61117.5 + 20 / 86400: "2026-03-17",  # 12:00:20 TAI = 11:59:43 UTC: the 37 s decide
              61117.51: "2026-03-18"}  # 12:14 UTC: the next night


def test_observing_nights_object_links_light_curves_and_loci_after_alerts(tmp_path):
    factory = AlertFactory("11.1", seed=170)
    packets = []
    for mjd in NIGHT_MJDS:
        packet = factory.alert(cutout_size=30, n_prv_sources=3)
        packet["diaSource"]["midpointMjdTai"] = mjd
        packets.append(packet)
    locus = {"id": "ANT2026night", "ra": 150.0, "dec": -30.0,
             "properties": {"newest_alert_id": None, "newest_alert_observation_time": 61117.2,
                            "survey": {"lsst": {"dia_object_id": [777]}}}}
    output = tmp_path / "out"
    messages = [encode_antares_locus(locus)] + [factory.frame(packet) for packet in packets]
    assert _consume_at(tmp_path, messages, output, "2026-03-19T02:00:00Z").returncode == 0
    assert report("--output-dir", str(output)).returncode == 0
    page = parse(output / "reports" / "lsst_alerts_20260319.html")
    text = " ".join(" ".join(page.text).split())
    assert "LSST alerts processed on 2026-03-19 (UTC)" in text
    assert "Observing nights (dayObs, UTC−12 h): 2026-03-17 (4 alerts), 2026-03-18 (1 alerts); " \
           "MJD 61117.03000–61117.51000" in text  # the locus (61117.2) counts for the 17th
    ids = [str(packet["diaSource"]["diaSourceId"]) for packet in packets]
    assert page.alerts == [*sorted(ids, key=int), ""]  # the ANTARES locus (no diaSourceId) last
    object_id = packets[0]["diaSource"]["diaObjectId"]
    for url in (f"https://lsst.fink-portal.org/{object_id}", f"https://lasair.lsst.ac.uk/objects/{object_id}/",
                f"https://lsst.alerce.online/object/{object_id}?survey=lsst",
                f"https://antares.noirlab.edu/loci?search={object_id}", "https://lasair.lsst.ac.uk/objects/777/"):
        assert url in page.links
    sparklines = [src for src in page.images if src.endswith(".lc.png")]
    assert len(sparklines) == 4  # one per alert; the locus has no history

    night = report("--output-dir", str(output), "--night", "2026-03-18")
    assert night.returncode == 0, night.stderr
    one = parse(output / "reports" / "lsst_alerts_night_20260318.html")
    assert one.alerts == [ids[3]]
    heading = " ".join(" ".join(one.text).split())
    assert "observing night 2026-03-18 (dayObs)" in heading and "processed on 2026-03-19 (UTC)" in heading
    earlier = parse(output / "reports" / "lsst_alerts_20260319.html")  # the day's page is left as it was
    assert earlier.alerts == page.alerts
    absent = report("--output-dir", str(output), "--night", "2026-03-20")
    assert absent.returncode == 2 and "no alert of the observing night 2026-03-20" in absent.stderr
    assert report("--output-dir", str(output), "--night", "20260318").returncode == 2


def test_sparkline_draws_each_band_in_its_colour_brighter_up_newest_point_ringed():
    from alert_pipeline.report.sparkline import BAND_COLOURS, HEIGHT, MARGIN, WIDTH, sparkline
    mjd = np.array([1.0, 2.0, 3.0, 1.5, 2.5, 2.2])
    # g brightening from 10^4 nJy (21.4 mag) to 10^6 nJy (16.4); r at 10^5 (18.9), then a
    # missing flux, and a negative difference flux (no magnitude: a dash at the bottom)
    flux = np.array([1e4, 1e5, 1e6, 1e5, np.nan, -50.0])
    pixels, scale = sparkline(mjd, ["g", "g", "g", "r", "r", "r"], flux)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert scale.bright == pytest.approx(16.4) and scale.faint == pytest.approx(21.4)
    assert (scale.points, scale.non_positive, scale.cut_gaps) == (5, 1, 0)
    top, bottom, left, right = MARGIN, HEIGHT - 1 - 2 * MARGIN, MARGIN, WIDTH - 1 - MARGIN
    assert tuple(pixels[top, right]) == BAND_COLOURS["g"]  # the brightest, newest point: top right
    assert tuple(pixels[bottom, left]) == BAND_COLOURS["g"]  # the faintest, first point: bottom left
    r_row = round(top + (bottom - top) * (18.9 - 16.4) / 5)  # 18.9 mag, half-way down
    r_column = round(left + (right - left) * 0.5 / 2)  # one time unit of two: a quarter across
    assert tuple(pixels[r_row, r_column]) == BAND_COLOURS["r"]
    r_pixels = (pixels == BAND_COLOURS["r"]).all(axis=2)
    assert r_pixels.sum() == 9 + 3  # one 3x3 dot and one dash: the NaN flux is not drawn
    assert r_pixels[HEIGHT - 2].sum() == 3  # the negative flux: a dash on the bottom row but one
    blank, nothing = sparkline(np.array([1.0]), ["g"], np.array([np.nan]))
    assert (blank == 255).all() and nothing.points == 0
    damaged, _ = sparkline(np.array([1.0, 2.0, 1e300, 3.0]), ["g"] * 4, np.array([1.0, 3e38, 2.0, -3e38]))
    assert (damaged != 255).any()  # drawn from what is sane, without an overflow or an error


def test_a_night_of_only_quarantined_messages_still_gets_a_page(tmp_path):
    """ZTF-like garbage on the LSST topic: the run exits 8, and the report still makes the
    day's page, saying what came in and why it was refused. A batch just before midnight
    stamps its quarantine with its own processing time (its day), not the wall clock."""
    bad = [value for _, value in list(malformed_messages(AlertFactory("11.1", seed=171)))[:3]]
    output = tmp_path / "out"
    done = _consume_at(tmp_path, bad, output, "2026-03-18T23:59:59Z")
    assert done.returncode == 8, done.stderr
    sidecars = sorted((output / "quarantine").glob("*.json"))
    assert len(sidecars) == 3
    assert all('"processed_at": "2026-03-18T23:59:59+00:00"' in path.read_text() for path in sidecars)
    made = report("--output-dir", str(output))
    assert made.returncode == 0, made.stderr
    page = parse(output / "reports" / "lsst_alerts_20260318.html")
    text = " ".join(" ".join(page.text).split())
    assert "No alert was written on this day: all 3 messages that came in were quarantined." in text
    for path in sidecars:
        sidecar = json.loads(path.read_text())
        assert path.name in text and sidecar["reason"] in text
    assert report("--output-dir", str(output), "--date", "20260318").returncode == 0
