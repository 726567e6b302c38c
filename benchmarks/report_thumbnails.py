"""Nightly-report rendering speed against its floor, and against the consume it follows.

In one run, on the same cutouts (written by the consumer from factory alerts, offline):

* floor: a bare loop of ``astropy.io.fits.getdata`` + a linear 8-bit PNG save (Pillow) per
  cutout, the least any thumbnail renderer must do;
* the report's thumbnails (zscale fit, asinh stretch to the 99.9th percentile, atomic rename), in one
  process and as the report runs them (two processes);
* the whole report (thumbnails turned north up, light-curve sparklines, plots, pages)
  against the consumer run that produced the night (target: not longer).

    .venv/bin/python benchmarks/report_thumbnails.py [--alerts 2000] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from PIL import Image  # noqa: E402

from alert_pipeline.consumer.sources import write_frames_file  # noqa: E402
from alert_pipeline.report import build_report  # noqa: E402
from alert_pipeline.report.build import CHUNK, _thumbnails  # noqa: E402
from alert_pipeline.report.thumbnails import render_thumbnails  # noqa: E402
from devtools.factory import AlertFactory  # noqa: E402


def floor_seconds(cutouts: list[Path], target: Path) -> float:
    target.mkdir()
    started = time.perf_counter()
    for index, path in enumerate(cutouts):
        data = np.asarray(fits.getdata(path, memmap=False), dtype=np.float64)
        low, high = np.nanmin(data), np.nanmax(data)
        pixels = ((data - low) / ((high - low) or 1.0) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(target / f"{index}.png", format="PNG", compress_level=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the night is written (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        root = Path(work)
        factory = AlertFactory("11.1", seed=1)
        frames = root / "night.frames"
        write_frames_file(str(frames), [factory.frame(factory.alert()) for _ in range(args.alerts)])
        output = root / "out"
        started = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "lsst_alert_consumer.py"), "--from-file", str(frames),
                        "--output-dir", str(output)], check=True, capture_output=True)
        consume = time.perf_counter() - started
        cutouts = sorted(path for path in (output / "cutouts").glob("*.fits") if "_lightcurve_" not in path.name)
        floor = floor_seconds(cutouts, root / "floor")

        # Every phase writes into its own new folder and nothing is deleted until the end:
        # on a disk mounted with `discard`, mass deletes slow file creation for minutes.
        jobs = [(f"cutouts/{path.name}", path.name.split("_")[1]) for path in cutouts]
        one = root / "thumbs-one-process"
        (one / "thumbs").mkdir(parents=True)
        started = time.perf_counter()
        for start in range(0, len(jobs), CHUNK):
            render_thumbnails(output, one, jobs[start:start + CHUNK])
        one_process = time.perf_counter() - started
        as_run = root / "thumbs-as-run"
        (as_run / "thumbs").mkdir(parents=True)
        started = time.perf_counter()
        _thumbnails(output, as_run, jobs)  # as the report renders them
        ours = time.perf_counter() - started

        (day,) = {path.name.split("_")[2] for path in (output / "data").glob("lsst_alerts_*.csv")}
        started = time.perf_counter()
        build_report(output, day[:8])
        whole = time.perf_counter() - started
        started = time.perf_counter()
        build_report(output, day[:8])
        rerun = time.perf_counter() - started
    n = len(cutouts)
    print(f"{args.alerts} alerts, {n} cutouts ({os.cpu_count()} cores), in {args.dir}")
    print(f"  floor: getdata + PNG save      {n / floor:8.0f} thumbnails/s")
    print(f"  report thumbnails, 1 process   {n / one_process:8.0f} thumbnails/s   ratio {floor / one_process:.2f}x "
          "the floor")
    print(f"  report thumbnails (as run)     {n / ours:8.0f} thumbnails/s   ratio {floor / ours:.2f}x the floor")
    print(f"  consume that made the night    {consume:8.1f} s")
    print(f"  whole report (first time)      {whole:8.1f} s       ratio {whole / consume:.2f}x the consume")
    print(f"  whole report (rerun, reused)   {rerun:8.1f} s")


if __name__ == "__main__":
    main()
