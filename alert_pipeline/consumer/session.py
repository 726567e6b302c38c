"""One consumer run from start to exit code: source, consumer, runner, history, metrics.

Every outcome becomes one of the documented exit codes (``alert_pipeline.exitcodes``)
and one line in ``state/runs.jsonl``, whether the run finished, failed or was stopped
by a signal.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from alert_pipeline.consumer.config import ConsumerConfig
from alert_pipeline.consumer.history import append_run, last_runs, run_record, write_metrics
from alert_pipeline.consumer.processing import AlertConsumer
from alert_pipeline.consumer.replay import TimeWindow
from alert_pipeline.consumer.summary import RunSummary
from alert_pipeline.exitcodes import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_NOTHING_WRITTEN,
    EXIT_OK,
    EXIT_OUTPUT,
    Failure,
    exit_code_for,
)
from alert_pipeline.masking import mask_text

log = logging.getLogger("lsst_alert_consumer")
#: The clock runs read when none is passed; None: the wall clock. Replaced only by the test
#: launcher (``devtools/clock.py``), for runs that cross midnight.
default_clock: Callable[[], dt.datetime] | None = None


def set_default_clock(clock: Callable[[], dt.datetime] | None) -> None:
    global default_clock
    default_clock = clock


def run_session(config: ConsumerConfig, consumer_class: type[AlertConsumer], files: list[str] | None = None,
                window: TimeWindow | None = None, clock: Any = None) -> int:
    """Run once and return the exit code; the run is recorded however it ends."""
    clock = clock or default_clock
    from alert_pipeline.consumer.kafka_source import KafkaSource, describe
    from alert_pipeline.consumer.replay import ReplaySource
    from alert_pipeline.consumer.runner import run
    from alert_pipeline.consumer.sources import FileSource
    started = dt.datetime.now(dt.UTC)
    summary = RunSummary(mode="files" if files else "replay" if window else "group")
    target = f"files={len(files)}" if files else describe(config)
    log.info("LSST Alert Consumer starting: %s%s", target, f" replay {window.describe()}" if window else "")
    if window is not None:
        _warn_beyond_ledger(window, config.ledger_window_days, started)
    app: AlertConsumer | None = None
    try:
        source = (FileSource(files, config.max_message_bytes) if files
                  else ReplaySource(config, window) if window else KafkaSource(config))
        app = consumer_class(config)
        log.info("decoder: %s for Confluent-framed and schemaless Avro (container files: fastavro; ANTARES loci: "
                 "antares-client)", app.decoder.name)
        run(app, source, clock, summary)
        _log_finish(summary, window)
        _log_decoders(app, summary)
        code, error = _nothing_written(summary), ""
        if config.parquet:
            code, error = _write_parquet(config, code)
    except Exception as exc:  # noqa: BLE001 - every error becomes a documented exit code
        failure = exit_code_for(exc, _failures(config, started=app is not None))
        if failure is None:  # a bug: say so, with the traceback
            log.exception("LSST Alert Consumer failed with an unexpected error")
            code, error = EXIT_FAILURE, f"{type(exc).__name__}: {exc}"
        else:
            code, error = failure.code, failure.detail(exc)
    finally:
        if app is not None:
            app.close()
    if error and code != EXIT_FAILURE:
        log.error("LSST Alert Consumer failed: %s", error)
    _record(config, summary, started, code, mask_text(error), app.decoder.name if app else "", window)
    return code


def _failures(config: ConsumerConfig, started: bool) -> tuple[Failure, ...]:
    """The run's exception → exit-code table (``exitcodes.exit_code_for``; a ``ServiceError``
    carries its own code): the output's message depends on whether the consumer had started."""
    from alert_pipeline.consumer.sources import InputError
    from alert_pipeline.consumer.store import InstanceBusyError

    def output(exc: BaseException) -> str:
        if started:
            return (f"cannot write output ({exc}); the batch was not committed and will be read again next run. "
                    f"Check free space and permissions of {config.output_dir}.")
        return f"output directory {config.output_dir} is not usable: {exc}"
    return (Failure((InputError, InstanceBusyError), EXIT_CONFIG), Failure((OSError,), EXIT_OUTPUT, detail=output))


