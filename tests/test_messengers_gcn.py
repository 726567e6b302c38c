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

from tests.conftest import HEARTBEAT_MS, REPO, SESSION_TIMEOUT_MS, SUBPROCESS_PYTHONPATH, new_topic, produce
from tests.test_kafka_run import committed
from tests.test_messengers import ALERT, GOLD_BRONZE, LVK_NU, alert_doc

TOPICS = ("igwn.gwalert", "gcn.notices.icecube.lvk_nu_track_search", "gcn.notices.icecube.gold_bronze_track_alerts")
GRB_DATA = REPO / "tests" / "data" / "grb"
#: Classic VOEvent topics (``gcn.classic.voevent.<notice type>``) and the real notices published to them.
VOEVENT_TOPICS = {
    "gcn.classic.voevent.SWIFT_BAT_GRB_POS_ACK": ["swift_bat_grb_pos_61_1156572.xml"],
    "gcn.classic.voevent.SWIFT_XRT_POSITION": ["swift_xrt_pos_67_1156572_ser1.xml", "swift_xrt_pos_67_1156572_ser2.xml"],
    "gcn.classic.voevent.FERMI_GBM_FIN_POS": ["fermi_gbm_fin_pos_115_680782656.xml",
                                              "fermi_gbm_subthresh_131_546126856_role-test.xml"],
    "gcn.classic.voevent.ICECUBE_ASTROTRACK_GOLD": ["icecube_gold_173_134191_17593623_rev1.xml"],
}
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
    from alert_pipeline.storehouse.messengers.gcn import DEFAULT_TOPICS
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in DEFAULT_TOPICS if t not in existing]).values():
        future.result(timeout=30)  # every default topic exists, as on GCN (a missing one is input not used)
    ends = {topic: committed(bootstrap, f"probe-{uuid.uuid4().hex[:6]}", topic)[0] for topic in DEFAULT_TOPICS}
    assert all(end < 0 for end in ends.values()), "the GCN topics are this test's alone"
    produce(bootstrap, TOPICS[0], [ALERT.read_bytes(), b'{"superevent_id": "S230519x", "alert_ty',
                                   json.dumps(alert_doc(superevent_id="MS230518h")).encode()])
    produce(bootstrap, TOPICS[1], [LVK_NU.read_bytes()])
    produce(bootstrap, TOPICS[2], [GOLD_BRONZE.read_bytes()])
    for topic, names in VOEVENT_TOPICS.items():
        produce(bootstrap, topic, [(GRB_DATA / name).read_bytes() for name in names])
    store = tmp_path / "store"
    group = f"gcn-{uuid.uuid4().hex[:8]}"
    env = gcn_env(bootstrap, group, tmp_path)
    done = run_gcn(env, store)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["gcn"]
    assert summary["messages"] == 11
    assert summary["skipped"] == {"mock_event": 1, "not_json": 1, "test_notice": 1}
    # the classic VOEvents: one slot per trigger, XRT's refined position (ser 2) over BAT's; the test notice
    # counted, not quarantined; IceCube's VOEvent a neutrino slot (values by hand, tests/data/grb/README.md)
    swift = json.loads((store / "grb" / "Swift-1156572.json").read_text())
    assert (swift["ra_deg"], swift["dec_deg"], swift["error_radius_deg"], len(swift["notices"])) == (18.378, 44.483,
                                                                                                     0.0005, 3)
    assert json.loads((store / "grb" / "Fermi-680782656.json").read_text())["ra_deg"] == 316.69
    assert json.loads((store / "neutrino" / "IC134191-17593623.json").read_text())["ra_deg"] == 142.9499
    assert json.loads((store / "gw" / "S230518h.json").read_text())["alert_type"] == "INITIAL"
    assert (store / "gw" / "S230518h.multiorder.fits").exists() and not (store / "gw" / "MS230518h.json").exists()
    assert json.loads((store / "neutrino" / "IC230416A.json").read_text())["ra_deg"] == 345.82
    assert (store / "neutrino" / "IC138590-39138551.json").exists()
    (sidecar,) = (store / "quarantine" / "gcn").glob("*.json")  # the torn notice, once, with its reason
    record = json.loads(sidecar.read_text())
    assert (record["topic"], record["offset"], record["reason"]) == ("igwn.gwalert", 1, "not_json")
    assert (store / "quarantine" / "gcn" / "igwn.gwalert_0_1.bin").read_bytes().startswith(b'{"superevent_id"')
    assert [committed(bootstrap, group, topic)[0] for topic in (*TOPICS, *VOEVENT_TOPICS)] == [3, 1, 1, 1, 2, 2, 1]
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


def _quarantined(store: Path) -> dict[int, dict]:
    """The quarantined notices' sidecars, by offset."""
    sidecars = (store / "quarantine" / "gcn").glob("*.json")
    return {record["offset"]: record for record in (json.loads(path.read_text()) for path in sidecars)}


def _crashing_notice() -> bytes:
    """The LVK nu-track notice with ``coincident_events`` a number: on 765581e the reader
    raised TypeError on it (the command died, nothing committed, every run again)."""
    return json.dumps(json.loads(LVK_NU.read_text()) | {"coincident_events": 3}).encode()


