"""The builder's settings, declared once with the consumer's machinery (``alert_pipeline.consumer.config``).

Each setting's default, check, help, flag, variable and key of the config file come from
its one declaration here, or, for the cross-match rules and the GCN topics, in each
messenger kind's module (``MessengerKind.match.settings``, ``MessengerKind.gcn_topics``;
``kinds.match_rules()`` and ``gcn.DEFAULT_TOPICS`` are made from them). The config file is the consumer's: its
``[builder]``, ``[gcn]``, ``[tns]`` and ``[crossmatch]`` tables are the builder's. Later
wins: the declared default, the file (``--config``), the environment, the command line.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from alert_pipeline.settings import (
    Setting,
    example_lines,
    read_config_file,
    resolve_section,
    section_table,
    settings_of,
)
from alert_pipeline.storehouse.enrich.tns import DEFAULT_RADIUS_ARCSEC
from alert_pipeline.storehouse.fink.db import DEFAULT_SOURCE, DEFAULT_TABLE, TableNameError, table_parts
from alert_pipeline.storehouse.kinds import match_rules
from alert_pipeline.storehouse.messengers import gcn
from alert_pipeline.storehouse.site.build import DEFAULT_SITE

#: The largest position-match radius a TNS run accepts (seconds of arc): a degree.
MOST_RADIUS_ARCSEC = 3600.0
#: The most page-rendering processes (``pages --workers``).
MOST_WORKERS = 256
#: The longest wait for a GCN message (seconds): a week, as the consumer's idle timeout.
MOST_IDLE_SECONDS = 7 * 86400.0


def _positive_under(most: float) -> Callable[[Any], str | None]:
    return lambda value: None if math.isfinite(value) and 0 < value < most else \
        f"must be positive and under {most:g}"


def _count_under(most: int) -> Callable[[Any], str | None]:
    return lambda value: None if 0 <= value <= most else f"must be from 0 to {most}"


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _table_name(value: str) -> str | None:
    """The database's own rule for a table name (an identifier, never SQL)."""
    try:
        table_parts(value)
    except TableNameError as exc:
        return str(exc)
    return None


def _builder(name: str, kind: type, default: Any, text: str, check: Callable[[Any], str | None],
             metavar: str, **declared: Any) -> Setting:
    """A builder setting: no variable unless it has one of its own (``DATABASE_URL``)."""
    return Setting(name, kind, text, check, metavar, None, default=default, env_prefix=None, **declared)


DSN = _builder("dsn", str, None, "PostgreSQL connection string", _non_empty, "DSN", env="DATABASE_URL",
               secret=True)
TABLE = _builder("table", str, DEFAULT_TABLE, "events table", _table_name, "TABLE")
SOURCE = _builder("source", str, DEFAULT_SOURCE, "rows' source tag", _non_empty, "SOURCE")
STOREHOUSE = _builder("storehouse", str, None, "the event storehouse directory", _non_empty, "DIR")
#: [builder]: where the rows come from and where the slots go.
BUILDER = (DSN, TABLE, SOURCE, STOREHOUSE)

GCN_TOPICS = _builder("topics", str, ",".join(gcn.DEFAULT_TOPICS), "GCN topics, comma-separated", _non_empty,
                      "T1,T2", env="GCN_TOPICS", option="--gcn-topics")
#: gcn.consume's own default: declared there, where it is used.
GCN_IDLE = _builder("idle_timeout", float, inspect.signature(gcn.consume).parameters["idle_timeout"].default,
                    "stop reading GCN after this long without a message", _positive_under(MOST_IDLE_SECONDS), "SECONDS")
#: [gcn]: GCN Kafka (its credentials and librdkafka settings stay in GCN_* variables).
GCN = (GCN_TOPICS, GCN_IDLE)

TNS_RADIUS = _builder("radius_arcsec", float, DEFAULT_RADIUS_ARCSEC, "the largest separation of a position match",
                      _positive_under(MOST_RADIUS_ARCSEC), "ARCSEC")
