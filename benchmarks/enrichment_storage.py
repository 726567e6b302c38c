"""Where an enrichment lives: merged into the slot (today's design) or in a file beside it.

Issue 39 asks whether keeping enrichments (``tns``, ``multimessenger``) beside a slot
rather than inside it would make the storehouse's writes cheaper. Both designs, on N
transient-like slots (~2 kB each, a light curve) of which a share carries an enrichment
(~300 bytes), each in its own directory of the same file system:

* **merge** (``slots.KindStore``): an enrichment step reads the slot, adds its field and
  replaces the file (temp + rename); a rebuild reads every old slot to keep its
  enrichments (``_with_enrichments``: the bytes searched, parsed only when they name one)
  and replaces it; a reader reads one file;
* **sidecar**: an enrichment step creates ``<slot>.enrich.json`` (a new file, ``O_EXCL``);
  a rebuild replaces each slot without reading it; a reader reads the slot and opens its
  sidecar (absent for most).

Each step ends with one ``syncfs``. It prints seconds per step per design and the
sidecar/merge ratio; the slot contract (a slot read alone has every field) holds only for
merge, so sidecar must win clearly to be worth breaking it.

    .venv/bin/python benchmarks/enrichment_storage.py [--slots 100000] [--shares 0.05,0.5]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import orjson  # noqa: E402

from alert_pipeline.durable import create_new, sync_filesystem, write_atomically  # noqa: E402
from alert_pipeline.storehouse.slots import slot_bytes  # noqa: E402

FIELD = "tns"


def base_slot(number: int, rng: random.Random) -> dict:
    points = 12
    return {"slot_id": f"ZTF{number:09d}", "kind": "transient", "subtype": "sn", "ra_deg": rng.uniform(0, 360),
            "dec_deg": rng.uniform(-30, 80), "first_mjd": 59000 + rng.random(), "n_alerts": points,
            "provenance": {"built_at": "2026-01-01T00:00:00Z"},
            "light_curve": {"g": {"mjd": [59000 + i + rng.random() for i in range(points)],
                                  "mag": [18 + rng.random() for _ in range(points)],
                                  "mag_err": [0.05] * points, "candid": list(range(points)),
                                  "positive": [True] * points}}}


def enrichment(number: int) -> dict:
    return {"name": f"SN 2024{number:05d}", "type": "SN Ia", "redshift": 0.031, "discovery_date": "2024-01-01",
            "match": "position", "separation_arcsec": 0.4, "internal": [f"ZTF{number:09d}", "ATLAS24abc"]}


def timed(step, *args) -> float:
    started = time.perf_counter()
    step(*args)
    return time.perf_counter() - started


def build(directory: str, slots: list[dict], merge: bool, first: bool) -> None:
    """Write every slot: new files the first time; after that a rebuild, which under
    merge reads each old slot to keep its enrichment."""
    for slot in slots:
        path = os.path.join(directory, slot["slot_id"] + ".json")
        if first:
            create_new(path, slot_bytes(slot))
            continue
        if merge:
            with open(path, "rb") as handle:
                old = handle.read()
            if f'"{FIELD}"'.encode() in old:
                slot = {**slot, FIELD: orjson.loads(old)[FIELD]}
        write_atomically(path, slot_bytes(slot), durable=False)
    sync_filesystem(directory)


def enrich(directory: str, chosen: list[int], merge: bool) -> None:
    for number in chosen:
        path = os.path.join(directory, f"ZTF{number:09d}.json")
        if merge:
            with open(path, "rb") as handle:
                slot = orjson.loads(handle.read())
            slot[FIELD] = enrichment(number)
            write_atomically(path, slot_bytes(slot), durable=False)
        else:
            create_new(path[:-5] + ".enrich.json", orjson.dumps({FIELD: enrichment(number)}))
    sync_filesystem(directory)


def read_all(directory: str, count: int, merge: bool) -> None:
    for number in range(count):
        path = os.path.join(directory, f"ZTF{number:09d}.json")
        with open(path, "rb") as handle:
            slot = orjson.loads(handle.read())
        if not merge:
            try:
                with open(path[:-5] + ".enrich.json", "rb") as handle:
                    slot.update(orjson.loads(handle.read()))
            except FileNotFoundError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=100_000)
    parser.add_argument("--shares", default="0.05,0.5", help="the shares of slots enriched, comma-separated")
    parser.add_argument("--dir", default=None, help="where the scratch directories go (default: the system's)")
    args = parser.parse_args()
    rng = random.Random(39)
    slots = [base_slot(number, rng) for number in range(args.slots)]
    print(f"{args.slots} slots of ~{len(slot_bytes(slots[0]))} bytes; load {os.getloadavg()[0]:.1f}")
    for share in (float(part) for part in args.shares.split(",")):
        chosen = sorted(random.Random(7).sample(range(args.slots), int(args.slots * share)))
        figures = {}
        with tempfile.TemporaryDirectory(dir=args.dir) as where:
            for design in ("merge", "sidecar"):
                directory = os.path.join(where, design)
                os.makedirs(directory)
                merge = design == "merge"
                timed(build, directory, slots, merge, True)
                figures[design] = {"enrich": timed(enrich, directory, chosen, merge),
                                   "rebuild": timed(build, directory, slots, merge, False),
                                   "read": timed(read_all, directory, args.slots, merge)}
        print(f"  {share:.0%} enriched ({len(chosen)} slots):")
        for step in ("enrich", "rebuild", "read"):
            merge_s, sidecar_s = figures["merge"][step], figures["sidecar"][step]
            print(f"    {step:<8} merge {merge_s:7.2f} s   sidecar {sidecar_s:7.2f} s   "
                  f"sidecar/merge {sidecar_s / merge_s:.2f}x")


if __name__ == "__main__":
    main()
