"""The ANTARES DevKit filter, always through the real ``BaseFilter.run()``."""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from antares_devkit.models import BaseFilter, DevkitAlert, DevKitLocus

import antares_extendedness_filter as flt
from alert_pipeline.consumer.records import LOCUS_EXTENDEDNESS_PROPERTIES
from alert_pipeline.consumer.sources import write_frames_file
from devtools.factory import AlertFactory
from devtools.filter_dry_run import loci_from_packets, locus_from_dict
from tests.conftest import SUBPROCESS_PYTHONPATH

REPO = Path(__file__).resolve().parent.parent


def devkit_test_locus(name: str) -> dict:
    """A test locus the antares-devkit wheel ships (its top-level ``test`` package clashes
    with the standard library's, so it is loaded by path)."""
    path = Path(sysconfig.get_paths()["purelib"]) / "test" / "data" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"devkit_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.d


def lsst_locus(values, *, ss_object_ids=(), tags=(), survey_ss=None, extra_properties=None, packet=None,
               ztf_first=False) -> DevKitLocus:
    alerts = []
    if ztf_first:
        alerts.append(DevkitAlert(id="ztf_candidate:1", mjd=61000.0, properties={"ant_survey": 1, "ztf_magpsf": 18.0}))
    for index, value in enumerate(values):
        properties = {"ant_survey": 4, "lsst_diaSource_extendedness": value,
                      "lsst_diaSource_ssObjectId": ss_object_ids[index] if index < len(ss_object_ids) else None}
        if extra_properties and index == 0:
            properties.update(extra_properties)
        extra = {"alert_packet": packet} if packet and index == len(values) - 1 else {}
        alerts.append(DevkitAlert(id=f"lsst_alert:{index}", mjd=61000.0 + index, properties=properties,
                                  non_persistent_properties=extra))
    survey = {"lsst": {"dia_object_id": [42], "ss_object_id": list(survey_ss or [])}}
    return DevKitLocus(id="ANT-test", ra=10.0, dec=-5.0, alerts=alerts, internal_properties={"survey": survey},
                       user_tags=set(tags))


def run(locus: DevKitLocus) -> tuple[str, bool]:
    status = flt.LsstExtendednessFilter().run(locus).status
    assert status != "Errored"
    return status, flt.OUTPUT_TAG in locus.tags


@pytest.fixture(autouse=True)
def thresholds(monkeypatch):
    """Each test starts from the README defaults; tests edit them like a user would."""
    for name, value in (("EXTENDEDNESS_MEDIAN_MIN", 0.0), ("EXTENDEDNESS_MEDIAN_MAX", 1.0),
                        ("EXTENDEDNESS_MIN_THRESHOLD", 0.0), ("EXTENDEDNESS_MAX_THRESHOLD", 1.0),
                        ("REQUIRE_SSSOURCE", False)):
        monkeypatch.setattr(flt, name, value)
    return monkeypatch


def test_is_a_real_devkit_filter_with_declared_outputs():
    assert issubclass(flt.LsstExtendednessFilter, BaseFilter)
    assert flt.LsstExtendednessFilter.TRIGGERING_SURVEY == "lsst"
    assert [t["name"] for t in flt.LsstExtendednessFilter.OUTPUT_LOCUS_TAGS] == [flt.OUTPUT_TAG]
    declared = {p["name"] for p in flt.LsstExtendednessFilter.OUTPUT_LOCUS_PROPERTIES}
    assert declared == {flt.PROPERTY_MEDIAN, flt.PROPERTY_MIN, flt.PROPERTY_MAX, flt.PROPERTY_COUNT, flt.PROPERTY_SSSOURCE}
    # The consumer reads the same names from locus messages.
    assert set(LOCUS_EXTENDEDNESS_PROPERTIES.values()) == {flt.PROPERTY_MEDIAN, flt.PROPERTY_MIN, flt.PROPERTY_MAX}


def test_readme_defaults():
    source = (REPO / "antares_extendedness_filter.py").read_text()
    for line in ("EXTENDEDNESS_MEDIAN_MIN = 0.0", "EXTENDEDNESS_MEDIAN_MAX = 1.0", "EXTENDEDNESS_MIN_THRESHOLD = 0.0",
                 "EXTENDEDNESS_MAX_THRESHOLD = 1.0", "REQUIRE_SSSOURCE = True"):
        assert line in source


