"""``pages``: the storehouse's static site, opened in Chromium (Playwright) as a user would.

The storehouse is the demo one made by the real tools: sample Fink alerts loaded into
PostgreSQL and built (one kilonova candidate placed in S230518h's map by the samples),
the real LVK alert, IceCat-1 and Auger files loaded, AT2019dsg and a transient near
Auger's first cosmic ray placed as ``test_crossmatch`` places them, one slot with hostile
contents, then ``crossmatch`` and ``pages``. Values asserted are read by hand from the
data files (tests/data/messengers/README.md names them)."""

from __future__ import annotations

import functools
import gc
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from alert_pipeline.exitcodes import EXIT_CONFIG
from alert_pipeline.storehouse.fink.load import create_table
from tests.conftest import REPO, SUBPROCESS_PYTHONPATH
from tests.test_crossmatch import AT2019DSG, AUGER_FIRST
from tests.test_messengers import ALERT, AUGER, ICECAT
from tests.test_report import night as report_night

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WINDOW_WIDTH = 1280
HOSTILE = "ZTF20hostile1"
SCRIPT = "<script>alert('name')</script>"
TNS_TYPE = "<img src=x onerror=alert('tns')>"
FINK_FIELD = "</td></tr></table><script>alert('fink')</script>"
HOST_NAME = '<iframe src="https://evil.example/"></iframe>'


def builder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), *args], capture_output=True,
                          text=True, timeout=600, env=os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH})


def light_curve(mjd0: float) -> dict:
    """A small g/r light curve (one negative difference), as the build stores one."""
    return {"g": {"mjd": [mjd0, mjd0 + 2.0, mjd0 + 5.0], "mag": [19.1, 18.4, 18.9], "mag_err": [0.1, 0.08, 0.12],
                  "candid": [1, 2, 3], "positive": [True, True, False]},
            "r": {"mjd": [mjd0 + 1.0, mjd0 + 4.0], "mag": [19.0, 18.7], "mag_err": [0.09, 0.07], "candid": [4, 5],
                  "positive": [True, True]}}


def placed(slot_id: str, ra: float, dec: float, first: float, **extra) -> dict:
    return {"slot_id": slot_id, "kind": "transient", "subtype": "sn", "fink_classification": "SN candidate",
            "ra_deg": ra, "dec_deg": dec, "first_mjd": first, "last_mjd": first + 5, "n_alerts": 5,
            "first_detection": "2019-04-09T11:02:24Z", "provisional": False, "lat": None, "lon": None,
            "light_curve": light_curve(first), **extra}


