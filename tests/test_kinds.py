"""Kinds own their behaviour (issue 35, item 1): the generic messenger modules name no
kind, and a new messenger kind is its module plus one line in ``kinds.MESSENGER_MODULES``.

The proof of the second: this test module is itself a messenger kind (``frb``, fast radio
bursts, from a small CSV of the test's own making). Registered by adding its name to
``MESSENGER_MODULES`` — the one line — it is recognised and loaded from a file, counted
in its roster and cross-matched with transients, with no other module touched. Every
expected value is written here from the events the test places, never taken from the
code under test."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.messengers.events import Item, Skipped, cosmic, parse_time, safe_id, sky_position, timed
from alert_pipeline.storehouse.messengers.kind import TEXT, MatchRule, MessengerKind, Reader, TextHead
from alert_pipeline.storehouse.messengers.rules import LONGEST_WINDOW_DAYS, Match, Transients, per_event, rule
from alert_pipeline.storehouse.slots import KindSpec

from .conftest import REPO

STOREHOUSE = REPO / "alert_pipeline" / "storehouse"
#: The modules that iterate the registry and must never name a kind.
GENERIC = ("messengers/formats.py", "messengers/load.py", "messengers/gcn.py", "enrich/crossmatch.py")


# ------------------------------------------------------------------ the generic modules name no kind
def kind_names() -> list[str]:
    return [kind.name for kind in kinds.messenger_kinds()]


def test_the_registry_lists_the_four_messenger_kinds_after_the_transients():
    assert kind_names() == ["gw", "neutrino", "uhecr", "grb"]
    assert kinds.names() == ("transient", "minor_body", "gw", "neutrino", "uhecr", "grb")


@pytest.mark.parametrize("module", GENERIC)
def test_a_generic_messenger_module_names_no_kind(module):
    """No ``gw.``/``neutrino.``/``uhecr.``/``grb.``, no "gw", "neutrino", "uhecr", "grb"
    (as a word, in any case: code, strings and docstrings) in formats, load, gcn and the
    cross-match, nor any kind's GCN topic (a kind's topics are its own declaration)."""
    text = (STOREHOUSE / module).read_text()
    found = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
             for name in kind_names() if re.search(rf"\b{name}\b", line, re.IGNORECASE)]
    found += [topic for kind in kinds.messenger_kinds() for topic in kind.gcn_topics if topic in text]
    assert found == [], f"{module} names a kind: {found}"


def test_each_kind_declares_its_rules_and_topics_and_the_settings_are_made_of_them():
    """The [crossmatch] settings and GCN topics are the kinds' declarations, in order."""
    from alert_pipeline.storehouse.builder import settings
    from alert_pipeline.storehouse.messengers import gcn
    declared = [name for kind in kinds.messenger_kinds() for name, _, _ in kind.match.settings]
    assert declared == ["gw_window_days", "gw_credible_level", "nu_window_days", "nu_scale", "uhecr_window_days",
                        "uhecr_radius_deg", "grb_window_days"]
    assert [setting.name for setting in settings.CROSSMATCH] == declared
    assert gcn.DEFAULT_TOPICS == (
        "igwn.gwalert", "gcn.notices.icecube.lvk_nu_track_search", "gcn.notices.icecube.gold_bronze_track_alerts",
        # the classic VOEvent topics, named gcn.classic.voevent.<notice type> (tests/data/grb/FACTS.md, d1-d2)
        "gcn.classic.voevent.ICECUBE_ASTROTRACK_GOLD", "gcn.classic.voevent.ICECUBE_ASTROTRACK_BRONZE",
        "gcn.classic.voevent.FERMI_GBM_FLT_POS", "gcn.classic.voevent.FERMI_GBM_GND_POS",
        "gcn.classic.voevent.FERMI_GBM_FIN_POS", "gcn.classic.voevent.SWIFT_BAT_GRB_POS_ACK",
        "gcn.classic.voevent.SWIFT_XRT_POSITION", "gcn.classic.voevent.SWIFT_UVOT_POS",
        "gcn.notices.swift.bat.guano", "gcn.notices.einstein_probe.wxt.alert")
    for kind in kinds.messenger_kinds():
        assert kinds.spec(kind.name) is kind.spec


# ------------------------------------------------------------------ a toy kind: this module
KIND = "frb"
COLUMNS = ["frb_name", "utc", "ra_deg", "dec_deg", "radius_deg", "telescope"]
SPEC = KindSpec(KIND, ("slot_id", "time", "mjd", "ra_deg", "dec_deg", "radius_deg", "telescope"))


def _recognise(head: TextHead) -> bool:
    return [cell.strip() for cell in head.header] == COLUMNS


def _read(text: str, where: str, _accept_mock: bool) -> Iterator[Item]:
    for number, line in enumerate(text.splitlines()[1:], start=2):
        place = f"{where}:{number}"
        try:
            name, moment, ra, dec, radius, telescope = [cell.strip() for cell in line.split(",")]
            ra_deg, dec_deg = sky_position(ra, dec)
            slot = timed(cosmic(safe_id(name, "frb_name"), KIND), parse_time(moment))
            slot.update(ra_deg=ra_deg, dec_deg=dec_deg, radius_deg=float(radius), telescope=telescope)
            yield Item(KIND, place, slot, order=slot["time"])
        except (Skipped, ValueError) as problem:
            yield Item(KIND, place, problem=problem if isinstance(problem, Skipped) else Skipped("bad_row", str(problem)))


