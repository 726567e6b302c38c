"""load-messengers --gcn: real notices published to GCN's topic names on the local
broker, read with gcn-kafka pointed at it (plaintext, no OIDC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import HEARTBEAT_MS, REPO, SESSION_TIMEOUT_MS, SUBPROCESS_PYTHONPATH, produce
from tests.test_kafka_run import committed
from tests.test_messengers import ALERT, GOLD_BRONZE, LVK_NU, alert_doc

TOPICS = ("igwn.gwalert", "gcn.notices.icecube.lvk_nu_track_search", "gcn.notices.icecube.gold_bronze_track_alerts")
SECRET = "gcn-Secret-42"


def gcn_env(bootstrap: str, group: str, tmp_path: Path) -> dict[str, str]:
    secret = tmp_path / "gcn.secret"
    secret.write_text(SECRET + "\n")
    return os.environ | {"PYTHONPATH": SUBPROCESS_PYTHONPATH, "GCN_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                         "GCN_KAFKA_SECURITY_PROTOCOL": "plaintext", "GCN_GROUP_ID": group,
                         "GCN_KAFKA_SESSION_TIMEOUT_MS": SESSION_TIMEOUT_MS, "GCN_KAFKA_HEARTBEAT_INTERVAL_MS": HEARTBEAT_MS,
                         "GCN_CLIENT_SECRET_FILE": str(secret)}


def run_gcn(env: dict[str, str], store: Path, idle: str = "20") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-messengers", "--gcn",
                           "--storehouse", str(store), "--idle-timeout", idle], env=env, capture_output=True,
                          text=True, timeout=180)


def test_gcn_notices_become_slots_bad_ones_are_quarantined_and_offsets_follow_the_disk(kafka, tmp_path):
    bootstrap = kafka.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in TOPICS if t not in existing]).values():
        future.result(timeout=30)
    ends = {topic: committed(bootstrap, f"probe-{uuid.uuid4().hex[:6]}", topic)[0] for topic in TOPICS}
    assert all(end < 0 for end in ends.values()), "the GCN topics are this test's alone"
    produce(bootstrap, TOPICS[0], [ALERT.read_bytes(), b'{"superevent_id": "S230519x", "alert_ty',
                                   json.dumps(alert_doc(superevent_id="MS230518h")).encode()])
    produce(bootstrap, TOPICS[1], [LVK_NU.read_bytes()])
    produce(bootstrap, TOPICS[2], [GOLD_BRONZE.read_bytes()])
    store = tmp_path / "store"
    group = f"gcn-{uuid.uuid4().hex[:8]}"
    env = gcn_env(bootstrap, group, tmp_path)
    done = run_gcn(env, store)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["gcn"]
    assert summary["messages"] == 5
    assert summary["skipped"] == {"mock_event": 1, "not_json": 1}
    assert json.loads((store / "gw" / "S230518h.json").read_text())["alert_type"] == "INITIAL"
    assert (store / "gw" / "S230518h.multiorder.fits").exists() and not (store / "gw" / "MS230518h.json").exists()
    assert json.loads((store / "neutrino" / "IC230416A.json").read_text())["ra_deg"] == 345.82
    assert (store / "neutrino" / "IC138590-39138551.json").exists()
    (sidecar,) = (store / "quarantine" / "gcn").glob("*.json")  # the torn notice, once, with its reason
    record = json.loads(sidecar.read_text())
    assert (record["topic"], record["offset"], record["reason"]) == ("igwn.gwalert", 1, "not_json")
    assert (store / "quarantine" / "gcn" / "igwn.gwalert-0-1.bin").read_bytes().startswith(b'{"superevent_id"')
    assert [committed(bootstrap, group, topic)[0] for topic in TOPICS] == [3, 1, 1]
    assert SECRET not in done.stderr + done.stdout
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*.json") if p.name not in ("index.json", "roster.json")}
    again = run_gcn(env, store)  # nothing new: nothing read, nothing rewritten
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["gcn"]["messages"] == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_an_unreachable_gcn_broker_is_exit_3(tmp_path):
    env = gcn_env("127.0.0.1:9", "nobody", tmp_path)
    done = run_gcn(env, tmp_path / "store", idle="3")
    assert done.returncode == 3, done.stderr
    assert "GCN Kafka" in done.stderr and "nothing of the batch in hand was committed" in done.stderr