@pytest.fixture(scope="module")
def demo(pg_url, tmp_path_factory) -> Path:
    """The demo storehouse with its site (module-wide: tests that change it work on a copy)."""
    from alert_pipeline.storehouse.fink.load import load_fink
    from devtools import fink_samples

    root = tmp_path_factory.mktemp("site")
    table = f"events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as connection:
        create_table(connection, table)
    alerts = fink_samples.dataset(fink_samples.Composition(single={"sn": 6, "kilonova": 2, "unknown": 3}, cross=[],
                                                           solar_system_objects=4, mixed_with_solar_system=0), seed=5)
    (root / "fink.json").write_text(json.dumps(alerts))
    load_fink(pg_url, [str(root / "fink.json")], table=table)
    store = root / "store"
    assert builder("--dsn", pg_url, "--storehouse", str(store), "--table", table).returncode == 0
    assert builder("load-messengers", "--storehouse", str(store), str(ALERT), str(ICECAT), str(AUGER)).returncode == 0
    near_auger = SkyCoord(AUGER_FIRST["ra"] * u.deg, AUGER_FIRST["dec"] * u.deg).directional_offset_by(
        30 * u.deg, 2 * u.deg)
    extra = [placed("ZTF19aapreis", *AT2019DSG, 58757.8397936808 + 10,
                    tns={"name": "AT 2019dsg", "type": "TDE", "redshift": 0.051, "discovery_date": "2019-04-09"}),
             placed("ZTF04aaaaaaa", near_auger.ra.deg, near_auger.dec.deg, AUGER_FIRST["mjd"] + 100),
             placed(HOSTILE, 10.0, 10.0, 60000.0, fink_classification=SCRIPT,
                    tns={"name": "AT <svg onload=alert('tnsname')>", "type": TNS_TYPE},
                    source_fields={"i:ssnamenr": FINK_FIELD, "<b>field</b>": "x"}, host={"name": HOST_NAME})]
    for slot in extra:
        (store / "transient" / f"{slot['slot_id']}.json").write_text(json.dumps(slot))
    assert builder("rebuild-index", "--storehouse", str(store), "--kind", "transient").returncode == 0
    done = builder("crossmatch", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    done = builder("pages", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    return store


def slot(store: Path, kind: str, stem: str) -> dict:
    return json.loads((store / kind / f"{stem}.json").read_text())


class Links(HTMLParser):
    """Every href and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [value for name, value in attrs if name in ("href", "src") and value]


def site_files(site: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(site)): (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in site.rglob("*") if path.is_file()}


def test_every_slot_has_its_page_and_every_link_inside_the_site_resolves(demo):
    site = demo / "site"
    for kind in ("transient", "minor_body", "gw", "neutrino", "uhecr"):
        stems = {p.stem for p in (demo / kind).glob("*.json") if p.stem not in ("index", "roster")}
        assert stems and stems == {p.stem for p in (site / kind).glob("*.html")}, kind
    outside, broken = set(), []
    for page in site.rglob("*.html"):
        parser = Links()
        parser.feed(page.read_text())
        for target in parser.found:
            if re.match(r"^[a-z]+:", target):
                if target.startswith(("http://", "https://")) and page.parent.name in ("transient", "minor_body"):
                    outside.add(target.split("/")[2])  # links out are plain links to the brokers, TNS, MPC
                else:
                    assert target == "data:,", target  # the empty favicon: nothing fetched
                continue
            if target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).resolve().is_file():
                broken.append(f"{page.relative_to(site)} → {target}")
    assert broken == []
    assert outside == {"fink-portal.org", "alerce.online", "lasair-ztf.lsst.ac.uk", "www.wis-tns.org",
                       "minorplanetcenter.net"}


def test_candidate_rows_follow_the_slots_ranking_and_show_the_events_values(demo):
    from playwright.sync_api import sync_playwright

    gw = slot(demo, "gw", "S230518h")
    neutrino = slot(demo, "neutrino", "IC191001A")
    assert gw["transients"] and neutrino["transients"] == ["ZTF19aapreis"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto((demo / "site" / "gw" / "S230518h.html").as_uri())
        rows = page.eval_on_selector_all("table.candidates tr[data-slot]", "rows => rows.map(r => r.dataset.slot)")
        hrefs = page.eval_on_selector_all("table.candidates tr[data-slot] a", "links => links.map(a => a.getAttribute('href'))")
        gw_text = page.inner_text("body")
        page.goto((demo / "site" / "neutrino" / "IC191001A.html").as_uri())
        nu_rows = page.eval_on_selector_all("table.candidates tr[data-slot]", "rows => rows.map(r => r.dataset.slot)")
        nu_text = page.inner_text("body")
        page.goto((demo / "site" / "transient" / "ZTF19aapreis.html").as_uri())
        back = page.eval_on_selector_all("table.coincidences tr[data-slot] a", "a => a.map(x => x.getAttribute('href'))")
        browser.close()
    assert rows == gw["transients"] and hrefs == [f"../transient/{slot_id}.html" for slot_id in rows]
    # S230518h-initial.igwn.json, read by hand: NSBH 0.8642645059209272 (shown to 4 digits), pycbc, H1 and L1
    assert "NSBH: 0.8643" in gw_text and "pycbc" in gw_text and "H1, L1" in gw_text
    # its sky map's header, read by hand: DISTMEAN 277.9148872009554, DISTSTD 68.2915891646133 (4 digits shown)
    assert re.search(r"distance mean \(Mpc\)\s*277\.9\b", gw_text)
    assert re.search(r"distance σ \(Mpc\)\s*68\.29\b", gw_text)
    assert nu_rows == ["ZTF19aapreis"]
    # IceCat-1 line 242 (IC191001A): 218 TeV at RA 313.99, Dec 12.79, RA error +6.94/-2.46
    assert "218" in nu_text and "313.99" in nu_text and "12.79" in nu_text and "6.94" in nu_text
    assert back == ["../neutrino/IC191001A.html"]


def _serve(directory: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


CHECK_PAGE = """() => ({
    images: Array.from(document.images).map(img => ({src: img.getAttribute('src'), complete: img.complete,
                                                     width: img.naturalWidth})),
    widest: Math.max(document.documentElement.scrollWidth,
                     ...Array.from(document.querySelectorAll('table, svg, img')).map(e => e.getBoundingClientRect().right)),
    svgs: document.querySelectorAll('svg.plot').length,
})"""


def test_the_site_in_chromium_no_error_no_request_out_every_image_decodes_tables_fit(demo, tmp_path):
    """Every page of the site opened at 1280 px (minus most of the neutrinos and cosmic rays
    without a candidate, which are the same page): no console error, no request leaving the
    site, every image decoded, nothing wider than the window; screenshots of the main pages."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: .ci/run installs it (apt-get install chromium)"
    site = demo / "site"
    pages = ["index.html", *(str(p.relative_to(site)) for p in site.glob("*/*.html")
                             if p.parent.name not in ("neutrino", "uhecr"))]
    events = [slot(demo, kind, p.stem) for kind in ("neutrino", "uhecr") for p in (demo / kind).glob("*.json")
              if p.stem not in ("index", "roster")]
    with_candidates = [f"{s['kind']}/{s['slot_id']}.html" for s in events if s.get("transients")]
    assert len(with_candidates) == 2  # IC191001A and Auger's first event
    pages += with_candidates + ["neutrino/IC130808A.html", "uhecr/Auger-20040303T150509.html"]
    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_port}/"
    errors, outside, dialogs, results = [], [], [], {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            context = browser.new_context(viewport={"width": WINDOW_WIDTH, "height": 900})

            def route(request_route):
                if request_route.request.url.startswith(base):
                    request_route.continue_()
                else:
                    outside.append(request_route.request.url)
                    request_route.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            for name in pages:
                response = page.goto(base + name, wait_until="load")
                assert response.ok, name
                results[name] = page.evaluate(CHECK_PAGE)
                if name in ("index.html", "gw/S230518h.html", "neutrino/IC191001A.html",
                            "transient/ZTF19aapreis.html", f"transient/{HOSTILE}.html"):
                    page.screenshot(path=str(tmp_path / (name.replace("/", "_") + ".png")), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    assert errors == [] and outside == [] and dialogs == []
    broken = {name: image for name, found in results.items() for image in found["images"]
              if not image["complete"] or image["width"] == 0}
    assert broken == {}
    assert results["gw/S230518h.html"]["images"][0]["width"] == 900  # the sky map
    assert all(found["widest"] <= WINDOW_WIDTH for found in results.values()), \
        {name: found["widest"] for name, found in results.items() if found["widest"] > WINDOW_WIDTH}
    assert all(results[name]["svgs"] == 1 for name in pages if name.startswith(("transient/", "neutrino/", "uhecr/")))
    if os.environ.get("SITE_SCREENSHOTS"):  # to look at them: SITE_SCREENSHOTS=/tmp/shots pytest -k chromium
        os.makedirs(os.environ["SITE_SCREENSHOTS"], exist_ok=True)
        for shot in tmp_path.glob("*.png"):
            shutil.copy(shot, os.environ["SITE_SCREENSHOTS"])


def test_hostile_slot_contents_are_shown_as_text(demo):
    """HTML and script in a Fink class, a TNS name and type, a Fink field and a host name
    are on the page as the text they are: no element made of them, no script run."""
    from playwright.sync_api import sync_playwright

    raw = (demo / "site" / "transient" / f"{HOSTILE}.html").read_text()
    assert "<script>alert" not in raw and "<img src=x" not in raw and "<iframe" not in raw
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto((demo / "site" / "transient" / f"{HOSTILE}.html").as_uri())
        shown = page.inner_text("body")
        elements = page.evaluate("() => ({scripts: document.scripts.length, images: document.images.length, "
                                 "iframes: document.querySelectorAll('iframe, svg[onload], b').length})")
        page.goto((demo / "site" / "index.html").as_uri())
        index_shown = page.inner_text("body")
        browser.close()
    assert dialogs == [] and elements == {"scripts": 1, "images": 0, "iframes": 0}  # site.js only
    for hostile in (SCRIPT, TNS_TYPE, FINK_FIELD, HOST_NAME, "<b>field</b>", "AT <svg onload=alert('tnsname')>"):
        assert hostile in shown, hostile
    assert TNS_TYPE in index_shown  # the index lists it: it has a TNS class


def test_a_rerun_writes_nothing_and_a_changed_slot_rewrites_its_page_the_linking_pages_and_the_index(demo, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(demo, store)
    site = store / "site"
    assert builder("pages", "--storehouse", str(store)).returncode == 0  # the copy's first run: a new state
    before = site_files(site)
    again = builder("pages", "--storehouse", str(store))
    assert again.returncode == 0 and json.loads(again.stdout)["files_written"] == 0
    assert site_files(site) == before  # same inodes, same mtimes
    counterpart = slot(store, "gw", "S230518h")["transients"][0]
    changed = slot(store, "transient", counterpart)
    changed["fink_classification"] = "Changed class"
    (store / "transient" / f"{counterpart}.json").write_text(json.dumps(changed))
    assert builder("pages", "--storehouse", str(store)).returncode == 0
    after = site_files(site)
    rewritten = {name for name in after if after[name] != before.get(name)}
    assert rewritten == {f"transient/{counterpart}.html", "gw/S230518h.html", "index.html"}
    assert "Changed class" in (site / "gw" / "S230518h.html").read_text()
    # a slot that only a page of its own shows (a neutrino without candidates): its page alone, and the index
    lonely = slot(store, "neutrino", "IC130808A")
    lonely["energy_tev"] = 999.0
    (store / "neutrino" / "IC130808A.json").write_text(json.dumps(lonely))
    assert builder("pages", "--storehouse", str(store)).returncode == 0
    later = site_files(site)
    assert {name for name in later if later[name] != after.get(name)} == {"neutrino/IC130808A.html", "index.html"}
    # a roster alone changed (no slot did): the index alone, which shows it
    roster = json.loads((store / "neutrino" / "roster.json").read_text())
    roster["objects_note"] = "a roster value no page but the index shows"
    (store / "neutrino" / "roster.json").write_text(json.dumps(roster))
    assert builder("pages", "--storehouse", str(store)).returncode == 0
    latest = site_files(site)
    assert {name for name in latest if latest[name] != later.get(name)} == {"index.html"}
    assert "a roster value no page but the index shows" in (site / "index.html").read_text()
    # a slot gone: its page goes, the pages linking to it no longer link
    (store / "transient" / "ZTF19aapreis.json").unlink()
    assert builder("pages", "--storehouse", str(store)).returncode == 0
    assert not (site / "transient" / "ZTF19aapreis.html").exists()
    assert 'href="../transient/ZTF19aapreis.html"' not in (site / "neutrino" / "IC191001A.html").read_text()


def test_an_events_changed_summary_rewrites_the_transient_pages_that_show_it_and_no_other(demo, tmp_path):
    """The other direction of the test above: a transient's page shows the events it
    coincides with (their time and headline); a new false-alarm rate for the gw event
    changes its headline, so exactly the pages of the transients it coincides with are
    rendered again, with the new rate, beside its own page and the index."""
    store = tmp_path / "store"
    shutil.copytree(demo, store)
    site = store / "site"
    assert builder("pages", "--storehouse", str(store)).returncode == 0
    before = site_files(site)
    event = slot(store, "gw", "S230518h")
    event["far_hz"] = 1e-12  # about 3.2e-05 per year
    (store / "gw" / "S230518h.json").write_text(json.dumps(event))
    showing = {f"transient/{path.stem}.html" for path in (store / "transient").glob("ZTF*.json")
               if any(item.get("event") == "S230518h" for item in json.loads(path.read_text()).get("multimessenger", []))}
    assert showing, "the demo has transients on the gw event"
    done = builder("pages", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    after = site_files(site)
    rewritten = {name for name in after if after[name] != before.get(name)}
    assert rewritten == showing | {"gw/S230518h.html", "index.html"}
    assert all("3.16e-05/yr" in (site / name).read_text() for name in showing)


def test_an_unreadable_slot_is_named_and_skipped_the_rest_made(demo, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(demo, store)
    shutil.rmtree(store / "site")
    (store / "uhecr" / "Auger-20040303T150509.json").write_text('{"slot_id": "Auger-2004')
    done = builder("pages", "--storehouse", str(store))
    assert done.returncode == 0, done.stderr
    assert "Auger-20040303T150509.json is not a readable slot" in done.stderr
    summary = json.loads(done.stdout)
    assert summary["unreadable_slots"] == 1 and (store / "site" / "gw" / "S230518h.html").exists()
    assert not (store / "site" / "uhecr" / "Auger-20040303T150509.html").exists()


def test_no_storehouse_or_a_site_over_it_is_refused(tmp_path, demo):
    missing = builder("pages", "--storehouse", str(tmp_path / "nowhere"))
    assert missing.returncode == EXIT_CONFIG and "is not a storehouse directory" in missing.stderr
    assert not (tmp_path / "nowhere").exists()
    elsewhere = tmp_path / "notes"  # an existing directory that is no storehouse (its parent, say)
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine\n")
    wrong = builder("pages", "--storehouse", str(elsewhere))
    assert wrong.returncode == EXIT_CONFIG and "holds no kind's directory" in wrong.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["notes.txt"]
    over = builder("pages", "--storehouse", str(demo), "--out", str(demo / "transient" / "x"))
    assert over.returncode == EXIT_CONFIG and "inside a kind's directory" in over.stderr
    a_file = tmp_path / "site.html"  # --out naming a file by mistake
    a_file.write_text("mine\n")
    refused = builder("pages", "--storehouse", str(demo), "--out", str(a_file))
    assert refused.returncode == EXIT_CONFIG and "is a file, not a directory" in refused.stderr
    assert a_file.read_text() == "mine\n"


def plotted(svg: str) -> dict[str, list[tuple[float, float]]]:
    """The light curve's points by colour: each band's dots are one path of ``M x y h0`` (a disc each)."""
    found = {}
    for path, colour in re.findall(r'<path class="points" d="([^"]+)" stroke="(#\w+)"', svg):
        found[colour] = [(float(x), float(y)) for x, y in re.findall(r"M([\d.]+) ([\d.]+)h0", path)]
    return found


def test_light_curve_draws_brighter_up_each_band_in_its_colour_with_limits():
    from alert_pipeline.storehouse.site.plots import BAND_COLOURS, light_curve

    svg = light_curve({"slot_id": "X", "light_curve": {"g": {"mjd": [60000.0, 60010.0], "mag": [18.0, 20.0],
                                                            "mag_err": [0.1, 0.1], "positive": [True, True]}},
                       "upper_limits": {"r": {"mjd": [59995.0], "maglim": [20.5]}}})
    drawn = plotted(svg)
    assert list(drawn) == [BAND_COLOURS["g"]] and "hollow" not in svg  # both points positive
    points = drawn[BAND_COLOURS["g"]]
    assert len(points) == 2 and points[0][1] < points[1][1]  # 18 mag is drawn above 20 mag
    assert points[0][0] < points[1][0]
    bars = re.findall(r'M([\d.]+) ([\d.]+)V([\d.]+)', re.search(r'class="bars" d="([^"]+)"', svg).group(1))
    assert [float(x) for x, _, _ in bars] == [x for x, _ in points]  # an error bar through each point
    assert all(float(top) < y < float(bottom) for (_, top, bottom), (_, y) in zip(bars, points, strict=True))
    assert len(re.findall(r"h8l-4 7z", re.search(r'class="limits" d="([^"]+)"', svg).group(1))) == 1
    assert "g band" in svg and "r upper limit" in svg and "MJD (days)" in svg and "magnitude (AB" in svg
    assert light_curve({"slot_id": "Y", "light_curve": {}}) == ""


@pytest.mark.parametrize("band", [{"mjd": 5, "mag": [18.0]}, {"mjd": "60000", "mag": "18"},
                                  {"mjd": [60000.0, 60001.0], "mag": [18.0, 19.0], "mag_err": "ab", "positive": 5},
                                  {"mjd": [60000.0, True, float("nan"), 60002], "mag": [18.0, 19.0, 19.5, 20],
                                   "mag_err": {"0": 1}, "positive": {"x": False}}])
def test_a_light_curve_of_odd_values_draws_the_usable_points_and_never_fails(band):
    """A hand-edited slot's light curve: a number or a string where lists belong draws no
    point; odd error and sign lists draw the points without bars, filled."""
    from alert_pipeline.storehouse.site.plots import BAND_COLOURS, light_curve

    svg = light_curve({"slot_id": "X", "light_curve": {"g": band}})
    usable = [t for t in band["mjd"] if type(t) in (int, float) and t == t] if isinstance(band["mjd"], list) else []
    green = BAND_COLOURS["g"]
    assert len(plotted(svg).get(green, [])) == len(usable)
    assert 'class="bars"' not in svg  # no error bar from an odd error list
    assert 'class="hollow"' not in svg  # nor a hollow point from an odd sign list


def test_negative_differences_are_drawn_hollow_over_their_dots():
    from alert_pipeline.storehouse.site.plots import BAND_COLOURS, light_curve

    svg = light_curve({"slot_id": "X", "light_curve": {"r": {"mjd": [60000.0, 60001.0, 60002.0],
                                                            "mag": [18.0, 19.0, 20.0],
                                                            "positive": [True, False, True]}}})
    dots = plotted(svg)[BAND_COLOURS["r"]]
    hollow = [tuple(map(float, xy)) for xy in
              re.findall(r"M([\d.]+) ([\d.]+)h0", re.search(r'class="hollow" d="([^"]+)"', svg).group(1))]
    assert len(dots) == 3 and hollow == [dots[1]] and "negative difference" in svg


@pytest.mark.parametrize(("low", "high", "labels"), [(18.0, 19.0, ["18.0", "18.2", "18.4", "18.6", "18.8", "19.0"]),
                                                      (17.9, 19.1, ["18.00", "18.25", "18.50", "18.75", "19.00"]),
                                                      (60000.0, 60015.0, ["60000.0", "60002.5", "60005.0", "60007.5",
                                                                          "60010.0", "60012.5", "60015.0"]),
                                                      (0.0, 100.0, ["0", "20", "40", "60", "80", "100"])])
def test_tick_labels_show_each_tick_exactly(low, high, labels):
    """A step of 0.25 or 2.5 gets the decimals it needs (18.25 was shown as 18.2, 2.5 as 2)."""
    from alert_pipeline.storehouse.site import plots

    frame = plots._Frame((low, high), (0.0, 1.0))
    x_ticks = re.search(r'<g class="x-ticks"[^>]*>(.*?)</g>', "".join(frame.axes("x", "y"))).group(1)
    shown = re.findall(r">([^<]+)</text>", x_ticks)
    assert shown == labels


night = report_night  # the report's fixture: a consumer's output of one day


def test_the_nightly_report_links_the_site_when_both_exist(night, demo, tmp_path):
    """As the wrapper runs it (``--site <storehouse>/site``): a link that resolves to the
    site's index when the site exists, none when it does not."""
    from tests.test_report import report

    output, csv_file, _ = night
    day = csv_file.stem.split("_")[2]
    page = output / "reports" / f"lsst_alerts_{day}.html"
    assert report("--output-dir", str(output), "--site", str(tmp_path / "no-site")).returncode == 0
    assert "event storehouse" not in page.read_text()
    assert report("--output-dir", str(output), "--date", day, "--site", str(demo / "site")).returncode == 0
    parser = Links()
    parser.feed(page.read_text())
    (target,) = [link for link in parser.found if link.endswith("index.html")]
    assert not target.startswith("/") and (page.parent / target).resolve() == (demo / "site" / "index.html").resolve()


def test_the_sky_maps_nested_pixels_are_astropy_healpixs():
    """The gw map samples the sky map with its own ``ang2pix_nest`` (astropy_healpix costs two
    seconds of import on a GW night): the same pixels as astropy_healpix at every order."""
    import numpy as np
    from astropy_healpix import lonlat_to_healpix

    from alert_pipeline.storehouse.site.skymap_plot import nested_pixel

    rng = np.random.default_rng(38)
    ra, dec = rng.uniform(0, 360, 100_000), np.degrees(np.arcsin(rng.uniform(-1, 1, 100_000)))
    for order in (0, 3, 8, 12, 29):
        expected = lonlat_to_healpix(ra * u.deg, dec * u.deg, 2**order, order="nested")
        assert np.array_equal(nested_pixel(order, ra, dec), expected), order


def test_the_pages_settings_come_from_the_config_file_and_are_checked(tmp_path, demo):
    config = tmp_path / "c.toml"
    config.write_text(f'[pages]\nsite_out = "{tmp_path / "elsewhere"}"\nworkers = 1\n')
    shown = builder("pages", "--storehouse", str(demo), "--config", str(config), "--show-config")
    assert shown.returncode == 0 and f'site_out = "{tmp_path / "elsewhere"}"' in shown.stdout
    done = builder("pages", "--storehouse", str(demo), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "elsewhere" / "index.html").is_file()
    config.write_text("[pages]\nworkers = -1\n")
    bad = builder("pages", "--storehouse", str(demo), "--config", str(config))
    assert bad.returncode == EXIT_CONFIG and "workers" in bad.stderr


def test_the_index_filters_by_kind_class_and_date_and_sorts_by_a_column(demo):
    from playwright.sync_api import sync_playwright

    visible = "() => Array.from(document.querySelectorAll('table.transients tr[data-slot]'))" \
              ".filter(r => !r.hidden).map(r => r.dataset.slot)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto((demo / "site" / "index.html").as_uri())
        every = page.evaluate(visible)
        page.select_option("select[data-filter=kind]", "neutrino")
        by_kind = page.evaluate(visible)
        page.select_option("select[data-filter=kind]", "")
        page.select_option("select[data-filter=class]", "TDE")
        by_class = page.evaluate(visible)
        page.select_option("select[data-filter=class]", "")
        page.fill("input[data-filter=from]", "2023-01-01")
        by_date = page.evaluate(visible)
        page.fill("input[data-filter=from]", "")
        page.click("table.transients th:has-text('transient')")
        page.click("table.transients th:has-text('transient')")  # twice: descending
        descending = page.evaluate(visible)
        browser.close()
    assert {"ZTF19aapreis", "ZTF04aaaaaaa", HOSTILE} <= set(every)
    assert by_kind == ["ZTF19aapreis"] and by_class == ["ZTF19aapreis"]  # IceCube's; TNS class TDE
    assert "ZTF19aapreis" not in by_date and by_date  # first seen 2019; the GW counterpart in 2023 stays
    assert descending == sorted(every, key=str.lower, reverse=True)


def test_pages_rendered_by_worker_processes_are_a_single_process_site_written_by_the_main_process(demo, tmp_path,
                                                                                                   monkeypatch):
    """Every kind through the worker pool (small chunks, a window of one), and the same site
    made in one process: the same files, byte for byte; every file is written by the main
    process (the workers render only)."""
    from alert_pipeline.storehouse.site import build
    from alert_pipeline.storehouse.site.assets import ASSETS

    sites = {}
    real_write = build.write
    for workers in (1, 2):
        store = tmp_path / f"store-{workers}"
        shutil.copytree(demo, store, ignore=shutil.ignore_patterns("site", "pages*"))
        monkeypatch.setattr(build, "PARALLEL_FROM", 1)
        monkeypatch.setattr(build, "CHUNK", 2)
        monkeypatch.setattr(build, "WINDOW", 1)
        writers = []
        monkeypatch.setattr(build, "write", lambda item, seen=writers: (seen.append(os.getpid()), real_write(item)))
        frozen = gc.get_freeze_count()
        done = build.run(str(store), workers=workers)
        assert gc.get_freeze_count() == frozen  # the heap frozen for the workers' fork is thawed after them
        # besides the pages and images: the index and the assets, which the main process writes itself
        assert done["files_written"] == len(writers) + 1 + len(ASSETS) and set(writers) == {os.getpid()}
        assert done["rendered"] == done["pages"] and done["unreadable_slots"] == 0
        sites[workers] = {str(path.relative_to(store / "site")): path.read_bytes()
                          for path in (store / "site").rglob("*") if path.is_file() and path.name != "index.html"}
    assert sites[1].keys() == sites[2].keys() and any(name.startswith("gw/") for name in sites[1])
    assert [name for name in sites[1] if sites[1][name] != sites[2][name]] == []


def test_a_slot_its_page_cannot_show_is_named_and_skipped_the_rest_made(demo, tmp_path, monkeypatch, caplog):
    """Rendering a slot that raises (values no page expects) costs that page alone."""
    from alert_pipeline.storehouse.site import build, transient_page

    store = tmp_path / "store"
    shutil.copytree(demo, store, ignore=shutil.ignore_patterns("site", "pages*"))
    victim = sorted(path.stem for path in (store / "transient").glob("ZTF*.json"))[0]
    real_render = transient_page.render

    def render(slot, context):
        if slot.get("slot_id") == victim:
            raise TypeError("unsupported operand type(s)")
        return real_render(slot, context)

    monkeypatch.setattr(transient_page, "render", render)
    done = build.run(str(store), workers=1)
    assert done["unreadable_slots"] == 1 and done["rendered"] == done["pages"] + 1
    assert not (store / "site" / "transient" / f"{victim}.html").exists()
    assert len(list((store / "site" / "transient").glob("*.html"))) == done["by_kind"]["transient"] > 5
    assert victim in caplog.text and "cannot show" in caplog.text and "TypeError" in caplog.text


@pytest.mark.parametrize("value", ["ZTF19aapreis", "a b", "é", "x/y", "", "\u0663", "ZTF_1", "abc~", "<b>", "C?x=1#y"])
def test_a_slot_id_in_an_outside_url_is_quoted_as_urllib_quotes_a_path_segment(value):
    """``markup.quoted``'s shortcut for plain ids gives what ``urllib.parse.quote`` gives for every id."""
    import urllib.parse

    from alert_pipeline.storehouse.site.markup import quoted

    assert quoted(value) == urllib.parse.quote(value, safe="")


def test_a_run_into_another_site_directory_says_why_every_page_is_rendered(demo, tmp_path):
    """The state is one site directory's: a run with another ``--out`` renders every page and says
    why; the next run into that directory renders none."""
    store = tmp_path / "store"
    shutil.copytree(demo, store, ignore=shutil.ignore_patterns("site", "pages*"))
    first = builder("pages", "--storehouse", str(store))
    assert first.returncode == 0, first.stderr[-2000:]
    elsewhere = builder("pages", "--storehouse", str(store), "--out", str(tmp_path / "published"))
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
    assert f"the site's state is that of {store / 'site'}, not of {tmp_path / 'published'}" in elsewhere.stderr
    assert json.loads(elsewhere.stdout)["rendered"] == json.loads(elsewhere.stdout)["pages"] > 0
    again = builder("pages", "--storehouse", str(store), "--out", str(tmp_path / "published"))
    assert json.loads(again.stdout)["rendered"] == 0 and "state is that of" not in again.stderr
