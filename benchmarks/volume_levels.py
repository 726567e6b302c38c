"""Volume credible levels of many transients against the floor of one pass over the voxels.

On the real BAYESTAR map of MS181101ab (19,200 pixels, tests/data/messengers/), N transients
are placed at pixel centres drawn from the map at distances spread over 0.02-1.2 × six
mean distances (so some lie beyond the shared grid and need one of their own). Then:

* floor: the density and probability of every voxel of the shared grid (pixels × 999
  shells, one ``exp`` each) and their cumulative sums per pixel, once, in this process —
  what any exact answer on crossmatch's grid must at least compute;
* volume: ``messengers.volume.volume_fields`` for all N at once, and its ratio to the floor;
* with ``--ligo``: one ligo.skymap ``crossmatch`` call for all N (a test dependency), and
  its ratio to the floor.

    .venv/bin/python benchmarks/volume_levels.py [--transients 1000] [--ligo]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from alert_pipeline.storehouse.messengers.skymaps import read_skymap  # noqa: E402
from alert_pipeline.storehouse.messengers.volume import (  # noqa: E402
    REACH_MEANS,
    SHELLS,
    marginal_mean_mpc,
    volume_fields,
)

MAP = os.path.join(REPO, "tests", "data", "messengers", "MS181101ab-bayestar.multiorder.fits")


def floor_seconds(skymap, reach: float) -> float:
    """One pass over the shared grid's voxels: densities, probabilities, per-pixel cumulative sums."""
    start = time.perf_counter()
    step = reach / SHELLS
    r = step * np.arange(1, SHELLS)
    layers = skymap.distance
    peak = skymap.probdensity * layers["DISTNORM"] / (layers["DISTSIGMA"] * math.sqrt(2 * math.pi))
    area = skymap.pixel_areas_sr()
    width = (r * r + step * step / 12) * step
    chunk = 2000
    for first in range(0, len(peak), chunk):
        part = slice(first, first + chunk)
        density = peak[part, None] * np.exp(-0.5 * np.square((r[None, :] - layers["DISTMU"][part, None])
                                                             / layers["DISTSIGMA"][part, None]))
        np.cumsum(density * width[None, :] * area[part, None], axis=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transients", type=int, default=1000)
    parser.add_argument("--ligo", action="store_true", help="also time ligo.skymap's crossmatch (slow)")
    args = parser.parse_args()
    with open(MAP, "rb") as handle:
        skymap = read_skymap(handle)
    rng = np.random.default_rng(37)
    prob = skymap.probdensity * skymap.pixel_areas_sr()
    rows = rng.choice(len(prob), args.transients, p=prob / prob.sum())
    reach = REACH_MEANS * marginal_mean_mpc(skymap)
    distance = rng.uniform(0.02, 1.2, args.transients) * reach
    floor = min(floor_seconds(skymap, reach) for _ in range(2))
    start = time.perf_counter()
    found = volume_fields(skymap, rows, distance)
    took = time.perf_counter() - start
    beyond = int(np.sum(distance > reach))
    print(f"map: {len(prob)} pixels x {SHELLS - 1} shells; {args.transients} transients ({beyond} beyond the grid)")
    print(f"floor (one pass over the voxels): {floor:.3f} s")
    print(f"volume_fields: {took:.3f} s, ratio {took / floor:.3f} the floor "
          f"(median level {np.nanmedian(found['credible_level_volume']):.3f})")
    if args.ligo:
        from astropy import units as u
        from astropy.coordinates import SkyCoord
        from astropy_healpix import healpix_to_lonlat
        from ligo.skymap.io import read_sky_map
        from ligo.skymap.postprocess.crossmatch import crossmatch

        orders = skymap.orders[rows]
        lon, lat = healpix_to_lonlat(skymap.uniq[rows] - 4 * 4**orders, 2**orders, order="nested")
        table = read_sky_map(MAP, moc=True)
        start = time.perf_counter()
        crossmatch(table, SkyCoord(lon, lat, distance * u.Mpc))
        ligo = time.perf_counter() - start
        print(f"ligo.skymap crossmatch (one call, grid to the farthest): {ligo:.3f} s, ratio {ligo / floor:.3f} "
              "the floor")


if __name__ == "__main__":
    main()
