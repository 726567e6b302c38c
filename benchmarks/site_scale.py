"""``pages`` (the storehouse's static site) against the floor of writing the same files, same run.

A storehouse of N transient slots (light curves of 2-39 points in g/r/i, random sky
positions and times over three years, 1 % with a TNS record), G gw events (the real BAYESTAR sky map of MS181101ab, G copies),
400 neutrinos and 3,000 cosmic rays (by default), written directly as slot files, is made
in a temporary directory. Then, in this process:

* first build: every page rendered and written (phases timed: where the time goes);
* floor: as many files as the first build wrote, of the same sizes, written from a bare
  template with the same calls (created in place, one filesystem sync), into a fresh directory,
  right after the first build and again after the reruns (the ratio is against their mean);
* rerun with nothing new (three times: the median), and rerun after one new neutrino on a
  transient (its page, the transient's page, the index);
* the storehouse is cross-matched (``crossmatch``) before the first build, so the events
  have the candidates the rules give them;
* the GW-night latency, in child processes as the cron wrapper runs them: the real IGWN
  alert S230518h (tests/data/messengers/) → ``load-messengers`` + ``crossmatch`` + ``pages``
  → its page written.

    .venv/bin/python benchmarks/site_scale.py [--transients 100000] [--maps 20] [--neutrinos 400]
        [--cosmic-rays 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from _measure import ztf_name  # noqa: E402

from alert_pipeline.durable import create_new, sync_filesystem  # noqa: E402
from alert_pipeline.storehouse import kinds  # noqa: E402
from alert_pipeline.storehouse.messengers.skymaps import read_skymap  # noqa: E402
from alert_pipeline.storehouse.site import build  # noqa: E402

ALERT = os.path.join(REPO, "tests", "data", "messengers", "S230518h-initial.igwn.json")
SKYMAP = os.path.join(REPO, "tests", "data", "messengers", "MS181101ab-bayestar.multiorder.fits")
START_MJD = 59000.0
#: S230518h's densest region (devtools/fink_samples.py places its counterpart there) and merger time.
DENSEST = (95.71, -10.96)
MERGER_MJD = 60082.5410667


def _write(path: str, slot: dict) -> None:
    create_new(path, orjson.dumps(slot, option=orjson.OPT_SORT_KEYS))


def _curve(rng: np.random.Generator, first: float) -> dict:
    curve = {}
    for band in ("g", "r", "i")[: rng.integers(1, 4)]:
        count = int(rng.integers(2, 14))
        mjd = np.sort(first + rng.uniform(0, 60, count))
        curve[band] = {"mjd": mjd.tolist(), "mag": rng.uniform(17, 21, count).round(4).tolist(),
                       "mag_err": rng.uniform(0.03, 0.2, count).round(4).tolist(),
                       "candid": rng.integers(10**18, 2 * 10**18, count).tolist(), "positive": [True] * count}
    return curve


def make_storehouse(path: str, transients: int, maps: int, neutrinos: int, rays: int, rng: np.random.Generator) -> None:
    """Slot files and indexes: events with candidates and the transients recording them."""
    directories = {kind: os.path.join(path, kind) for kind in ("transient", "gw", "neutrino", "uhecr")}
    for directory in directories.values():
        os.makedirs(directory)
    events = [("gw", f"S{200000 + i}a") for i in range(maps)] + [("neutrino", f"IC{i:06d}A") for i in range(neutrinos)] \
        + [("uhecr", f"Auger-{i:06d}") for i in range(rays)]
    first = START_MJD + rng.uniform(0, 3 * 365, transients)
    ra, dec = rng.uniform(0, 360, transients), np.degrees(np.arcsin(rng.uniform(-1, 1, transients)))
    for i in range(transients):
        slot_id = ztf_name(i)
        slot = {"slot_id": slot_id, "kind": "transient", "subtype": "sn", "fink_classification": "SN candidate",
                "ra_deg": float(ra[i]), "dec_deg": float(dec[i]), "first_mjd": float(first[i]),
                "last_mjd": float(first[i]) + 60, "n_alerts": 20, "provisional": False, "lat": None, "lon": None,
                "first_detection": "2021-01-01T00:00:00Z", "light_curve": _curve(rng, float(first[i])),
                "source_fields": {"i:objectId": slot_id, "v:classification": "SN candidate"}}
        if i < 4:  # in S230518h's densest region, after the merger: the GW night's candidates
            slot.update(ra_deg=DENSEST[0] + 0.05 * i, dec_deg=DENSEST[1], first_mjd=MERGER_MJD + 1 + i)
        if rng.random() < 0.01:
            slot["tns"] = {"name": f"AT 2021{i}", "type": "SN Ia", "redshift": 0.05}
        _write(os.path.join(directories["transient"], f"{slot_id}.json"), slot)
    with open(SKYMAP, "rb") as handle:
        areas = read_skymap(handle).credible_areas_deg2((0.5, 0.9))
    for kind, event in events:
        slot = {"slot_id": event, "kind": kind, "time": "2021-01-01T00:00:00Z", "transients": [],
                "mjd": START_MJD + float(rng.uniform(0, 3 * 365)), "retracted": False}
        if kind == "gw":
            shutil.copy(SKYMAP, os.path.join(directories["gw"], f"{event}.multiorder.fits"))
            slot.update(skymap=f"{event}.multiorder.fits", far_hz=1e-9, classification={"BNS": 0.9, "BBH": 0.1},
                        area_50_deg2=areas[0], area_90_deg2=areas[1])
        else:
            slot.update(ra_deg=float(rng.uniform(0, 360)), dec_deg=float(rng.uniform(-60, 60)))
            if kind == "neutrino":
                slot.update({f"{axis}_err_{side}_deg": float(rng.uniform(0.3, 3)) for axis in ("ra", "dec")
                             for side in ("plus", "minus")}, energy_tev=150.0)
            else:
                slot.update(energy_eev=60.0, experiment="Auger")
        _write(os.path.join(directories[kind], f"{event}.json"), slot)
    for kind in ("transient", "gw", "neutrino", "uhecr"):
        kinds.spec(kind).store(path).rebuild_index(kinds.spec(kind).index_fields)


def floor(site: str, directory: str) -> tuple[float, int, int]:
    """Seconds to write the files of ``site`` again, same sizes, from a bare template; (seconds, files, bytes)."""
    sizes = [(os.path.relpath(os.path.join(root, name), site), os.path.getsize(os.path.join(root, name)))
             for root, _, names in os.walk(site) for name in names]
    template = (b"<!DOCTYPE html><html><body>" + b"x" * 64) * 4096
    for folder in {os.path.dirname(name) for name, _ in sizes}:
        os.makedirs(os.path.join(directory, folder), exist_ok=True)
    started = time.perf_counter()
    for name, size in sizes:
        data = template[:size] if size <= len(template) else template * (size // len(template) + 1)
        create_new(os.path.join(directory, name), data[:size])
    sync_filesystem(directory)
    return time.perf_counter() - started, len(sizes), sum(size for _, size in sizes)


def timed_run(storehouse: str) -> tuple[float, dict, dict]:
    phases: dict[str, float] = {}
    started = time.perf_counter()
    summary = build.run(storehouse, timer=lambda name, seconds: phases.__setitem__(name, seconds))
    return time.perf_counter() - started, summary, phases


def builder(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(REPO, "transient_kind_builder.py"), *args],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started, done


def one_new_event(storehouse: str) -> float:
    """A new neutrino on one transient's position, a day before its first detection, and the
    cross-match that records it in both (its seconds)."""
    target = orjson.loads(open(os.path.join(storehouse, "transient", f"{ztf_name(10)}.json"), "rb").read())
    _write(os.path.join(storehouse, "neutrino", "IC999999A.json"),
           {"slot_id": "IC999999A", "kind": "neutrino", "time": "2024-01-01T00:00:00Z", "mjd": target["first_mjd"] - 1,
            "ra_deg": target["ra_deg"], "dec_deg": target["dec_deg"], "ra_err_plus_deg": 1.0, "ra_err_minus_deg": 1.0,
            "dec_err_plus_deg": 1.0, "dec_err_minus_deg": 1.0, "transients": [], "energy_tev": 300.0})
    return builder("crossmatch", "--storehouse", storehouse)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transients", type=int, default=100_000)
    parser.add_argument("--maps", type=int, default=20)
    parser.add_argument("--neutrinos", type=int, default=400)
    parser.add_argument("--cosmic-rays", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="site-scale-") as root:
        storehouse = os.path.join(root, "store")
        started = time.perf_counter()
        make_storehouse(storehouse, args.transients, args.maps, args.neutrinos, args.cosmic_rays,
                        np.random.default_rng(7))
        matched_s, _ = builder("crossmatch", "--storehouse", storehouse)
        print(f"storehouse: {args.transients} transients, {args.maps} gw maps, {args.neutrinos} neutrinos, "
              f"{args.cosmic_rays} cosmic rays, made and cross-matched in {time.perf_counter() - started:.1f} s "
              f"(crossmatch {matched_s:.1f} s)")
        first, summary, phases = timed_run(storehouse)
        written, pages = summary["files_written"], summary["pages"]
        floor_s, files, size = floor(os.path.join(storehouse, "site"), os.path.join(root, "floor"))
        # Nothing changes between reruns: three of them, the median taken (each printed).
        reruns = [timed_run(storehouse) for _ in range(3)]
        again = sorted(seconds for seconds, _, _ in reruns)[1]
        rerun = (again, sum(summary["files_written"] for _, summary, _ in reruns))
        matched_s = one_new_event(storehouse)
        new, summary, _ = timed_run(storehouse)
        # The floor again, minutes later, into a directory of its own: file creation on one disk moves
        # by 2x between two quiet measurements, so the build is compared with both and with their mean.
        later_s, _, _ = floor(os.path.join(root, "floor"), os.path.join(root, "floor-again"))
        floors = (floor_s + later_s) / 2
        print(f"first build: {first:.2f} s, {written} files written ({pages} pages)")
        print("  where the time goes: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()))
        print(f"floor (the same {files} files, {size / 2**20:.0f} MiB, from a bare template): {floor_s:.2f} s right "
              f"after the first build, {later_s:.2f} s after the reruns; mean {floors:.2f} s")
        print(f"first build / floor: ratio {first / floors:.2f} against the mean (target <= 5); "
              f"{first / floor_s:.2f} and {first / later_s:.2f} against each")
        print(f"rerun, nothing new (median of three: {', '.join(f'{seconds:.3f}' for seconds, _, _ in reruns)} s): "
              f"{rerun[0]:.3f} s, {rerun[1]} files written; ratio {rerun[0] / first:.4f} of the first build "
              "(target <= 0.05)")
        print(f"rerun after one new event (its crossmatch {matched_s:.1f} s, not counted): {new:.3f} s, "
              f"{summary['rendered']} pages rendered, "
              f"{summary['files_written']} files written; ratio {new / first:.4f} of the first build")
        shutil.rmtree(os.path.join(root, "floor"))
        shutil.rmtree(os.path.join(root, "floor-again"))
        load_s, _ = builder("load-messengers", "--storehouse", storehouse, ALERT)
        match_s, _ = builder("crossmatch", "--storehouse", storehouse)
        pages_s, done = builder("pages", "--storehouse", storehouse)
        page = os.path.join(storehouse, "site", "gw", "S230518h.html")
        candidates = open(page).read().count("<tr data-slot=") if os.path.exists(page) else 0
        print(f"GW night: load-messengers {load_s:.1f} s + crossmatch {match_s:.1f} s + pages {pages_s:.1f} s = "
              f"{load_s + match_s + pages_s:.1f} s until gw/S230518h.html is written ({candidates} candidates, "
              f"{json.loads(done.stdout)['files_written']} files written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
