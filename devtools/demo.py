"""The demo: the whole pipeline on the embedded default (``run_lsst_consumer.sh --demo``).

Starts a local Kafka-protocol broker and publishes a night of sample alerts to it (several
schema versions, some Solar-System alerts, a few ANTARES locus messages and a few broken
messages), starts an embedded PostgreSQL and loads sample Fink alerts into it, then runs
the real cron wrapper against both and shows what it produced under ./demo_output.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from alert_pipeline.consumer.records import LIGHTCURVE
from alert_pipeline.steps import STEPS

from . import fink_samples
from .factory import AlertFactory, encode_antares_locus, malformed_messages
from .local import kafka_broker, postgres_server

REPO = Path(__file__).resolve().parents[1]
#: Where the demo's outputs go (emptied first): ./demo_output, or DEMO_OUTPUT_DIR (the tests'
#: own directory, so that a test run never touches a user's demo outputs).
OUTPUT = Path(os.environ.get("DEMO_OUTPUT_DIR") or REPO / "demo_output")
TOPIC = "lsst-extendedness-filtered"
VERSIONS = (("11.1", 120), ("11.0", 20), ("10.0", 20), ("9.0", 10), ("7.4", 10))


def night_of_alerts(seed: int = 2026) -> list[bytes]:
    """Framed alerts of several schema versions, Solar-System alerts, ANTARES loci, junk."""
    rng = random.Random(seed)
    messages = []
    for version, count in VERSIONS:
        factory = AlertFactory(version, seed=seed)
        for _ in range(count):
            messages.append(factory.frame(factory.alert(solar_system=rng.random() < 0.1)))
    for index in range(5):
        messages.append(encode_antares_locus({
            "id": f"ANT2026demo{index:03d}", "ra": rng.uniform(0, 360), "dec": rng.uniform(-60, 10),
            "properties": {"newest_alert_id": f"lsst_alert:{900000 + index}", "survey": {"lsst": {
                "dia_object_id": [800000 + index]}}, "lsstext_extendedness_median": 0.5,
                "lsstext_extendedness_min": 0.25, "lsstext_extendedness_max": 0.75}, "tags": []}))
    messages.extend(value for _, value in malformed_messages(AlertFactory("11.1", seed=seed)))
    rng.shuffle(messages)
    return messages


def publish(bootstrap: str, messages: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "snappy", "linger.ms": 20,
                         "message.max.bytes": 8388608})
    for value in messages:
        producer.produce(TOPIC, value)
        producer.poll(0)
    producer.flush(30)


def show_tree(root: Path) -> None:
    print(f"\nOutputs under {root}:")
    for directory in sorted(p for p in root.rglob("*") if p.is_dir() and "postgres" not in p.parts):
        files = sorted(p for p in directory.iterdir() if p.is_file())
        if not files:
            continue
        shown = ", ".join(p.name for p in files[:3]) + (f", … ({len(files)} files)" if len(files) > 3 else "")
        print(f"  {directory.relative_to(root)}/: {shown}")


def step_order() -> str:
    """The wrapper's steps in their order, as ``alert_pipeline.steps`` declares them (the
    demo runs the real wrapper, so it names what the wrapper runs, never a list of its own)."""
    return " → ".join(step.name for step in STEPS)


def count_cutout_files(cutouts: Path) -> tuple[int, int]:
    """(cutouts, light curves) in the consumer's cutouts/ directory: both are FITS files
    there, told apart by the light curve's ``_lightcurve_`` in the name."""
    names = [path.name for path in cutouts.iterdir() if path.is_file()]
    light_curves = sum(f"_{LIGHTCURVE}_" in name for name in names)
    return len(names) - light_curves, light_curves


def summary(output: Path) -> str:
    """The demo's last line: what the night left on disk, counted from the files themselves."""
    alerts, storehouse = output / "lsst_alerts", output / "event_storehouse"
    csv_files = sorted((alerts / "data").glob("lsst_alerts_*.csv"))
    rows = sum(len(path.read_text().splitlines()) - 1 for path in csv_files)
    cutouts, light_curves = count_cutout_files(alerts / "cutouts")
    quarantined = len(list((alerts / "quarantine").glob("*.json")))
    roster = json.loads((storehouse / "transient" / "roster.json").read_text())
    bodies = json.loads((storehouse / "minor_body" / "roster.json").read_text())
    return (f"Summary: {rows} CSV rows in {', '.join(path.name for path in csv_files)}; "
            f"{cutouts} cutouts + {light_curves} light curves; {quarantined} quarantined; "
            f"{roster['objects']} transient slots {roster['by_subtype']}; "
            f"{bodies['objects']} minor-body slots {bodies['by_subtype']}")


def main() -> int:
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir()
    messages = night_of_alerts()
    fink_file = OUTPUT / "fink_latests.json"
    fink_file.write_text(json.dumps(fink_samples.dataset(seed=1)))
    print(f"Demo: {len(messages)} Kafka messages to publish, {fink_file.name} with sample Fink alerts")
    with kafka_broker() as broker, postgres_server() as database_url:
        publish(broker.bootstrap_servers, messages)
        print(f"Demo: local Kafka broker at {broker.bootstrap_servers}, topic {TOPIC}; embedded PostgreSQL running")
        subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-fink", "--dsn", database_url,
                        str(fink_file)], check=True)
        env = dict(os.environ, PYTHON=sys.executable, DATABASE_URL=database_url,
                   LSST_CONSUMER_BOOTSTRAP_SERVERS=broker.bootstrap_servers, LSST_CONSUMER_TOPIC=TOPIC,
                   LSST_CONSUMER_GROUP_ID="demo", LSST_CONSUMER_OUTPUT_DIR=str(OUTPUT / "lsst_alerts"),
                   LSST_CONSUMER_IDLE_TIMEOUT="20", LSST_CONSUMER_KAFKA_SESSION_TIMEOUT_MS="2000",
                   LSST_CONSUMER_KAFKA_HEARTBEAT_INTERVAL_MS="500", EVENT_STOREHOUSE=str(OUTPUT / "event_storehouse"),
                   LOG_FILE=str(OUTPUT / "run_lsst_consumer.log"))
        print(f"Demo: running ./run_lsst_consumer.sh ({step_order()}) ...")
        status = subprocess.run([str(REPO / "run_lsst_consumer.sh")], env=env).returncode
    print((OUTPUT / "run_lsst_consumer.log").read_text())
    show_tree(OUTPUT)
    print(f"\n{summary(OUTPUT)}")
    reports = sorted((OUTPUT / "lsst_alerts" / "reports").glob("lsst_alerts_????????.html"))
    for report in reports:
        print(f"Report: {report}  (open it in a browser)")
    print(f"Demo finished with exit status {status}. Outputs: {OUTPUT}")
    return status


if __name__ == "__main__":
    sys.exit(main())
