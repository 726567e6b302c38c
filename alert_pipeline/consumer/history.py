"""What each run did: ``state/runs.jsonl`` (one JSON line per run) and Prometheus metrics.

The history answers "what happened last night?" after the fact: ``lsst_alert_consumer.py
--history [N]`` prints it as a table. The metrics file follows node_exporter's textfile
collector convention (a ``*.prom`` file replaced atomically), so a cron deployment can
alert on "no alert written for two nights" (``lsst_alert_consumer_last_alert_written_
timestamp_seconds``) or a growing quarantine (``lsst_alert_consumer_quarantined_messages``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from alert_pipeline.consumer.layout import OutputLayout
from alert_pipeline.consumer.summary import RunSummary
from alert_pipeline.durable import append_durably, write_atomically

#: The history is trimmed to its newest half when it grows past this (years of hourly runs).
MAX_HISTORY_BYTES = 8 * 1024 * 1024
PACKAGES = ("confluent-kafka", "fastavro", "lsst-alert-packet", "astropy", "antares-client")


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def package_versions() -> dict[str, str]:
    """The versions a run's results depend on."""
    import confluent_kafka

    versions = {"python": platform.python_version(), "librdkafka": confluent_kafka.libversion()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_record(*, started: dt.datetime, ended: dt.datetime, summary: RunSummary, exit_code: int,
               configuration: Mapping[str, Any], decoder: str, error: str = "",
               window: str = "", previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One history line. ``configuration`` must already be masked."""
    last_written = iso(ended) if summary.written else (previous or {}).get("last_alert_written_at")
    return {
        "started_at": iso(started), "ended_at": iso(ended), "elapsed_seconds": round(summary.elapsed, 3),
        "mode": summary.mode, "window": window, "instance": configuration.get("instance_id") or "",
        "exit_code": exit_code, "stop_reason": summary.stop_reason or ("error" if exit_code else ""),
        "error": error, "consumed": summary.consumed, "written": summary.written,
        "duplicates_skipped": summary.duplicates, "quarantined": summary.quarantined,
        "quarantined_by_reason": dict(sorted(summary.quarantine_reasons.items())),
        "cutouts": summary.cutouts, "schemas": dict(sorted(summary.schemas.items())),
        "partitions": {name: progress._asdict() for name, progress in sorted(summary.partitions.items())},
        "csv_files": sorted(summary.csv_files), "recovered": summary.recovered,
        "last_alert_written_at": last_written, "decoder": decoder, "versions": package_versions(),
        "configuration": json.loads(json.dumps(configuration, default=str)),
    }


def append_run(output_dir: str, record: Mapping[str, Any]) -> str:
    """Append ``record`` to the history (one write, fsynced); returns the file's path."""
    path = OutputLayout.at(output_dir).history
    os.makedirs(os.path.dirname(path), exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    if not os.path.exists(path):
        write_atomically(path, b"")
    elif os.path.getsize(path) + len(line) > MAX_HISTORY_BYTES:
        _trim(path)
    if not _ends_a_line(path):
        line = b"\n" + line  # a run killed mid-append left a torn line: keep this one whole
    append_durably(path, line)
    return path


def _ends_a_line(path: str) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _trim(path: str) -> None:
    with open(path, "rb") as handle:
        handle.seek(-MAX_HISTORY_BYTES // 2, os.SEEK_END)
        kept = handle.read()
    write_atomically(path, kept[kept.find(b"\n") + 1:])


def last_runs(output_dir: str, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` complete records, oldest first (a torn line is skipped). Reads
    the file from its end, a growing block at a time, not the whole history per run."""
    path = OutputLayout.at(output_dir).history
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return []
    with handle:
        size = handle.seek(0, os.SEEK_END)
        block = 64 * 1024
        while True:
            start = max(0, size - block)
            handle.seek(start)
            lines = handle.read().split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first line may begin before the block
            found = []
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if well_formed(record):
                    found.append(record)
            if len(found) >= count or start == 0:
                return found[-count:]
            block *= 4


_NUMBER = (int, float)
#: What every history line the tools read must hold, by type (a line is input: a torn,
#: hand-edited or planted line that lacks one is skipped, never trusted).
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "started_at": (str,), "ended_at": (str,), "elapsed_seconds": _NUMBER, "mode": (str,), "instance": (str,),
    "exit_code": (int,), "stop_reason": (str,), "consumed": (int,), "written": (int,),
    "duplicates_skipped": (int,), "quarantined": (int,), "quarantined_by_reason": (dict,), "cutouts": (int,),
    "partitions": (dict,), "last_alert_written_at": (str, type(None)), "decoder": (str,),
}


def well_formed(record: Any) -> bool:
    """Whether a parsed history line is a run record the tools can read: an object with
    every ``RECORD_FIELDS`` key of its type, times that parse, counts per reason and
    partitions of the shapes the history and the metrics use."""
    if not isinstance(record, dict):
        return False
    for key, kinds in RECORD_FIELDS.items():
        value = record.get(key)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return False
    try:
        for key in ("started_at", "ended_at", "last_alert_written_at"):
            _timestamp(record[key])
    except (ValueError, OverflowError):
        return False
    return (all(isinstance(count, int) for count in record["quarantined_by_reason"].values())
            and all(isinstance(name, str) and "[" in name and isinstance(progress, dict)
                    and isinstance(progress.get("lag"), int | None) for name, progress in record["partitions"].items()))


COLUMNS = (("started (UTC)", lambda r: r["started_at"].replace("T", " ").rstrip("Z")),
           ("instance", lambda r: r["instance"] or "-"), ("mode", lambda r: r["mode"]),
           ("exit", lambda r: r["exit_code"]),
           ("stop", lambda r: r["stop_reason"]), ("seconds", lambda r: f"{r['elapsed_seconds']:.0f}"),
           ("consumed", lambda r: r["consumed"]), ("written", lambda r: r["written"]),
           ("dups", lambda r: r["duplicates_skipped"]), ("quarantined", lambda r: r["quarantined"]),
           ("cutouts", lambda r: r["cutouts"]),
           ("lag", lambda r: sum(p["lag"] or 0 for p in r["partitions"].values()) if r["partitions"] else "-"))


def history_table(records: list[dict[str, Any]]) -> str:
    """The records as an aligned text table, newest last."""
    if not records:
        return "no runs recorded yet"
    rows = [[title for title, _ in COLUMNS]]
    rows += [[str(cell(record)) for _, cell in COLUMNS] for record in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


# ---------------------------------------------------------------------------- metrics
PREFIX = "lsst_alert_consumer_"


def _timestamp(text: str | None) -> float | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def metrics_registry(record: Mapping[str, Any], quarantine_files: int) -> Any:
    """A prometheus_client registry holding one run record's gauges, each labelled with
    the consumer instance."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    instance = str(record["instance"])

    def gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        labels = ["consumer_instance", *(samples[0][0] if samples else {})]
        metric = Gauge(f"{PREFIX}{name}", help_text, labels, registry=registry)
        for extra, value in samples:
            if value is not None:
                metric.labels(consumer_instance=instance, **extra).set(value)

    def one(value: Any) -> list[tuple[dict[str, str], Any]]:
        return [({}, value)]

    gauge("last_run_start_timestamp_seconds", "When the last run started (Unix time).",
          one(_timestamp(record["started_at"])))
    gauge("last_run_end_timestamp_seconds", "When the last run ended (Unix time).", one(_timestamp(record["ended_at"])))
    gauge("last_run_exit_code", "Exit code of the last run (0 = finished).", one(record["exit_code"]))
    gauge("last_run_duration_seconds", "How long the last run took.", one(record["elapsed_seconds"]))
    for name, key, text in (("messages_consumed", "consumed", "Messages the last run read."),
                            ("alerts_written", "written", "Alerts the last run wrote to the CSV."),
                            ("duplicates_skipped", "duplicates_skipped", "Alerts skipped as already written."),
                            ("cutouts_written", "cutouts", "Cutout files the last run wrote.")):
        gauge(f"last_run_{name}", text, one(record[key]))
    gauge("last_run_quarantined", "Messages or parts the last run quarantined, by reason.",
          [({"reason": str(reason)}, count) for reason, count in record["quarantined_by_reason"].items()]
          or [({"reason": ""}, 0)])  # an empty label is no label: the same series as before 2026-12
    gauge("last_alert_written_timestamp_seconds", "When a run last wrote at least one alert (Unix time).",
          one(_timestamp(record["last_alert_written_at"])))
    gauge("quarantined_messages", "Quarantined messages kept in the output directory.", one(quarantine_files))
    gauge("partition_lag", "Messages behind the end of each partition when the last run ended.",
          [({"topic": name.rsplit("[", 1)[0], "partition": name.rsplit("[", 1)[1].rstrip("]")}, progress["lag"])
           for name, progress in record["partitions"].items()] or [({"topic": "", "partition": ""}, None)])
    gauge("last_run_info", "The last run's mode and decoder.",
          [({"mode": str(record["mode"]), "decoder": str(record["decoder"])}, 1)])
    return registry


def write_metrics(path: str, record: Mapping[str, Any], output_dir: str) -> None:
    """Replace the metrics file atomically (the collector never reads half a file)."""
    try:
        quarantine_files = sum(1 for name in os.listdir(OutputLayout.at(output_dir).quarantine)
                               if name.endswith(".json"))
    except FileNotFoundError:
        quarantine_files = 0
    from prometheus_client import write_to_textfile

    write_to_textfile(path, metrics_registry(record, quarantine_files))  # a temp file renamed into place
