"""One consumer instance against two instances of one group, on a 4-partition topic.

Produces M heavy alerts (v11.1, 30+30 history, three 60×60 cutouts) spread over 4
partitions of a local Tansu broker, then times, in one run: one instance reading the whole
topic, and two instances of one group (``--instance-id east`` / ``west``, one shared output
directory) started together, until both have finished. Each figure is the best of
``--repeat`` rounds, each into a fresh group and directory. The broker runs on the same
two cores, so the figure shows what a second instance gains on this machine, not on two.

    .venv/bin/python benchmarks/consumer_instances.py [--count M] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

from _common import REPO, framed_alerts, produce
from confluent_kafka.admin import AdminClient, NewTopic

from devtools.local import start_broker


def run(bootstrap: str, topic: str, instances: list[str], output: str) -> float:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    env = os.environ | {"LSST_CONSUMER_BOOTSTRAP_SERVERS": bootstrap, "LSST_CONSUMER_TOPIC": topic,
                        "LSST_CONSUMER_GROUP_ID": group, "LSST_CONSUMER_OUTPUT_DIR": output,
                        "LSST_CONSUMER_IDLE_TIMEOUT": "10", "LSST_CONSUMER_KAFKA_SESSION_TIMEOUT_MS": "2000",
                        "LSST_CONSUMER_KAFKA_HEARTBEAT_INTERVAL_MS": "500", "PYTHONPATH": REPO}
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, os.path.join(REPO, "lsst_alert_consumer.py")],
                                  env={**env, "LSST_CONSUMER_INSTANCE_ID": name} if name else env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in instances]
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError(process.stderr.read().decode()[-2000:])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    values = framed_alerts("b: v11.1, 30+30 history", args.count)
    broker = start_broker()
    try:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})  # kept alive for the result
        admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
        produce(broker.bootstrap_servers, topic, values, partitions=4)
        del admin  # closed before the broker stops
        best = {1: float("inf"), 2: float("inf")}
        with tempfile.TemporaryDirectory() as directory:
            for round_number in range(args.repeat):
                for count, names in ((1, [""]), (2, ["east", "west"])):
                    output = os.path.join(directory, f"{count}-{round_number}")
                    best[count] = min(best[count], run(broker.bootstrap_servers, topic, names, output))
        print(f"{args.count} alerts of {len(values[0]) // 1024} kB on 4 partitions (best of {args.repeat}):")
        print(f"  one instance                  {best[1]:7.2f} s   {args.count / best[1]:6.0f} alerts/s")
        print(f"  two instances, one group      {best[2]:7.2f} s   {args.count / best[2]:6.0f} alerts/s   "
              f"ratio {best[1] / best[2]:.2f}x one instance")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
