"""The run loop's handling of broker-side failures that the local broker cannot produce
(it has no SASL/TLS): unit tests of pure logic with real KafkaError objects."""

from __future__ import annotations

import io

import pytest
from confluent_kafka import KafkaError, KafkaException

from alert_pipeline.consumer.config import ConsumerConfig
from alert_pipeline.consumer.kafka_source import BrokerError, KafkaSource
from alert_pipeline.consumer.runner import _progress
from alert_pipeline.consumer.summary import RunSummary
from alert_pipeline.exitcodes import EXIT_SERVICE


def make_run(**settings) -> KafkaSource:
    config = ConsumerConfig(kafka_config={"bootstrap.servers": "broker.example:9092", "group.id": "g",
                                          "sasl.password": "hunter2"}, topics=["alerts"], output_dir="unused",
                            **settings)
    source = KafkaSource(config)
    source.summary = RunSummary()  # what the runner would add up
    return source


def consume_all(source: KafkaSource, consumer) -> None:
    """Drive the source's poll loop as the runner does, counting what it hands out."""
    source._consumer = consumer
    for batch in source._poll(lambda: 500):
        source.summary.consumed += len(batch)


class ErrorMessage:
    def __init__(self, code: int) -> None:
        self._error = KafkaError(code)

    def error(self) -> KafkaError:
        return self._error

    def topic(self) -> str:
        return "alerts"

    def partition(self) -> int:
        return 0


class FailingConsumer:
    """list_topics times out (as librdkafka does when every connection is refused)."""

    def list_topics(self, timeout: float):
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))


class ErrorStreamConsumer:
    """Hands out one authentication error, as librdkafka does mid-run."""

    def consume(self, num_messages: int, timeout: float):
        return [ErrorMessage(KafkaError._AUTHENTICATION)]


def test_authentication_error_reported_during_connect_is_named():
    run = make_run(connect_timeout=1)
    run._on_error(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED))
    with pytest.raises(BrokerError) as caught:
        run._check_topics(FailingConsumer())
    message = str(caught.value)
    assert "authentication failed" in message and "broker.example:9092" in message
    assert "hunter2" not in message
    assert caught.value.exit_code == EXIT_SERVICE


def test_authentication_error_mid_run_stops_the_loop_with_a_broker_error():
    run = make_run(connect_timeout=60)
    with pytest.raises(BrokerError, match="authentication failed"):
        consume_all(run, ErrorStreamConsumer())
    assert run.summary.consumed == 0  # nothing processed, so nothing committed


def test_transient_errors_are_not_fatal():
    run = make_run()
    run._on_error(KafkaError(KafkaError._TRANSPORT))
    assert run.fatal is None


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_line_only_on_a_terminal(monkeypatch, tty):
    stderr = Terminal(tty)
    monkeypatch.setattr("sys.stderr", stderr)
    _progress(RunSummary(consumed=12, written=10, quarantined=2))
    assert ("consumed 12" in stderr.getvalue()) is tty