#: [tns]: the Transient Name Server refinement.
TNS = (TNS_RADIUS,)

SITE_OUT = _builder("site_out", str, None, f"the site's directory (default <storehouse>/{DEFAULT_SITE})", _non_empty,
                    "DIR", option="--out")
SITE_WORKERS = _builder("workers", int, 0, "processes rendering pages (0: one per CPU)", _count_under(MOST_WORKERS), "N")
#: [pages]: the static site (``pages``).
PAGES = (SITE_OUT, SITE_WORKERS)

#: [crossmatch]: the match rules, declared with their ranges by each messenger kind (``Rules``).
CROSSMATCH = settings_of(match_rules(), env_prefix=None)

def _name(value: str) -> str | None:
    """A catalogue's name: one directory name under ``catalogues/``, not hidden."""
    ok = value.strip() and not value.startswith(".") and "/" not in value and value not in (".", "..")
    return None if ok else "must be a plain directory name (no '/', not starting with '.')"


def _whole_between(low: int, high: int) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be at least {low} and at most {high}"


CATALOGUE = _builder("catalogue", str, "glade", "the galaxy catalogue's name (<storehouse>/catalogues/NAME/)",
                     _name, "NAME", option="--name")
DASK_SCHEDULER = _builder("dask_scheduler", str, None, "a Dask scheduler's address (tcp://HOST:8786): the catalogue "
                          "is built and queried on that cluster, whose workers must see the storehouse; empty: in "
                          "this process", lambda value: None, "ADDRESS")
HOST_TOP = _builder("host_candidates_top", int, 100, "how many galaxies of a GW volume each gw slot lists",
                    _whole_between(1, 100_000), "N")
HOST_MAX_KPC = _builder("host_max_kpc", float, 50.0, "a transient's host is at most this projected distance (kpc) "
                        "from it at the galaxy's distance", _positive_under(1e4), "KPC")
HOST_CAP_ARCMIN = _builder("host_cap_arcmin", float, 10.0, "and at most this far on the sky (arcmin), so that the "
                           "nearest galaxies do not claim degrees of sky", _positive_under(600.0), "ARCMIN")
#: [galaxies]: the galaxy catalogue (load-galaxies) and the host ranking (hosts).
GALAXIES = (CATALOGUE, DASK_SCHEDULER, HOST_TOP, HOST_MAX_KPC, HOST_CAP_ARCMIN)

#: Every section of the builder, in the config file's order.
SECTIONS: dict[str, tuple[Setting, ...]] = {"builder": BUILDER, "gcn": GCN, "tns": TNS, "crossmatch": CROSSMATCH,
                                            "galaxies": GALAXIES,
                                            "pages": PAGES}


def resolve(sections: Sequence[str], config_file: str | None, environ: Mapping[str, str],
            given: Mapping[str, Any]) -> dict[str, Any]:
    """The effective values of the settings of ``sections`` (name → value; every builder
    setting's name is its own), checked; ConfigError names the file, the section and the
    setting of anything that is not fit."""
    document = read_config_file(config_file) if config_file else {}
    values: dict[str, Any] = {}
    for section in sections:
        table = section_table(document, section, config_file or "")
        values.update(resolve_section(section, SECTIONS[section], table, environ, given))
    return values


def example() -> str:
    """The builder's part of ``config.example.toml``, from the declarations."""
    lines = ["# ---- transient_kind_builder.py: --config FILE, for every sub-command. Later wins: these",
             "# defaults < this file < the variables named < the command line."]
    for section, settings in SECTIONS.items():
        lines += ["", f"[{section}]"]
        if section == "builder":
            lines.append("# dsn: keep the database password out of this file; set DATABASE_URL instead.")
        lines += example_lines([setting for setting in settings if setting is not DSN])
    return "\n".join(lines) + "\n"
