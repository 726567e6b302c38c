"""The TNS refinement at the size of TNS's public objects file, against its floor.

Writes a public-objects CSV of N TNS objects (170,000 by default, TNS's size; 1 in 4
with a type, internal names on a third) and a storehouse of M transient slots (100,000;
a fifth of them on a TNS object, half of those named in its internal names), then, in one
run:

* floor: pandas ``read_csv`` of the file plus one astropy ``match_coordinates_sky`` of the
  slots against the catalogue, in this process;
* ``tns`` command, first run (reads and compares every slot), and rerun with the same file,
  in a child process, with its peak RSS.

    .venv/bin/python benchmarks/tns_scale.py [--tns 170000] [--slots 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
from _measure import run_measured, ztf_name  # noqa: E402

HEADER = ('"objid","name_prefix","name","ra","declination","redshift","typeid","type","reporting_groupid",'
          '"reporting_group","source_groupid","source_group","discoverydate","discoverymag","discmagfilter",'
          '"filter","reporters","time_received","internal_names","creationdate","lastmodified"')


def make(path: str, tns: int, slots: int, rng: np.random.Generator) -> None:
    from alert_pipeline import kinds

    ra, dec = rng.uniform(0, 360, tns), np.degrees(np.arcsin(rng.uniform(-1, 1, tns)))
    types = np.where(rng.random(tns) < 0.25, "SN Ia", "")
    names = [ztf_name(i) for i in range(slots)]
    with open(os.path.join(path, "tns_public_objects.csv"), "w") as handle:
        handle.write('"2026-12-01 00:00:00"\n' + HEADER + "\n")
        for i in range(tns):
            internal = names[i // 2] if i % 10 == 0 and i // 2 < slots else ""
            handle.write(f'"{i}","SN","20{20 + i % 7}a{i}","{ra[i]:.6f}","{dec[i]:.6f}","","","{types[i]}",'
                         f'"","","","","2024-01-01 00:00:00","19.0","r","","","","{internal}","",""\n')
    store = kinds.spec("transient").store(path)
    on_tns = rng.random(slots) < 0.2
    pick = rng.integers(0, tns, slots)
    for i, slot_id in enumerate(names):
        r, d = (ra[pick[i]], dec[pick[i]]) if on_tns[i] else (rng.uniform(0, 360), rng.uniform(-60, 60))
        store.write_slot(slot_id, {"slot_id": slot_id, "kind": "transient", "subtype": "sn",
                                   "fink_classification": "SN candidate", "ra_deg": float(r), "dec_deg": float(d),
                                   "first_mjd": 60000.0, "last_mjd": 60001.0, "n_alerts": 1, "provisional": False},
                         exists=False)
    store.rebuild_index(kinds.spec("transient").index_fields)
    store.sync()


def floor_seconds(path: str) -> float:
    import pandas as pd
    from astropy import units as u
    from astropy.coordinates import SkyCoord, match_coordinates_sky

    started = time.perf_counter()
    table = pd.read_csv(os.path.join(path, "tns_public_objects.csv"), skiprows=1)
    index = json.load(open(os.path.join(path, "transient", "index.json")))["slots"]
    slots = SkyCoord([e["ra_deg"] for e in index] * u.deg, [e["dec_deg"] for e in index] * u.deg)
    match_coordinates_sky(slots, SkyCoord(table["ra"].to_numpy() * u.deg, table["declination"].to_numpy() * u.deg))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tns", type=int, default=170_000)
    parser.add_argument("--slots", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as path:
        make(path, args.tns, args.slots, np.random.default_rng(26))
        floor = min(floor_seconds(path) for _ in range(2))
        command = (os.path.join(REPO, "transient_kind_builder.py"), "tns", "--storehouse", path,
                   os.path.join(path, "tns_public_objects.csv"))
        first, peak, summary = run_measured(*command)
        again, peak_again, repeat = run_measured(*command)
        print(f"{args.tns} TNS objects, {args.slots} transient slots ({summary['matched']} matched: {summary['by_match']})")
        print(f"  floor: pandas read_csv + one match_coordinates_sky   {floor:7.2f} s")
        print(f"  tns command, first run (every slot compared)         {first:7.2f} s   ratio {first / floor:.2f}x the "
              f"floor   peak RSS {peak:.0f} MB   slots written {summary['slots_written']}")
        print(f"  tns command, rerun with the same file                {again:7.2f} s   ratio {again / floor:.2f}x the "
              f"floor   peak RSS {peak_again:.0f} MB   slots written {repeat['slots_written']}")


if __name__ == "__main__":
    main()