def test_a_notice_a_reader_fails_on_is_quarantined_once_and_the_notices_after_it_load(kafka, tmp_path):
    bootstrap = kafka.bootstrap_servers
    topic = new_topic(bootstrap)
    produce(bootstrap, topic, [LVK_NU.read_bytes(), _crashing_notice(), GOLD_BRONZE.read_bytes()])
    store, group = tmp_path / "store", f"gcn-{uuid.uuid4().hex[:8]}"
    env = gcn_env(bootstrap, group, tmp_path)
    done = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-messengers", "--gcn",
                           "--gcn-topics", topic, "--storehouse", str(store), "--idle-timeout", "20"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["gcn"]["messages"] == 3
    assert json.loads((store / "neutrino" / "IC138590-39138551.json").read_text())["ra_deg"] == 17.48  # before it
    assert json.loads((store / "neutrino" / "IC230416A.json").read_text())["ra_deg"] == 345.82  # after it
    assert list(_quarantined(store)) == [1]
    assert (store / "quarantine" / "gcn" / f"{topic}_0_1.bin").read_bytes() == _crashing_notice()
    assert committed(bootstrap, group, topic) == [3]
    sidecar = store / "quarantine" / "gcn" / f"{topic}_0_1.json"
    stamp = sidecar.stat().st_mtime_ns
    again = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-messengers", "--gcn",
                            "--gcn-topics", topic, "--storehouse", str(store), "--idle-timeout", "20"], env=env,
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["gcn"]["messages"] == 0  # read once, quarantined once
    assert sidecar.stat().st_mtime_ns == stamp and list(_quarantined(store)) == [1]


def _settings(bootstrap: str, tmp_path: Path, topic: str):
    from alert_pipeline.storehouse.messengers.gcn import settings_from_environment
    group = f"gcn-{uuid.uuid4().hex[:8]}"
    return group, settings_from_environment(gcn_env(bootstrap, group, tmp_path), (topic,))


def test_whatever_a_reader_or_applying_raises_the_notice_is_quarantined_and_the_run_goes_on(kafka, tmp_path,
                                                                                          monkeypatch):
    """Any exception, not only the readers' own Skipped: one from reading the notice
    (RuntimeError) and one from applying its item (KeyError)."""
    from alert_pipeline.storehouse.messengers import gcn
    from alert_pipeline.storehouse.messengers.load import MessengerStore
    broken_reader, unlucky_event = b'{"reader": "raises"}', "IC230417Z"
    real_read, real_apply = gcn.read_document, MessengerStore.apply

    def read_document(value, where, accept_mock):
        if value == broken_reader:
            raise RuntimeError("a reader bug")
        return real_read(value, where, accept_mock)

    def apply(self, item):
        if item.slot and item.slot.get("slot_id") == unlucky_event:
            raise KeyError("an applying bug")
        return real_apply(self, item)

    monkeypatch.setattr(gcn, "read_document", read_document)
    monkeypatch.setattr(MessengerStore, "apply", apply)
    bootstrap = kafka.bootstrap_servers
    topic = new_topic(bootstrap)
    unlucky = json.dumps(json.loads(GOLD_BRONZE.read_text()) | {"event_name": ["IceCube-230417Z"],
                                                                 "id": ["137840_57000001"]}).encode()
    produce(bootstrap, topic, [LVK_NU.read_bytes(), broken_reader, unlucky, GOLD_BRONZE.read_bytes()])
    group, settings = _settings(bootstrap, tmp_path, topic)
    store = tmp_path / "store"
    run = gcn.consume(str(store), settings, idle_timeout=20)
    assert run.messages == 4 and run.report.skipped["reader_error"] == 2
    quarantined = _quarantined(store)
    assert sorted(quarantined) == [1, 2] and {r["reason"] for r in quarantined.values()} == {"reader_error"}
    assert "RuntimeError: a reader bug" in quarantined[1]["detail"] and "KeyError" in quarantined[2]["detail"]
    assert (store / "neutrino" / "IC138590-39138551.json").exists() and (store / "neutrino" / "IC230416A.json").exists()
    assert not (store / "neutrino" / f"{unlucky_event}.json").exists()
    assert committed(bootstrap, group, topic) == [4]


def test_a_storehouse_that_cannot_be_written_stops_the_run_and_commits_nothing(kafka, tmp_path, monkeypatch):
    """Disk full is no fault of the notice: not quarantined, read again next run."""
    import errno

    import pytest

    from alert_pipeline.storehouse.messengers import gcn
    from alert_pipeline.storehouse.messengers.load import MessengerStore
    def apply(self, item):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(MessengerStore, "apply", apply)
    bootstrap = kafka.bootstrap_servers
    topic = new_topic(bootstrap)
    produce(bootstrap, topic, [GOLD_BRONZE.read_bytes()])
    group, settings = _settings(bootstrap, tmp_path, topic)
    with pytest.raises(OSError, match="No space left"):
        gcn.consume(str(tmp_path / "store"), settings, idle_timeout=20)
    assert committed(bootstrap, group, topic)[0] < 0
    assert not _quarantined(tmp_path / "store")


def test_a_gcn_topic_that_does_not_exist_is_named_and_exit_9(kafka, tmp_path):
    from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED
    bootstrap = kafka.bootstrap_servers
    topic, missing = new_topic(bootstrap), f"gcn.notices.nowhere-{uuid.uuid4().hex[:6]}"
    produce(bootstrap, topic, [GOLD_BRONZE.read_bytes()])
    env = gcn_env(bootstrap, f"gcn-{uuid.uuid4().hex[:8]}", tmp_path) | {"GCN_KAFKA_ALLOW_AUTO_CREATE_TOPICS": "false"}
    store = tmp_path / "store"
    done = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-messengers", "--gcn",
                           "--gcn-topics", f"{topic},{missing}", "--storehouse", str(store), "--idle-timeout", "10"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr
    summary = json.loads(done.stdout)
    assert summary["unused_topics"] == [missing] and summary["gcn"]["messages"] == 1
    assert f"GCN topic not used, it does not exist: {missing}" in done.stderr
    assert (store / "neutrino" / "IC230416A.json").exists()