@pytest.mark.parametrize("name", ["small_locus", "large_locus"])
def test_devkit_ztf_loci_are_skipped_cleanly(name):
    locus = locus_from_dict(devkit_test_locus(name))
    status, tagged = run(locus)
    assert status == "Skipped" and not tagged


def test_devkit_locus_turned_lsst_without_extendedness_succeeds_untagged():
    data = copy.deepcopy(devkit_test_locus("large_locus"))
    data["alerts"][-1]["properties"]["ant_survey"] = 4
    status, tagged = run(locus_from_dict(data))
    assert (status, tagged) == ("Succeeded", False)


def test_pass_sets_properties_that_travel_with_the_locus():
    locus = lsst_locus([0.2, None, 0.6, float("nan"), 0.4])
    status, tagged = run(locus)
    assert (status, tagged) == ("Succeeded", True)
    props = locus.properties
    assert props[flt.PROPERTY_MEDIAN] == 0.4 and props[flt.PROPERTY_MIN] == 0.2 and props[flt.PROPERTY_MAX] == 0.6
    assert props[flt.PROPERTY_COUNT] == 3 and props[flt.PROPERTY_SSSOURCE] == 0


def test_no_usable_value_does_not_pass():
    for values in ([None, None], [float("nan")], [None, float("nan")]):
        status, tagged = run(lsst_locus(values))
        assert status == "Succeeded" and not tagged


# Each threshold edited, then a locus at it, just inside and just outside.
EDGE = 1e-9
THRESHOLD_CASES = [
    ("EXTENDEDNESS_MEDIAN_MIN", 0.3, [0.3, 0.3, 0.3], True),
    ("EXTENDEDNESS_MEDIAN_MIN", 0.3, [0.3 + EDGE] * 3, True),
    ("EXTENDEDNESS_MEDIAN_MIN", 0.3, [0.3 - EDGE] * 3, False),
    ("EXTENDEDNESS_MEDIAN_MAX", 0.7, [0.1, 0.7, 0.9], True),
    ("EXTENDEDNESS_MEDIAN_MAX", 0.7, [0.1, 0.7 - EDGE, 0.9], True),
    ("EXTENDEDNESS_MEDIAN_MAX", 0.7, [0.1, 0.7 + EDGE, 0.9], False),
    ("EXTENDEDNESS_MIN_THRESHOLD", 0.2, [0.2, 0.5, 0.6], True),
    ("EXTENDEDNESS_MIN_THRESHOLD", 0.2, [0.2 + EDGE, 0.5, 0.6], True),
    ("EXTENDEDNESS_MIN_THRESHOLD", 0.2, [0.2 - EDGE, 0.5, 0.6], False),
    ("EXTENDEDNESS_MAX_THRESHOLD", 0.8, [0.4, 0.5, 0.8], True),
    ("EXTENDEDNESS_MAX_THRESHOLD", 0.8, [0.4, 0.5, 0.8 - EDGE], True),
    ("EXTENDEDNESS_MAX_THRESHOLD", 0.8, [0.4, 0.5, 0.8 + EDGE], False),
]


@pytest.mark.parametrize(("constant", "value", "values", "passes"), THRESHOLD_CASES)
def test_thresholds_at_inside_and_outside(thresholds, constant, value, values, passes):
    thresholds.setattr(flt, constant, value)  # edited after import: read at run time
    status, tagged = run(lsst_locus(values))
    assert status == "Succeeded" and tagged is passes


def test_median_of_even_count_and_merged_ztf_history():
    locus = lsst_locus([0.1, 0.2, 0.9, 1.0], ztf_first=True)
    status, tagged = run(locus)
    assert tagged and math.isclose(locus.properties[flt.PROPERTY_MEDIAN], 0.55)
    assert locus.properties[flt.PROPERTY_COUNT] == 4