def _write_parquet(config: ConsumerConfig, code: int) -> tuple[int, str]:
    """The Parquet files of the days the CSVs changed (the batches are already committed)."""
    from alert_pipeline.consumer.parquet import ParquetDaysError, refresh_parquet
    try:
        made = refresh_parquet(config.output_dir, config.instance_id)
    except ParquetDaysError as exc:
        return EXIT_OUTPUT, (f"the CSV files are written and committed; some days have no Parquet copy because "
                             f"their CSV cannot be read ({exc}): repair or move those files, the other days' "
                             f"Parquet files are written.")
    except OSError as exc:
        return EXIT_OUTPUT, (f"the CSV files are written and committed, but their Parquet copy could not be written "
                             f"({exc}); the next run makes it. Check free space and permissions of "
                             f"{config.output_dir}/data.")
    if made:
        log.info("parquet: wrote %s", ", ".join(path.name for path in made))
    return code, ""


def _nothing_written(summary: RunSummary) -> int:
    """EXIT_NOTHING_WRITTEN, with a warning naming the main reason, when the run consumed
    messages and quarantined every one (the wrong topic, a broken producer): a broken
    stream is noticed the first night, not the tenth. Else EXIT_OK."""
    if not summary.consumed or summary.written or summary.duplicates or not summary.quarantined:
        return EXIT_OK
    reason, count = summary.quarantine_reasons.most_common(1)[0]
    log.warning("LSST Alert Consumer wrote nothing: all %d consumed messages were quarantined, mostly %s (%d); "
                "see quarantine/ (exit code %d)", summary.consumed, reason, count, EXIT_NOTHING_WRITTEN)
    return EXIT_NOTHING_WRITTEN


def _warn_beyond_ledger(window: TimeWindow, ledger_days: int, now: dt.datetime) -> None:
    """A replay reaching back past the ledger window may write alerts a second time: the
    ledger no longer holds the ids of alerts written that long ago. Said before it starts."""
    oldest = now - dt.timedelta(days=ledger_days)
    if window.start is None or window.start < oldest:
        log.warning("the replay starts before the ledger window (ledger_window_days = %d, back to %s): alerts "
                    "written before then are not known to the ledger and are written again if they are in "
                    "the window; raise ledger_window_days to cover it, or replay into another --output-dir",
                    ledger_days, oldest.isoformat(timespec="seconds"))


def _log_decoders(app: AlertConsumer, summary: RunSummary) -> None:
    """Which library actually decoded the run's messages (the configured decoder reads only
    Confluent-framed and schemaless records)."""
    used: Counter = Counter()
    for label, count in summary.schemas.items():
        if library := app.decoder.library_for(label):
            used[library] += count
    if used:
        log.info("decoded by: %s", ", ".join(f"{name} ({count} messages)" for name, count in used.most_common()))


def _log_finish(summary: RunSummary, window: TimeWindow | None) -> None:
    if summary.mode == "files":
        log.info("LSST Alert Consumer finished: written=%d duplicates_skipped=%d quarantined=%d cutouts=%d "
                 "files=%s", summary.written, summary.duplicates, summary.quarantined, summary.cutouts,
                 ",".join(sorted(summary.csv_files)))
    elif window is not None:
        log.info("LSST Alert Consumer finished replay %s: %s", window.describe(), summary.line())
    else:
        log.info("LSST Alert Consumer finished: %s", summary.line())


def _record(config: ConsumerConfig, summary: RunSummary, started: dt.datetime, code: int, error: str,
            decoder: str, window: TimeWindow | None) -> None:
    """Append the run to the history and write the metrics; never changes the exit code."""
    try:
        previous = last_runs(config.output_dir, 1)
        record = run_record(started=started, ended=dt.datetime.now(dt.UTC), summary=summary, exit_code=code,
                            configuration=config.masked(), decoder=decoder, error=error,
                            window=window.describe() if window else "", previous=previous[-1] if previous else None)
        append_run(config.output_dir, record)
        if config.metrics_file:
            write_metrics(config.metrics_file, record, config.output_dir)
    except OSError as exc:
        log.warning("could not record the run in %s/state/runs.jsonl or the metrics file: %s", config.output_dir, exc)
