"""The galaxy catalogue at scale: a synthetic GLADE+ file loaded, and one real map's
galaxies ranked, against a floor measured in the same run.

Writes a synthetic GLADE+ text file of N rows (10^7 by default, not GLADE+'s 23 million:
the full size needs about 5 GB of text and 2 GB of scratch; pass ``--rows 23000000`` where
the disk allows). Its rows: uniform on the sky, distances uniform in volume from 1 to
1000 Mpc, a stellar mass on 30 %, one row in 250 bad (null distance, negative distance,
off the sky, null RA). Then, in one run:

* ``load-galaxies`` in a fresh child process (``transient_kind_builder.py``, imports and
  all), with its peak RSS (the target: below 2 GB);
* the floor, in this process: reading the stored catalogue's position and distance columns
  (pyarrow, every partition) plus one vectorised density lookup (each row's map pixel and
  its PROBDENSITY × DISTNORM × normal density at its distance);
* the ranking (``query.galaxies_in_volume`` + ``query.rank``, as the hosts step does it) for
  the real BAYESTAR map of MS181101ab, in this process, and its ratio to the floor (target
  ≤ 3×). The ranking's fixed cost is the volume grid of ligo.skymap's crossmatch (pixels ×
  999 shells, ranked), which does not grow with the catalogue; the floor grows with it.

    .venv/bin/python benchmarks/galaxies_scale.py [--rows 10000000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
from _measure import run_measured  # noqa: E402

MAP = os.path.join(REPO, "tests", "data", "messengers", "MS181101ab-bayestar.multiorder.fits")
CHUNK = 500_000


def synthesise(path: str, rows: int, seed: int = 1) -> int:
    """A GLADE+-format text file of ``rows`` rows (40 fields, ``null`` for missing); how
    many rows were made bad on purpose."""
    rng = np.random.default_rng(seed)
    made_bad = 0
    with open(path, "w") as out:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            ra = rng.uniform(0, 360, n)
            dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
            distance = np.cbrt(rng.uniform(1.0, 1000.0**3, n))
            mass = np.where(rng.random(n) < 0.3, 10 ** rng.normal(0, 0.7, n), np.nan)
            bad = rng.random(n) < 1 / 250
            kind = rng.integers(0, 4, n)
            distance_text = np.char.mod("%.6f", distance).astype(object)
            distance_text[bad & (kind == 0)] = "null"
            distance_text[bad & (kind == 1)] = "-" + distance_text[bad & (kind == 1)]
            dec_text = np.char.mod("%.6f", dec).astype(object)
            dec_text[bad & (kind == 2)] = "95.0"
            ra_text = np.char.mod("%.6f", ra).astype(object)
            ra_text[bad & (kind == 3)] = "null"
            made_bad += int(bad.sum())
            mass_text = np.where(np.isnan(mass), "null", np.char.mod("%.4f", mass))
            z_text = np.char.mod("%.6f", distance * 70 / 299792.458)
            lines = []
            for i in range(n):
                number = start + i + 1
                lines.append(f"{number} null NGC{number} null null null null G {ra_text[i]} {dec_text[i]} "
                             + "null " * 17 + f"{z_text[i]} {z_text[i]} 0 null null {distance_text[i]} null 1 "
                             f"{mass_text[i]} null null null null\n")
            out.writelines(lines)
    return made_bad


def floor(catalogue: str, sky) -> tuple[float, int]:
    """Seconds to read the catalogue's columns and look up each row's volume density."""
    import pyarrow.dataset as ds

    started = time.perf_counter()
    table = ds.dataset(os.path.join(catalogue, "dataset"), format="parquet", exclude_invalid_files=True).to_table(
        columns=["ra", "dec", "distance_mpc"])
    ra, dec, distance = (table[name].to_numpy() for name in ("ra", "dec", "distance_mpc"))
    rows = sky.pixel_of(ra, dec)
    density = sky.probdensity[rows] * sky.distnorm[rows] / (sky.distsigma[rows] * math.sqrt(2 * math.pi)) * np.exp(
        -0.5 * np.square((distance - sky.distmu[rows]) / sky.distsigma[rows]))
    assert len(density) == table.num_rows
    return time.perf_counter() - started, table.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", help="a directory for the file and the storehouse (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        text = os.path.join(work, "synthetic_glade.txt")
        started = time.perf_counter()
        made_bad = synthesise(text, args.rows)
        print(f"synthetic GLADE+ file: {args.rows:,} rows ({made_bad:,} bad), {os.path.getsize(text) / 1e6:,.0f} MB "
              f"in {time.perf_counter() - started:.1f} s")
        store = os.path.join(work, "store")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (REPO, os.environ.get("PYTHONPATH"))))
        seconds, peak_mb, summary = run_measured(os.path.join(REPO, "transient_kind_builder.py"), "load-galaxies",
                                                 "--storehouse", store, text)
        print(f"load-galaxies: {summary['rows']:,} galaxies stored, skipped {summary['bad_rows']}, "
              f"{seconds:.1f} s, peak RSS {peak_mb:,.0f} MB (target below 2,048 MB)")
        from alert_pipeline.storehouse.galaxies import query
        from alert_pipeline.storehouse.galaxies.volume import read_volume_map

        sky = read_volume_map(MAP)
        from alert_pipeline.storehouse.builder.settings import CATALOGUE
        from alert_pipeline.storehouse.layout import StorehouseLayout

        catalogue = StorehouseLayout.at(store).catalogue(CATALOGUE.default)
        floor(catalogue, sky)  # warm: the imports and the file cache, for both
        floor_seconds, rows = floor(catalogue, sky)
        started = time.perf_counter()
        listed, total = query.rank(query.galaxies_in_volume(catalogue, sky), 100)
        ranking = time.perf_counter() - started
        print(f"floor: read {rows:,} rows' columns + one density lookup: {floor_seconds:.2f} s")
        print(f"ranking MS181101ab: {total:,} galaxies in its 90% volume, {len(listed)} listed: {ranking:.2f} s, "
              f"ratio {ranking / floor_seconds:.2f} the floor (target <= 3)")
        print(json.dumps({"rows": args.rows, "load_s": round(seconds, 1), "load_peak_rss_mb": round(peak_mb),
                          "floor_s": round(floor_seconds, 3), "ranking_s": round(ranking, 3)}))


if __name__ == "__main__":
    main()
