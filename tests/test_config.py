"""Configuration: defaults < TOML < environment < command line; secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_pipeline.consumer.clients import KAFKA_DEFAULTS, KAFKA_REQUIRED
from alert_pipeline.consumer.config import build_parser, load_config
from alert_pipeline.errors import ConfigError
from alert_pipeline.masking import mask_secrets

REPO = Path(__file__).resolve().parent.parent
DEFAULTS = {"kafka_config": {"bootstrap.servers": "localhost:9092", "group.id": "lsst-alert-consumer",
                             "auto.offset.reset": "earliest"},
            "topic": "lsst-extendedness-filtered"}


def load(argv=(), environ=None):
    args = build_parser("test", "", "").parse_args(list(argv))
    return load_config(DEFAULTS, args, environ or {})


def test_defaults_are_the_readme_values():
    config = load()
    assert config.topics == ["lsst-extendedness-filtered"] and config.output_dir == "./lsst_alerts"
    assert config.kafka_config["auto.offset.reset"] == "earliest"


def test_precedence_file_then_environment_then_command_line(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('topic = ["from-file"]\noutput_dir = "/file"\nidle_timeout = 5\n'
                    '[kafka_config]\n"group.id" = "file-group"\n"fetch.min.bytes" = 7\n')
    environ = {"LSST_CONSUMER_CONFIG": str(toml), "LSST_CONSUMER_OUTPUT_DIR": "/env",
               "LSST_CONSUMER_GROUP_ID": "env-group", "LSST_CONSUMER_CONNECT_TIMEOUT": "7.5"}
    config = load([], environ)
    assert config.connect_timeout == 7.5
    assert (config.topics, config.output_dir, config.idle_timeout) == (["from-file"], "/env", 5.0)
    assert config.kafka_config["group.id"] == "env-group" and config.kafka_config["fetch.min.bytes"] == 7
    config = load(["--group-id", "cli-group", "--topic", "a", "--topic", "b", "--output-dir", "/cli"], environ)
    assert config.kafka_config["group.id"] == "cli-group"
    assert config.topics == ["a", "b"] and config.output_dir == "/cli"


def test_librdkafka_settings_pass_through_and_delivery_settings_always_win(tmp_path):
    environ = {"LSST_CONSUMER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LSST_CONSUMER_KAFKA_ENABLE_AUTO_COMMIT": "true",
               "LSST_CONSUMER_KAFKA_SCHEMA_REGISTRY_URL": "http://registry:8081"}
    settings = load([], environ).librdkafka_config()
    assert settings["security.protocol"] == "SASL_SSL"
    for key, value in KAFKA_REQUIRED.items():
        assert settings[key] == value
    assert settings["session.timeout.ms"] == KAFKA_DEFAULTS["session.timeout.ms"]
    assert settings["fetch.queue.backoff.ms"] == 20  # librdkafka's 1000 ms stalled heavy streams
    assert "schema.registry.url" not in settings  # ours, stripped before librdkafka
    tuned = load([], {"LSST_CONSUMER_KAFKA_FETCH_QUEUE_BACKOFF_MS": "250"}).librdkafka_config()
    assert tuned["fetch.queue.backoff.ms"] == "250"  # a default, not a rule: the user's value wins


def test_secrets_from_environment_or_file_are_masked(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text("from-a-file\n")
    config = load([], {"LSST_CONSUMER_KAFKA_SASL_USERNAME": "user",
                       "LSST_CONSUMER_KAFKA_SASL_PASSWORD_FILE": str(secret_file)})
    assert config.kafka_config["sasl.password"] == "from-a-file"
    shown = str(config.masked())
    assert "from-a-file" not in shown and "user" in shown
    assert mask_secrets({"ssl.key.password": "x", "sasl.oauthbearer.client.secret": "y", "ssl.key.location": "/k",
                         "basic.auth.user.info": "u:p"}) == {
        "ssl.key.password": "***", "sasl.oauthbearer.client.secret": "***", "ssl.key.location": "/k",
        "basic.auth.user.info": "***"}


def test_clear_errors_for_bad_configuration(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("topic = [unclosed\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(["--config", str(bad)])
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(["--config", str(tmp_path / "missing.toml")])
    with pytest.raises(ConfigError, match="LSST_CONSUMER_KAFKA_SASL_PASSWORD_FILE"):
        load([], {"LSST_CONSUMER_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="schema_version"):
        load(["--framing", "schemaless"])
    with pytest.raises(ConfigError, match="at least 1"):
        load(["--workers", "0"])
    with pytest.raises(ConfigError, match="framing must be one of auto, confluent"):  # decode's own check
        load([], {"LSST_CONSUMER_FRAMING": "protobuf"})


def test_example_config_loads_as_shipped():
    config = load(["--config", str(REPO / "config.example.toml")])
    assert config.topics == ["lsst-extendedness-filtered"] and config.batch_size == 500
    assert (config.ledger_window_days, config.retention_days, config.parquet) == (7, 30, False)


def test_every_setting_has_one_flag_one_variable_and_one_toml_key(tmp_path):
    """Each setting declared once reaches the config from all three places, typed."""
    from alert_pipeline.consumer.config import SETTINGS
    samples = {int: ("3", 3), float: ("2.5", 2.5), str: ("11.1", "11.1"), bool: ("false", False)}
    special = {"output_dir": ("/x", "/x"), "framing": ("ocf", "ocf"), "log_level": ("ERROR", "ERROR"),
               "instance_id": ("east", "east"), "max_message_bytes": ("4096", 4096),
               "max_decompressed_bytes": ("4096", 4096), "max_cutout_bytes": ("4096", 4096),
               "metrics_file": (f"{tmp_path}/lsst.prom", f"{tmp_path}/lsst.prom"), "decoder": ("fastavro", "fastavro"),
               "bootstrap_servers": ("broker.example:9093", "broker.example:9093"), "group_id": ("nightly", "nightly"),
               "topic": ("alerts-b", "alerts-b")}

    def effective(config, setting):  # where the value lands: a field, kafka_config, or the topics
        if setting.kafka_key:
            return config.kafka_config[setting.kafka_key]
        return config.topics[0] if setting.name == "topic" else getattr(config, setting.name)

    assert [s.name for s in SETTINGS[:3]] == ["bootstrap_servers", "topic", "group_id"]  # declared like the others
    for setting in SETTINGS:
        text, value = special.get(setting.name, samples[setting.kind])
        from_env = load([], {setting.variable: text})
        toml = tmp_path / f"{setting.name}.toml"
        toml.write_text(f"{setting.name} = {value!r}\n".replace("False", "false").replace("'", '"'))
        from_file = load(["--config", str(toml)])
        argv = [f"--no-{setting.flag[2:]}"] if setting.kind is bool else [setting.flag, text]
        from_cli = load(argv)
        assert effective(from_env, setting) == effective(from_file, setting) == \
            effective(from_cli, setting) == value, setting.name


@pytest.mark.parametrize(("variable", "key"), [
    ("LSST_CONSUMER_KAFKA_SASL_PASSWORD", "sasl.password"),
    ("LSST_CONSUMER_KAFKA_SASL_OAUTHBEARER_CLIENT__ID", "sasl.oauthbearer.client-id"),
    ("LSST_CONSUMER_KAFKA_SOME___WEIRD_KEY", "some_weird.key"),
])
def test_confluent_env_naming_for_librdkafka_keys(variable, key):
    from alert_pipeline.consumer.config import kafka_key_from_env
    assert kafka_key_from_env(variable.removeprefix("LSST_CONSUMER_KAFKA_")) == key


def test_librdkafka_keys_and_values_are_checked_when_the_config_is_loaded():
    assert load([], {"LSST_CONSUMER_KAFKA_SASL_PASSWORD": "v"}).kafka_config["sasl.password"] == "v"
    with pytest.raises(ConfigError, match="some_weird.key"):
        load([], {"LSST_CONSUMER_KAFKA_SOME___WEIRD_KEY": "v"})
    with pytest.raises(ConfigError, match="session.timeout.ms"):
        load([], {"LSST_CONSUMER_KAFKA_SESSION_TIMEOUT_MS": "soon"})