def _matches(event: dict[str, Any], transients: Transients, rules: Any, _directory: str) -> tuple[list[Match], float]:
    """Transients first seen within ``frb_window_days`` after the burst, inside its circle."""
    window = transients.first_between(event["mjd"], event["mjd"] + rules.frb_window_days)
    indices = np.arange(window.start, window.stop)
    d_ra = (transients.ra[indices] - event["ra_deg"] + 180) % 360 - 180
    separation = np.hypot(d_ra * math.cos(math.radians(event["dec_deg"])), transients.dec[indices] - event["dec_deg"])
    inside = separation <= event["radius_deg"]
    return [Match(int(i), {"separation_deg": float(s)}) for i, s in zip(indices[inside], separation[inside],
                                                                        strict=True)], 0.5


KIND_SPEC = MessengerKind(
    spec=SPEC, readers=(Reader("an FRB list", TEXT, _recognise, _read),), roster_field="telescope",
    match=MatchRule(required=("ra_deg", "dec_deg", "radius_deg"), match=per_event(_matches),
                    settings=(rule("frb_window_days", 7.0, LONGEST_WINDOW_DAYS, "days after a burst"),)))


@pytest.fixture
def with_frb(monkeypatch):
    """The one line: this module added to the registry."""
    monkeypatch.setattr(kinds, "MESSENGER_MODULES", (*kinds.MESSENGER_MODULES, __name__))
    yield


BURSTS = (",".join(COLUMNS) + "\n"
          "FRB20240101A,2024-01-01T00:00:00Z,150.0,20.0,1.0,CHIME\n"
          "FRB20240301B,2024-03-01T12:00:00Z,30.0,-10.0,0.5,CHIME\n"
          "FRB20240401C,2024-04-01T00:00:00Z,200.0,95.0,0.5,ASKAP\n")  # Dec 95: off the sky, skipped
MJD_20240101 = 60310.0  # 2024-01-01T00:00:00 UTC


def transient(slot_id: str, ra: float, dec: float, first: float) -> dict[str, Any]:
    return {"slot_id": slot_id, "kind": "transient", "subtype": "sn", "ra_deg": ra, "dec_deg": dec,
            "first_mjd": first, "last_mjd": first + 5, "n_alerts": 3, "provisional": False, "lat": None,
            "lon": None}


def test_a_toy_kind_is_its_module_plus_one_line(with_frb, tmp_path: Path):
    from alert_pipeline.storehouse.enrich import crossmatch as matching
    from alert_pipeline.storehouse.messengers.load import load_files
    bursts = tmp_path / "bursts.csv"
    bursts.write_text(BURSTS)
    storehouse = tmp_path / "store"
    report, rosters = load_files(str(storehouse), [str(bursts)])
    assert report.written == {"frb": 2} and report.skipped == {"bad_coordinates": 1}
    slot = json.loads((storehouse / "frb" / "FRB20240101A.json").read_text())
    assert (slot["ra_deg"], slot["dec_deg"], slot["time"], slot["mjd"]) == (150.0, 20.0, "2024-01-01T00:00:00Z",
                                                                             MJD_20240101)
    assert rosters["frb"]["by_telescope"] == {"CHIME": 2} and rosters["frb"]["objects"] == 2
    assert json.loads((storehouse / "frb" / "roster.json").read_text())["by_telescope"] == {"CHIME": 2}

    store = kinds.spec("transient").store(str(storehouse))
    placed = [transient("ZTF24inside", 150.5, 20.2, MJD_20240101 + 2),  # 0.54° away, 2 d after
              transient("ZTF24late", 150.0, 20.0, MJD_20240101 + 10),  # in the circle, 10 d after: out
              transient("ZTF24far", 160.0, 20.0, MJD_20240101 + 1)]  # 9.4° away: out
    for slot in placed:
        store.write_slot(slot["slot_id"], slot)
    store.rebuild_index(kinds.spec("transient").index_fields)

    rules = kinds.match_rules()()
    assert rules.frb_window_days == 7.0 and kinds.match_rules().limits()["frb_window_days"] == LONGEST_WINDOW_DAYS
    summary = matching.run(str(storehouse), rules)
    assert summary["coincidences_by_kind"] == {"gw": 0, "neutrino": 0, "uhecr": 0, "grb": 0, "frb": 1}
    inside = json.loads((storehouse / "transient" / "ZTF24inside.json").read_text())["multimessenger"]
    assert [(item["kind"], item["event"], item["dt_days"]) for item in inside] == [("frb", "FRB20240101A", 2.0)]
    expected = math.hypot(0.5 * math.cos(math.radians(20.0)), 0.2)
    assert inside[0]["separation_deg"] == pytest.approx(expected)
    for other in ("ZTF24late", "ZTF24far"):
        assert "multimessenger" not in json.loads((storehouse / "transient" / f"{other}.json").read_text())
    assert json.loads((storehouse / "frb" / "FRB20240101A.json").read_text())["transients"] == ["ZTF24inside"]
    assert json.loads((storehouse / "frb" / "FRB20240301B.json").read_text())["transients"] == []


def test_without_its_line_the_toy_kinds_file_is_an_unknown_format(tmp_path: Path):
    """The same file, the kind not registered: nothing recognises it."""
    from alert_pipeline.storehouse.messengers.load import load_files
    bursts = tmp_path / "bursts.csv"
    bursts.write_text(BURSTS)
    report, _ = load_files(str(tmp_path / "store"), [str(bursts)])
    assert report.written == {} and report.skipped == {"unknown_format": 1}