SIGNALS = {
    "ssObjectId": dict(ss_object_ids=[0, 987654]),
    "ssObjectId as text": dict(ss_object_ids=["123"]),
    "ssSource property": dict(extra_properties={"lsst_ssSource_ssObjectId": 5, "lsst_ssSource_phaseAngle": 12.5}),
    "raw packet ssSource": dict(packet={"ssSource": {"ssObjectId": 5}}),
    "raw packet MPCORB": dict(packet={"MPCORB": {"mpcDesignation": "2026 AB"}}),
    "raw packet mpc_orbits": dict(packet={"mpc_orbits": {"designation": "2026 AB"}}),
    "raw packet ssObject": dict(packet={"ssObject": {"ssObjectId": 5}}),
    "locus ss_object_id": dict(survey_ss=[777]),
    "sso tag": dict(tags=["sso_confirmed"]),
    "ztf sso tag": dict(tags=["ztf_sso_candidates"]),
}


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("require", [True, False])
def test_each_solar_system_signal_alone_under_both_settings(thresholds, signal, require):
    thresholds.setattr(flt, "REQUIRE_SSSOURCE", require)
    associated = lsst_locus([0.5, 0.5], **SIGNALS[signal])
    status, tagged = run(associated)
    assert status == "Succeeded" and tagged is require
    if tagged:
        assert associated.properties[flt.PROPERTY_SSSOURCE] == 1
    plain_status, plain_tagged = run(lsst_locus([0.5, 0.5]))
    assert plain_status == "Succeeded" and plain_tagged is (not require)


def test_zero_and_none_ss_object_ids_mean_no_association(thresholds):
    thresholds.setattr(flt, "REQUIRE_SSSOURCE", True)
    for ids in ([0, 0], ["0", None], [None]):
        assert run(lsst_locus([0.5, 0.5], ss_object_ids=ids, packet={"ssSource": None}, survey_ss=[]))[1] is False


def test_never_raises_on_odd_loci():
    odd = [
        DevKitLocus(id="empty-props", ra=0, dec=0, alerts=[DevkitAlert(id="a", mjd=1.0, properties={"ant_survey": 4})]),
        lsst_locus(["not a number", True, 0.5]),
        DevKitLocus(id="no-survey", ra=0, dec=0, internal_properties={"survey": "weird"},
                    alerts=[DevkitAlert(id="a", mjd=1.0, properties={"ant_survey": 4,
                                                                    "lsst_diaSource_extendedness": 0.5})]),
    ]
    for locus in odd:
        assert flt.LsstExtendednessFilter().run(locus).status in ("Succeeded", "Skipped")


