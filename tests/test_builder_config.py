"""One configuration system: the builder's settings declared with the consumer's machinery,
one TOML file with a table per part, --show-config for the builder, one exception →
exit-code mapper, and every default declared once (no restated literal in code or docs)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILDER = REPO / "transient_kind_builder.py"


def builder(*args, env=None, cwd=None):
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GCN_TOPICS")}
    return subprocess.run([sys.executable, str(BUILDER), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**environ, **(env or {})}, cwd=cwd)


def shown(*args, env=None):
    done = builder(*args, "--show-config", env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return tomllib.loads(done.stdout)


# ----------------------------------------------------------------- one TOML file, sections
ONE_FILE = """\
[consumer]
topic = "from-the-section"
retention_days = 12
[consumer.kafka_config]
"group.id" = "sectioned-group"

[builder]
storehouse = "/srv/storehouse"
table = "fink.events"

[gcn]
topics = "igwn.gwalert"
idle_timeout = 5.0

[tns]
radius_arcsec = 2.5

[crossmatch]
uhecr_radius_deg = 1.5
"""


def test_the_consumer_reads_its_section_of_the_one_file(tmp_path):
    from alert_pipeline.consumer.config import build_parser, configured_setting, load_config
    path = tmp_path / "pipeline.toml"
    path.write_text(ONE_FILE)
    args = build_parser("t", "", "").parse_args(["--config", str(path)])
    config = load_config({"kafka_config": {"bootstrap.servers": "b:9092", "group.id": "g"}, "topic": "t"}, args, {})
    assert config.topics == ["from-the-section"] and config.retention_days == 12
    assert config.kafka_config == {"bootstrap.servers": "b:9092", "group.id": "sectioned-group"}
    assert configured_setting("retention_days", str(path), {}) == 12  # the report's and the wrapper's reader


def test_the_consumers_flat_file_of_today_still_reads(tmp_path):
    from alert_pipeline.consumer.config import build_parser, load_config
    path = tmp_path / "flat.toml"
    path.write_text('topic = "flat"\nbatch_size = 7\n[kafka_config]\n"group.id" = "flat-group"\n'
                    '[crossmatch]\nnu_scale = 2.0\n')  # the builder's table beside it: not the consumer's
    args = build_parser("t", "", "").parse_args(["--config", str(path)])
    config = load_config({"kafka_config": {"bootstrap.servers": "b:9092", "group.id": "g"}, "topic": "t"}, args, {})
    assert (config.topics, config.batch_size, config.kafka_config["group.id"]) == (["flat"], 7, "flat-group")
    path.write_text('topic = "flat"\nbatch_sise = 7\n')
    from alert_pipeline.errors import ConfigError
    with pytest.raises(ConfigError, match="batch_sise"):  # a typo is still refused
        load_config({"kafka_config": {"bootstrap.servers": "b", "group.id": "g"}}, args, {})


def test_every_sub_command_reads_its_tables_of_the_one_file(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text(ONE_FILE)
    assert shown("build", "--config", path)["builder"] == {"table": "fink.events", "source": "fink_transients",
                                                           "storehouse": "/srv/storehouse"}
    assert shown("load-messengers", "--config", path)["gcn"] == {"topics": "igwn.gwalert", "idle_timeout": 5.0}
    assert shown("tns", "x.csv", "--config", path)["tns"] == {"radius_arcsec": 2.5}
    assert shown("crossmatch", "--config", path)["crossmatch"]["uhecr_radius_deg"] == 1.5
    assert shown("rebuild-index", "--config", path)["builder"]["storehouse"] == "/srv/storehouse"
    assert shown("--config", path)["builder"]["table"] == "fink.events"  # build, the default sub-command


def test_precedence_default_then_file_then_variable_then_flag(tmp_path):
    from alert_pipeline.storehouse.builder.settings import GCN_TOPICS
    path = tmp_path / "pipeline.toml"
    path.write_text(ONE_FILE)
    assert shown("load-messengers")["gcn"]["topics"] == GCN_TOPICS.default
    assert shown("load-messengers", "--config", path)["gcn"]["topics"] == "igwn.gwalert"
    env = {"GCN_TOPICS": "from.variable"}
    assert shown("load-messengers", "--config", path, env=env)["gcn"]["topics"] == "from.variable"
    assert shown("load-messengers", "--config", path, "--gcn-topics", "from.flag", env=env)["gcn"]["topics"] == \
        "from.flag"


def test_show_config_reads_back_and_masks_the_database_password(tmp_path):
    env = {"DATABASE_URL": "postgresql://alice:hunter2@db.example/fink"}
    first = builder("build", "--storehouse", tmp_path, "--table", "x.events", "--show-config", env=env)
    assert first.returncode == 0 and "hunter2" not in first.stdout + first.stderr
    table = tomllib.loads(first.stdout)["builder"]
    assert table["dsn"] == "postgresql://***@db.example/fink"
    again = tmp_path / "again.toml"
    again.write_text(first.stdout)
    assert shown("build", "--config", again)["builder"] == table


def test_a_bad_value_in_any_table_is_named_exit_2_no_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    for text, message in (("[tns]\nradius_arcsec = 0\n", "tns setting radius_arcsec = 0"),
                          ("[gcn]\nidle_timeout = -1\n", "gcn setting idle_timeout = -1"),
                          ("[builder]\nstorehous = \"/x\"\n", "unknown builder setting(s) storehous"),
                          ("builder = 3\n", "builder = 3 must be a table"),
                          ("[crossmatch]\nuhecr_radius_deg = 720\n", "uhecr_radius_deg = 720: must be a positive")):
        path.write_text(text)
        command = {"tns": ("tns", "f.csv"), "gcn": ("load-messengers", "--gcn")}.get(text.split("]")[0][1:],
                                                                                 ("crossmatch",))
        done = builder(*command, "--storehouse", tmp_path / "s", "--config", path)
        assert done.returncode == 2, (text, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------- one declaration each
def test_each_builder_setting_has_one_flag_one_key_and_its_help_from_the_declaration(tmp_path):
    from alert_pipeline.storehouse.builder.settings import SECTIONS
    commands = {"builder": "build", "gcn": "load-messengers", "tns": "tns", "crossmatch": "crossmatch",
                "galaxies": "hosts", "pages": "pages"}
    for section, settings in SECTIONS.items():
        help_text = "".join(builder(commands[section], "--help").stdout.split())  # argparse wraps long words
        for setting in settings:
            assert setting.flag in help_text, setting.name
            if setting.default is not None:
                shown_default = f"{setting.default:g}" if isinstance(setting.default, float) else setting.default
                assert f"(default{shown_default})" in help_text, setting.name
            if setting.kind is float and setting.name != "idle_timeout":
                path = tmp_path / f"{setting.name}.toml"
                value = 0.5 if setting.name != "radius_arcsec" else 0.75
                path.write_text(f"[{section}]\n{setting.name} = {value}\n")
                extra = ("f.csv",) if section == "tns" else ()
                assert shown(commands[section], *extra, "--config", path)[section][setting.name] == value


def test_the_crossmatch_rules_keep_their_flags_keys_and_ranges():
    from alert_pipeline.storehouse.builder.settings import CROSSMATCH
    from alert_pipeline.storehouse.kinds import match_rules
    Rules = match_rules()  # noqa: N806 - the class
    assert [(s.name, s.flag) for s in CROSSMATCH] == [
        ("gw_window_days", "--gw-window-days"), ("gw_credible_level", "--gw-credible-level"),
        ("nu_window_days", "--nu-window-days"), ("nu_scale", "--nu-scale"),
        ("uhecr_window_days", "--uhecr-window-days"), ("uhecr_radius_deg", "--uhecr-radius-deg"),
        ("grb_window_days", "--grb-window-days")]
    assert Rules.limits() == {"gw_window_days": 3650.0, "gw_credible_level": 1.0, "nu_window_days": 3650.0,
                              "nu_scale": 10.0, "uhecr_window_days": 3650.0, "uhecr_radius_deg": 30.0,
                              "grb_window_days": 3650.0}
    assert {s.name: s.default for s in CROSSMATCH} == {"gw_window_days": 14.0, "gw_credible_level": 0.9,
                                                       "nu_window_days": 30.0, "nu_scale": 1.0,
                                                       "uhecr_window_days": 365.0, "uhecr_radius_deg": 3.0,
                                                       "grb_window_days": 3.0}


def test_the_builders_defaults_are_the_modules_constants():
    import inspect

    from alert_pipeline.storehouse.builder import settings
    from alert_pipeline.storehouse.enrich import tns
    from alert_pipeline.storehouse.fink.db import DEFAULT_SOURCE, DEFAULT_TABLE
    from alert_pipeline.storehouse.messengers import gcn
    assert settings.TNS_RADIUS.default == tns.DEFAULT_RADIUS_ARCSEC
    assert settings.GCN_IDLE.default == inspect.signature(gcn.consume).parameters["idle_timeout"].default
    assert (settings.TABLE.default, settings.SOURCE.default) == (DEFAULT_TABLE, DEFAULT_SOURCE)
    assert settings.GCN_TOPICS.default.split(",") == list(gcn.DEFAULT_TOPICS)


def test_config_example_is_generated_from_the_declarations():
    """Like exitcodes.sh: the shipped example is the generator's output (regenerate with
    ``python -m alert_pipeline.example_config > config.example.toml``)."""
    from alert_pipeline.example_config import example
    assert (REPO / "config.example.toml").read_text() == example()
    parsed = tomllib.loads(example())
    assert {"consumer", "builder", "gcn", "tns", "crossmatch"} <= set(parsed)


# Restated defaults in files other engineers own, to be removed there (each must still be
# found: a fixed one must leave this list). (file, setting).
RESTATED_ELSEWHERE: set[tuple[str, str]] = set()
#: Where the defaults are declared (and the generated example, checked above).
DECLARING = {"alert_pipeline/consumer/config.py", "alert_pipeline/storehouse/builder/settings.py",
             "alert_pipeline/kafka_settings.py", "alert_pipeline/storehouse/messengers/rules.py",
             "alert_pipeline/storehouse/enrich/tns.py", "alert_pipeline/storehouse/fink/db.py",
             "alert_pipeline/consumer/ledger.py", "alert_pipeline/consumer/limits.py", "config.example.toml"}
#: Defaults declared where they are used, in a module that restates others.
DECLARED_IN = {"alert_pipeline/storehouse/messengers/gcn.py": {"idle_timeout"}}
#: 0 and 1 are every count's and every flag's: no evidence of a restated default.
TOO_COMMON = {0.0, 1.0}
NUMBER = re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?![\w]|\.\d)")


def _declared_defaults():
    from alert_pipeline.consumer.config import SETTINGS
    from alert_pipeline.kafka_settings import KAFKA_DEFAULTS
    from alert_pipeline.storehouse.builder.settings import SECTIONS
    for setting in (*SETTINGS, *(s for settings in SECTIONS.values() for s in settings)):
        if isinstance(setting.default, int | float) and not isinstance(setting.default, bool):
            names = {setting.name, setting.flag} | ({setting.variable} if setting.variable else set())
            if float(setting.default) not in TOO_COMMON:
                yield setting.name, names, float(setting.default)
    for key, value in KAFKA_DEFAULTS.items():
        if isinstance(value, int) and not isinstance(value, bool) and float(value) not in TOO_COMMON:
            yield key, {key}, float(value)


def _restatements():
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "*.py", "*.sh", "*.md", "*.toml"],
                            capture_output=True, text=True, check=True).stdout.split()
    files = [name for name in listed if not name.startswith(("tests/", "benchmarks/")) and name not in DECLARING]
    defaults = list(_declared_defaults())
    found = {}
    for name in files:
        path = REPO / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for setting, names, value in defaults:
                if setting in DECLARED_IN.get(name, ()):
                    continue
                if any(re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w-])", line) for n in names) and \
                        any(float(token) == value for token in NUMBER.findall(line)):
                    found.setdefault((name, setting), f"{name}:{number}: {line.strip()}")
    return found


def test_every_default_is_declared_once():
    """No file restates a declared default next to its setting's name, flag or variable
    (``retention_days = 30``, ``--radius-arcsec`` … 1.5, ``session.timeout.ms = 10000``):
    the help, the example and --show-config print it from the declaration."""
    found = _restatements()
    unexpected = {key: line for key, line in found.items() if key not in RESTATED_ELSEWHERE}
    assert not unexpected, "\n".join(unexpected.values())
    stale = RESTATED_ELSEWHERE - set(found)
    assert not stale, f"fixed: remove from RESTATED_ELSEWHERE: {sorted(stale)}"


# ----------------------------------------------------------------- one exception → exit code mapper
def test_one_mapper_turns_every_error_into_a_documented_exit_code(caplog):
    from alert_pipeline.errors import ServiceError
    from alert_pipeline.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_SERVICE, Failure, run_mapped
    log = logging.getLogger("test_mapper")
    failures = (Failure((ValueError,), EXIT_CONFIG, "{tool}: bad: {error}"),)

    def raising(error):
        def body():
            raise error
        return body

    with caplog.at_level(logging.INFO, logger="test_mapper"):
        assert run_mapped(lambda: EXIT_OK, failures, log, "T") == EXIT_OK
        assert run_mapped(raising(ValueError("pw=hunter2")), failures, log, "T",
                          lambda text: text.replace("hunter2", "***")) == EXIT_CONFIG
        assert run_mapped(raising(ServiceError("down")), failures, log, "T") == EXIT_SERVICE  # its own code
        assert run_mapped(raising(KeyError("bug")), failures, log, "T") == EXIT_FAILURE
    assert "T: bad: pw=***" in caplog.text and "hunter2" not in caplog.text
    assert "T failed with an unexpected error" in caplog.text and "KeyError" in caplog.text  # with its traceback


def test_the_builders_failures_keep_their_codes(tmp_path):
    """The ladder that was in transient_kind_builder.main, now a table: a file that cannot
    be written is 4, a TNS file in neither layout 2, a load with neither files nor --gcn 2."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the storehouse should be")
    alert = tmp_path / "alert.csv"
    alert.write_text("not,a,tns,file\n1,2,3,4\n")
    assert builder("tns", "--storehouse", tmp_path / "s", alert).returncode == 2
    assert builder("load-messengers", "--storehouse", tmp_path / "s").returncode == 2
    done = builder("rebuild-index", "--storehouse", blocked, "--kind", "transient")
    assert done.returncode == 2 and "no storehouse at" in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------- what a sub-command loads
