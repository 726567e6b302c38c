"""Where should the enrichments (the cross-match's coincidences, TNS's record) live: merged
into the slot at write time (what the storehouse does: a rebuild keeps the fields of the
stored slot it lacks), or in a sidecar file beside the slot that the build never reads?

For N transient slots, a fraction of them enriched, it times, on the same files:

* merge, rebuild: ``KindStore.write_slot`` of every slot as the build makes it (the stored
  slot is read to find it unchanged anyway; its enrichments are parsed out when its bytes
  name one);
* sidecar, rebuild: the same store with no enrichment kept (the build's bytes alone) — the
  floor the sidecar design would give the build;
* merge, read: one file per slot, parsed (what the site, the cross-match and a user read);
* sidecar, read: the slot and, for the enriched ones, the sidecar, both parsed.

    .venv/bin/python benchmarks/enrichment_storage.py [--slots 100000] [--enriched 0.05]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from unittest import mock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import orjson  # noqa: E402

from alert_pipeline.storehouse import slots  # noqa: E402
from alert_pipeline.storehouse.slots import KindStore, slot_bytes  # noqa: E402


def build_slot(number: int, night: int) -> dict:
    """A transient slot shaped like the build's (a light curve of a dozen points)."""
    slot_id = f"ZTF24{number:07d}"
    curve = [{"mjd": 60000.0 + k + night, "mag": 19.0 + 0.01 * k, "err": 0.05, "band": "g"} for k in range(12)]
    return {"slot_id": slot_id, "kind": "transient", "subtype": "sn", "ra_deg": (number * 0.37) % 360,
            "dec_deg": ((number * 0.11) % 180) - 90, "first_mjd": 60000.0, "last_mjd": 60011.0 + night,
            "n_alerts": 12 + night, "light_curve": curve, "provenance": {"built_at": f"night {night}"}}


def enrichment(number: int) -> dict:
    return {"multimessenger": [{"kind": "gw", "event": "S230518h", "dt_days": 1.5, "credible_level": 0.42,
                                "n_chance": 0.03}],
            "tns": {"name": f"SN 2024{number}", "type": "SN Ia", "redshift": 0.05}}


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=100_000)
    parser.add_argument("--enriched", type=float, default=0.05, help="fraction of slots with enrichments")
    args = parser.parse_args()
    count, every = args.slots, max(1, round(1 / args.enriched)) if args.enriched > 0 else 0
    enriched = {n for n in range(count) if every and n % every == 0}
    with tempfile.TemporaryDirectory() as root:
        merged, side = os.path.join(root, "merge"), os.path.join(root, "sidecar")
        stores = {name: KindStore(path, "transient") for name, path in (("merge", merged), ("sidecar", side))}
        for n in range(count):  # night 0 as built, then the enrichments
            slot = build_slot(n, 0)
            stores["merge"].write_slot(slot["slot_id"], {**slot, **(enrichment(n) if n in enriched else {})},
                                       exists=False)
            stores["sidecar"].write_slot(slot["slot_id"], slot, exists=False)
            if n in enriched:
                with open(os.path.join(stores["sidecar"].directory, f"{slot['slot_id']}.enrich"), "wb") as handle:
                    handle.write(slot_bytes(enrichment(n)))

        def rebuild(store: KindStore) -> None:
            for n in range(count):
                slot = build_slot(n, 1)
                store.write_slot(slot["slot_id"], slot)
            store.sync()

        def read_merged() -> None:
            for n in range(count):
                orjson.loads(open(stores["merge"].slot_path(f"ZTF24{n:07d}"), "rb").read())

        def read_sidecar() -> None:
            for n in range(count):
                path = stores["sidecar"].slot_path(f"ZTF24{n:07d}")
                slot = orjson.loads(open(path, "rb").read())
                if n in enriched:
                    slot.update(orjson.loads(open(path[: -len(".json")] + ".enrich", "rb").read()))

        merge_rebuild = timed(rebuild, stores["merge"])
        with mock.patch.object(slots, "ENRICHMENTS", ()):
            sidecar_rebuild = timed(rebuild, stores["sidecar"])
        merge_read, sidecar_read = timed(read_merged), timed(read_sidecar)
        kept = sum("multimessenger" in orjson.loads(open(stores["merge"].slot_path(f"ZTF24{n:07d}"), "rb").read())
                   for n in enriched)
    print(f"{count} slots, {len(enriched)} enriched ({args.enriched:.0%}); the merge kept {kept} of them")
    print(f"rebuild: merge {merge_rebuild:.2f} s, sidecar {sidecar_rebuild:.2f} s: "
          f"ratio {merge_rebuild / sidecar_rebuild:.2f} the sidecar's")
    print(f"read every slot whole: merge {merge_read:.2f} s, sidecar {sidecar_read:.2f} s: "
          f"ratio {merge_read / sidecar_read:.2f} the sidecar's")


if __name__ == "__main__":
    main()