def test_dry_run_over_factory_packets(tmp_path):
    factory = AlertFactory("11.1", seed=31)
    values = [factory.frame(factory.alert(cutouts=False, extendedness=0.9)) for _ in range(3)]
    values += [factory.frame(factory.alert(cutouts=False, extendedness=0.1, solar_system=True)) for _ in range(2)]
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), values)
    container = tmp_path / "old.avro"
    old = AlertFactory("7.4", seed=32)
    container.write_bytes(old.container_file([old.alert(cutouts=False, extendedness=0.95)]))
    done = subprocess.run([sys.executable, str(REPO / "antares_extendedness_filter.py"), str(frames), str(container)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    decisions = [line.split("\t") for line in lines[:-1]]
    assert len(decisions) == 6  # 4 diaObjects + 2 solar-system objects
    # REQUIRE_SSSOURCE = True in the file: exactly the two solar-system loci pass.
    passing = [d for d in decisions if d[2] == "PASS"]
    assert len(passing) == 2 and all(d[0].startswith("dryrun:ss") and "sssource=yes" in d for d in passing)
    assert all("n=4" in d for d in decisions)  # the alert plus its three prvDiaSources
    assert lines[-1].startswith("summary: 2 of 6 loci pass (33.3%), 0 errored")


def test_dry_run_reads_locus_json(tmp_path):
    import json

    data = copy.deepcopy(devkit_test_locus("small_locus"))
    (tmp_path / "locus.json").write_text(json.dumps(data))
    done = subprocess.run([sys.executable, str(REPO / "antares_extendedness_filter.py"), str(tmp_path / "locus.json")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert done.returncode == 0, done.stderr
    assert "ANT2024it80v05etk1n\tSkipped\tfail" in done.stdout


def test_dry_run_gives_alerts_with_neither_object_id_loci_of_their_own():
    """Rubin's sample packets have no diaObjectId and no ssObjectId: each alert is its own
    locus, never merged with unrelated alerts (an 'ssNone' locus)."""
    factory = AlertFactory("11.1", seed=33)
    packets = [factory.alert(cutouts=False, extendedness=0.5) for _ in range(3)]
    for packet in packets:
        packet["diaSource"]["diaObjectId"] = None
        packet["diaObject"] = None
    loci = loci_from_packets(packets)
    assert len(loci) == 3
    assert sorted(locus.id for locus in loci) == sorted(f"dryrun:alert{p['diaSource']['diaSourceId']}"
                                                        for p in packets)
    assert all("None" not in locus.id for locus in loci)


ALL_NULL = {
    "all-null ssSource (v10+)": {"ssSource": {"diaSourceId": None, "ssObjectId": None, "designation": None,
                                              "phaseAngle": None}},
    "all-null mpc_orbits": {"mpc_orbits": {"designation": None, "packed_primary_provisional_designation": None,
                                           "unpacked_primary_provisional_designation": None, "a": None}},
    "all-null MPCORB (v8-9)": {"MPCORB": {"mpcDesignation": None, "ssObjectId": None}},
    "zero ssObjectId, blank designation": {"ssSource": {"ssObjectId": 0, "designation": " "},
                                          "mpc_orbits": {"designation": "null"}},
}


@pytest.mark.parametrize("packet", ALL_NULL)
@pytest.mark.parametrize("require", [True, False])
def test_records_whose_fields_are_all_null_are_no_association(thresholds, packet, require):
    """Brokers that re-serialize packets keep empty Solar-System records: not an association."""
    thresholds.setattr(flt, "REQUIRE_SSSOURCE", require)
    locus = lsst_locus([0.5, 0.5], ss_object_ids=[0, 0], packet=ALL_NULL[packet],
                       extra_properties={"lsst_ssSource_ssObjectId": None, "lsst_ssSource_designation": None,
                                         "lsst_ssSource_phaseAngle": 3.0})
    status, tagged = run(locus)
    assert status == "Succeeded" and tagged is (not require)


@pytest.mark.parametrize("require", [True, False])
def test_broker_delivered_container_is_judged_by_identity(tmp_path, require):
    """A Fink-like container (enriched schema, all-null ssSource/mpc_orbits on ordinary
    alerts, diaObjectId 0 on Solar-System ones, deep histories, PSFIMAGE cutouts) through
    the dry run in both REQUIRE_SSSOURCE modes: only the real Solar-System loci count."""
    from devtools.factory import broker_container

    factory = AlertFactory("10.0", seed=34)
    ordinary = [factory.alert(cutout_size=30, psf_cutouts=True, extendedness=0.5, n_prv_sources=350,
                              n_prv_forced=350) for _ in range(5)]
    asteroids = [factory.alert(cutouts=False, extendedness=0.5, solar_system=True) for _ in range(2)]
    container = tmp_path / "fink_transfer.avro"
    container.write_bytes(broker_container(factory, ordinary + asteroids))
    source = (REPO / "antares_extendedness_filter.py").read_text()
    edited = tmp_path / "antares_extendedness_filter.py"
    edited.write_text(source.replace("REQUIRE_SSSOURCE = True ", f"REQUIRE_SSSOURCE = {require} "))
    done = subprocess.run([sys.executable, str(edited), str(container)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": SUBPROCESS_PYTHONPATH})
    assert done.returncode == 0, done.stderr
    decisions = [line.split("\t") for line in done.stdout.strip().splitlines()[:-1]]
    assert len(decisions) == 7
    passing = {d[0] for d in decisions if d[2] == "PASS"}
    ss_loci = {f"dryrun:ss{p['diaSource']['ssObjectId']}" for p in asteroids}
    dia_loci = {f"dryrun:dia{p['diaSource']['diaObjectId']}" for p in ordinary}
    assert passing == (ss_loci if require else dia_loci)
    assert all("n=351" in d for d in decisions if d[0] in dia_loci)  # the alert and its 350 prvDiaSources
