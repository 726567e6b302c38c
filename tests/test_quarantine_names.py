"""Quarantine file names: every message gets a stem of its own that the file system accepts,
whatever its topic or file is called (pure logic plus a write into a temporary directory)."""

from __future__ import annotations

import datetime as dt
import json

from alert_pipeline.quarantine import QuarantineItem, source_stem, write_quarantine

WHEN = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def test_a_plain_topic_keeps_the_documented_name():
    assert source_stem({"topic": "gcn.notices.swift.bat.guano", "partition": 0, "offset": 12}) == \
        "gcn.notices.swift.bat.guano_0_12"


def test_the_longest_topic_kafka_allows_is_quarantined_under_a_valid_name(tmp_path):
    topic = "g" * 249  # Kafka's limit; the name with its partition and offset would pass 255 bytes
    source = {"topic": topic, "partition": 3, "offset": 123456789012}
    written = write_quarantine(str(tmp_path), source, b"notice", [QuarantineItem("bad", "why")], WHEN)
    assert written == 1
    (sidecar,) = tmp_path.glob("*.json")
    assert len(sidecar.name) <= 255 and json.loads(sidecar.read_text())["topic"] == topic
    assert (tmp_path / sidecar.name.replace(".json", ".bin")).read_bytes() == b"notice"


def test_topics_that_clean_to_the_same_name_never_share_a_file(tmp_path):
    stems = {source_stem({"topic": topic, "partition": 0, "offset": 1}) for topic in ("x", ".x", "x.", "x/")}
    assert len(stems) == 4


def test_a_file_with_the_longest_name_is_quarantined_under_a_valid_name(tmp_path):
    source = {"file": str(tmp_path / ("n" * 255)), "index": 7}
    (tmp_path / "q").mkdir()
    write_quarantine(str(tmp_path / "q"), source, b"row", [QuarantineItem("bad", "why")], WHEN)
    (sidecar,) = (tmp_path / "q").glob("*.json")
    assert len(sidecar.name) <= 255 and sidecar.name.endswith("_7.json")
