"""The slot store through its storage interface: a second storage is one class.

``MemoryFiles`` below keeps objects in a dict, as an object store would (no directories,
no rename); the slot store's whole logic — new, unchanged and changed slots, enrichments
kept, the index, stale slots removed — runs on it unchanged, and gives the bytes the POSIX
storage gives."""

from __future__ import annotations

import posixpath

import pytest

from alert_pipeline.storehouse.backend import POSIX
from alert_pipeline.storehouse.layout import parse_json
from alert_pipeline.storehouse.slots import KindStore, WriteReport


class MemoryFiles:
    """Objects in a dict: what an object-store backend would be, in a few lines."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.synced = 0

    def read(self, path: str, limit: int = 1 << 20) -> bytes:
        if path not in self.objects:
            raise FileNotFoundError(path)
        return self.objects[path][: limit + 1]

    def create_new(self, path: str, data: bytes) -> None:
        if path in self.objects:
            raise FileExistsError(path)
        self.objects[path] = bytes(data)

    def replace(self, path: str, data: bytes) -> None:
        self.objects[path] = bytes(data)

    def remove(self, path: str) -> None:
        del self.objects[path]

    def list(self, directory: str) -> list[str]:
        return [posixpath.basename(path) for path in self.objects if posixpath.dirname(path) == directory]

    def make_directory(self, directory: str) -> None:
        pass

    def sync(self, directory: str) -> None:
        self.synced += 1


FIELDS = ("slot_id", "subtype")


def _night(store: KindStore) -> dict:
    """A first build, an unchanged rerun, an enrichment, a rebuild that must keep it and
    drop a slot the source no longer has; what each step reported."""
    seen = {}
    report = WriteReport()
    for slot_id, subtype in (("ZTF24aaaaaaa", "sn"), ("ZTF24aaaaaab", "unknown")):
        store.write_one(slot_id, {"slot_id": slot_id, "subtype": subtype}, FIELDS, True, report)
    store.finish(report, set(), FIELDS, allow_shrink=False)
    store.write_index(report.entries)
    seen["first"] = (report.written, report.unchanged)
    again = WriteReport()
    store.write_one("ZTF24aaaaaaa", {"slot_id": "ZTF24aaaaaaa", "subtype": "sn"}, FIELDS, True, again)
    seen["rerun"] = (again.written, again.unchanged)
    enriched = {**store.read_slot("ZTF24aaaaaaa"), "multimessenger": [{"kind": "gw", "event": "S230518h"}]}
    store.write_slot("ZTF24aaaaaaa", enriched)
    rebuild = WriteReport()
    store.write_one("ZTF24aaaaaaa", {"slot_id": "ZTF24aaaaaaa", "subtype": "kilonova"}, FIELDS, True, rebuild)
    store.finish(rebuild, store.slot_ids_on_disk(), FIELDS, allow_shrink=True)
    store.write_index(rebuild.entries)
    seen["rebuild"] = (rebuild.written, rebuild.removed)
    seen["slot"] = store.read_slot("ZTF24aaaaaaa")
    seen["on_disk"] = sorted(store.slot_ids_on_disk())
    seen["index"] = [entry["slot_id"] for entry in parse_json(store.files.read(store.layout.index("transient")))["slots"]]
    return seen


def test_the_slot_store_runs_unchanged_on_another_storage(tmp_path):
    memory = MemoryFiles()
    on_memory = _night(KindStore(str(tmp_path / "m"), "transient", files=memory))
    on_disk = _night(KindStore(str(tmp_path / "d"), "transient", files=POSIX))
    assert on_memory == on_disk
    assert on_memory["first"] == (2, 0) and on_memory["rerun"] == (0, 1)
    assert on_memory["rebuild"] == (1, 1)  # the changed slot rewritten, the stale one removed
    assert on_memory["slot"] == {"slot_id": "ZTF24aaaaaaa", "subtype": "kilonova",
                                 "multimessenger": [{"kind": "gw", "event": "S230518h"}]}  # the enrichment kept
    assert on_memory["on_disk"] == on_memory["index"] == ["ZTF24aaaaaaa"]
    assert memory.synced >= 2
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").rglob("*.json"))  # nothing went to disk


def test_a_slot_created_meanwhile_is_replaced_not_lost():
    memory = MemoryFiles()
    store = KindStore("/nowhere", "transient", files=memory)
    path = store.slot_path("ZTF24aaaaaaa")
    memory.objects[path] = b'{"slot_id": "ZTF24aaaaaaa", "subtype": "old"}\n'
    assert store.write_slot("ZTF24aaaaaaa", {"slot_id": "ZTF24aaaaaaa", "subtype": "sn"}, exists=False)
    assert parse_json(memory.objects[path])["subtype"] == "sn"
    with pytest.raises(FileExistsError):
        memory.create_new(path, b"{}")