LOADED = """
import sys
sys.path.insert(0, sys.argv[1])
import transient_kind_builder
code = transient_kind_builder.main(sys.argv[2:])
heavy = sorted(name for name in ("psycopg", "pyarrow.parquet", "lsdb", "hats") if name in sys.modules)
print("LOADED", code, ",".join(heavy) or "-")
"""


@pytest.mark.parametrize(("argv", "code", "loaded"), [
    (["paths", "--storehouse", "{tmp}/store"], 0, "-"),
    (["rebuild-index", "--storehouse", "{tmp}/nowhere"], 2, "-"),
    (["pages", "--storehouse", "{tmp}/nowhere"], 2, "-"),  # a failure: its table is made, and still no driver
    (["tns", "--storehouse", "{tmp}/store", "{tmp}/missing.csv"], None, "-"),
    (["load-galaxies", "--storehouse", "{tmp}/store", "{tmp}/missing.txt"], None, "pyarrow.parquet"),
    (["build", "--storehouse", "{tmp}/store", "--dsn", "postgresql://nobody@127.0.0.1:1/none"], 3, "psycopg"),
])
def test_a_sub_command_loads_the_database_driver_and_arrow_only_when_it_needs_them(tmp_path, argv, code, loaded):
    """Every builder run loaded psycopg, Parquet and hats-import at start (docs/benchmarks.md,
    "Measured design choices"): now only ``build``, ``load-fink``, ``load-galaxies`` and ``hosts``
    load them. A database error still gets its exit code (the driver's rung of the table is
    read when a command failed)."""
    from alert_pipeline.exitcodes import EXIT_DATABASE

    done = subprocess.run([sys.executable, "-c", LOADED, str(REPO), *(arg.format(tmp=tmp_path) for arg in argv)],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    got_code, got_loaded = done.stdout.splitlines()[-1].split()[1:]
    assert got_loaded == loaded, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    if code is not None:
        assert int(got_code) == (EXIT_DATABASE if argv[0] == "build" else code), done.stderr[-2000:]


@pytest.mark.parametrize(("command", "how"), [("build", "DATABASE_URL"), ("load-fink", "DATABASE_URL"),
                                               ("build", "--dsn")])
def test_a_password_in_a_key_value_dsn_with_a_control_character_never_reaches_the_log(tmp_path, command, how):
    """Before: a key=value DSN ending in a CRLF env file's '\\r' was refused (exit 2, right)
    with its value quoted in the log, password included: a secret setting's value is no
    longer shown in its error."""
    (tmp_path / "f.json").write_text("[]")
    extra = ["--storehouse", str(tmp_path / "s")] if command == "build" else [str(tmp_path / "f.json")]
    dsn = "host=127.0.0.1 port=1 user=u password=secretpw\r"
    given = {"DATABASE_URL": dsn} if how == "DATABASE_URL" else {}
    done = builder(command, *extra, *(["--dsn", dsn.replace("\r", "\x01")] if how == "--dsn" else []), env=given)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "secretpw" not in done.stderr + done.stdout and "dsn" in done.stderr, done.stderr[-2000:]
