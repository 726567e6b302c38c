"""What every Kafka consumer of the pipeline runs with: the alert consumer's and the
builder's GCN consumer both start from these (the user's settings may override the
defaults, never the required ones)."""

from __future__ import annotations

from typing import Any

#: Consumer settings chosen for cron runs; the user's kafka_config may override them. Why
#: these values (group-join and queue-refill times measured on the local broker): README,
#: "Performance".
KAFKA_DEFAULTS: dict[str, Any] = {
    "session.timeout.ms": 10000,
    "heartbeat.interval.ms": 2000,
    "fetch.wait.max.ms": 100,
    "fetch.queue.backoff.ms": 20,
    "allow.auto.create.topics": False,
}
#: Settings the delivery guarantees depend on; these always win.
KAFKA_REQUIRED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
}
