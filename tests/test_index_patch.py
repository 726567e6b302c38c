"""``KindStore.patch_index``: a few entries of a kind's index replaced as bytes give the
index a whole rewrite would, and anything not in the layout ``write_index`` makes is
refused (the caller then rewrites the index whole)."""

from __future__ import annotations

import orjson
import pytest

from alert_pipeline.storehouse.layout import parse_json
from alert_pipeline.storehouse.slots import KindStore


def entry(slot_id: str, **fields) -> dict:
    return {"slot_id": slot_id, "ra_deg": 10.5, "dec_deg": -3.25, "tns_type": None, **fields}


@pytest.fixture
def store(tmp_path):
    store = KindStore(str(tmp_path), "transient")
    store.write_index([entry(f"ZTF20aaaaaa{c}") for c in "abcdefghij"] + [entry("ZTF20aaaaaak1")])
    return store


def index(store: KindStore) -> dict:
    with open(store.layout.index("transient"), "rb") as handle:
        return parse_json(handle.read())


def test_patched_entries_equal_a_whole_rewrite_first_last_and_hostile_strings(store):
    before = index(store)
    # a value that spells the entry separator and a slot id that prefixes another
    changes = {"ZTF20aaaaaaa": entry("ZTF20aaaaaaa", tns_type='SN Ia"},{"slot_id":"ZTF20aaaaaab"'),
               "ZTF20aaaaaaf": entry("ZTF20aaaaaaf", tns_type="SN II", distance={"z": 0.05}),
               "ZTF20aaaaaak1": entry("ZTF20aaaaaak1", tns_type="TDE")}
    assert store.patch_index(changes)
    after = index(store)
    assert after["slots"] == [changes.get(e["slot_id"], e) for e in before["slots"]]
    assert after["count"] == 11 and after["kind"] == "transient"
    assert after["slots"][0]["tns_type"] == 'SN Ia"},{"slot_id":"ZTF20aaaaaab"'
    assert after["slots"][1] == entry("ZTF20aaaaaab")  # the entry the hostile string names is untouched
    # patching the patched file again still finds every entry
    assert store.patch_index({"ZTF20aaaaaab": entry("ZTF20aaaaaab", tns_type="SLSN-I")})
    assert index(store)["slots"][1]["tns_type"] == "SLSN-I"
    assert index(store)["slots"][0]["tns_type"] == 'SN Ia"},{"slot_id":"ZTF20aaaaaab"'


@pytest.mark.parametrize("how", ["missing slot", "indented", "no index", "empty", "keys reordered", "nested"])
def test_anything_else_is_refused_and_left_as_it_was(store, how):
    path = store.layout.index("transient")
    if how == "indented":
        content = index(store)
        with open(path, "wb") as handle:
            handle.write(orjson.dumps(content, option=orjson.OPT_INDENT_2) + b"\n")
    elif how == "no index":
        import os
        os.unlink(path)
    elif how == "empty":
        store.write_index([])
    elif how == "nested":
        # an entry holding a list of objects that start like entries (one names the slot to patch)
        store.write_index([entry("ZTF20aaaaaaa", hosts=[{"slot_id": "ZTF20aaaaaab"}, {"slot_id": "G1"}]),
                           entry("ZTF20aaaaaab")])
    elif how == "keys reordered":
        content = index(store)
        with open(path, "wb") as handle:
            handle.write(orjson.dumps({"slots": content["slots"], **{k: v for k, v in content.items()
                                                                       if k != "slots"}}) + b"\n")
    before = open(path, "rb").read() if how != "no index" else None
    changes = {"ZTF21zzzzzzz" if how == "missing slot" else "ZTF20aaaaaab": entry("ZTF20aaaaaab", tns_type="SN")}
    assert store.patch_index(changes) is False
    if before is not None:
        assert open(path, "rb").read() == before
