"""The ``grb`` kind (issue 36): real GCN notices of Fermi GBM, Swift and INTEGRAL (VOEvent
XML) and GCN JSON notices, one slot per trigger, matched with transients; IceCube's
VOEvents into the ``neutrino`` kind.

Every real file lives in ``tests/data/grb`` (origins and the values read by hand in its
README). Expected positions, radii and times below are those hand-read values; a 90 %
radius is computed here from them with the formula written out in the test, never taken
from the code under test."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from alert_pipeline.exitcodes import EXIT_INPUT_UNUSED
from alert_pipeline.storehouse import kinds
from alert_pipeline.storehouse.messengers.load import load_files
from tests.conftest import REPO
from tests.test_messengers import load

DATA = REPO / "tests" / "data" / "grb"
JSON_DIR = DATA / "json"
#: 68 % → 90 % for a 2-D Gaussian: sqrt(-2 ln(1 - 0.90)) / sqrt(-2 ln(1 - 0.68)).
GAUSS_68_TO_90 = math.sqrt(-2 * math.log(0.10)) / math.sqrt(-2 * math.log(0.32))
#: Fermi GBM's 68 % systematic (Connaughton et al. 2015).
GBM_SYS = 3.7
MJD_UNIX_EPOCH = 40587.0
SKY_DEG2 = 4 * math.pi * (180 / math.pi) ** 2


def gbm_statistical_90(radius: float) -> float:
    """A Ground/Final GBM radius (68 %, statistical only) as a 90 % radius."""
    return math.hypot(radius, GBM_SYS) * GAUSS_68_TO_90


def loaded(store: Path, *names: str) -> tuple[Any, dict]:
    paths = [str(DATA / name if not name.startswith("json/") else DATA / name) for name in names]
    return load_files(str(store), paths)


def slot(store: Path, slot_id: str, kind: str = "grb") -> dict:
    return json.loads((store / kind / f"{slot_id}.json").read_text())


def mjd_of(iso: str) -> float:
    from datetime import datetime
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.timestamp() / 86400.0 + MJD_UNIX_EPOCH


# ------------------------------------------------------------------ each mission, hand-read values
# file, slot id, instrument, notice type, serial, time (ISOTime), C1, C2, Error2Radius, its 90 % radius
SINGLE = [
    ("fermi_gbm_fin_pos_115_680782656.xml", "Fermi-680782656", "GBM", "FERMI_GBM_FIN_POS", 25,
     "2022-07-29T10:17:31.510000Z", 316.69, -4.1699, 11.34, gbm_statistical_90(11.34)),
    ("fermi_gbm_flt_pos_111_680977982.xml", "Fermi-680977982", "GBM", "FERMI_GBM_FLT_POS", 116,
     "2022-07-31T16:32:57.360000Z", 220.8667, 68.5833, 16.85, 16.85 * GAUSS_68_TO_90),  # Flight: sys included
    ("fermi_gbm_gnd_pos_112_537755817.xml", "Fermi-537755817", "GBM", "FERMI_GBM_GND_POS", 13,
     "2018-01-16T00:36:52.810000Z", 214.74, 28.14, 11.19, gbm_statistical_90(11.19)),
    ("swift_bat_grb_pos_61_1093742.xml", "Swift-1093742", "BAT", "SWIFT_BAT_GRB_POS_ACK", 4,
     "2022-01-18T18:20:38.090000Z", 192.2744, 22.9093, 0.05, 0.05),
    ("swift_xrt_pos_67_1120270.xml", "Swift-1120270", "XRT", "SWIFT_XRT_POSITION", 4,
     "2022-08-13T19:24:34.220000Z", 81.5292, -33.0162, 0.0016, 0.0016),
    ("swift_uvot_pos_81_1121751.xml", "Swift-1121751", "UVOT", "SWIFT_UVOT_POS", 2,
     "2022-08-26T11:56:49Z", 206.4104, -44.0386, 0.0001, 0.0001),
    ("swift_uvot_pos_81_1101053.xml", "Swift-1101053", "UVOT", "SWIFT_UVOT_POS", 1,
     "2022-04-03T20:44:24Z", 191.472, 89.1851, 0.0001, 0.0001),
    ("swift_bat_trans_pos_84_1125106.xml", "Swift-1125106", "BAT", "SWIFT_BAT_TRANS", 1,
     "2022-09-23T11:09:46.080000Z", 135.7205, -40.707, 0.05, 0.05),
    ("integral_weak_56_9998.xml", "INTEGRAL-9998", "IBIS", "INTEGRAL_WEAK", 57657,
     "2022-07-31T19:10:41.290000Z", 72.92, 4.4995, 0.0656, 0.0656),
    ("integral_wakeup_53_10042.xml", "INTEGRAL-10042", "IBIS", "INTEGRAL_WAKEUP", 6647,
     "2022-09-26T10:38:19.750000Z", 273.965, -37.2473, 0.0489, 0.0489),
]


@pytest.mark.parametrize("row", SINGLE, ids=[row[0] for row in SINGLE])
def test_a_real_notice_of_each_mission_loads_with_its_hand_read_values(row, tmp_path):
    name, slot_id, instrument, notice_type, serial, time, ra, dec, radius, radius_90 = row
    report, _ = loaded(tmp_path, name)
    assert report.written == {"grb": 1} and report.skipped == {}
    got = slot(tmp_path, slot_id)
    mission, trigger = slot_id.split("-")
    assert (got["mission"], got["trigger_id"], got["instrument"]) == (mission, trigger, instrument)
    assert (got["time"], got["ra_deg"], got["dec_deg"], got["error_radius_deg"]) == (time, ra, dec, radius)
    assert got["mjd"] == pytest.approx(mjd_of(time), abs=1e-9)
    assert got["error_radius_90_deg"] == pytest.approx(radius_90, rel=1e-12)
    assert got["not_a_grb"] is False and got["lat"] is None and got["lon"] is None
    assert got["provenance"]["source"] == name
    (notice,) = got["notices"]
    assert (notice["type"], notice["serial"], notice["ra_deg"], notice["error_radius_deg"]) == (notice_type, serial,
                                                                                               ra, radius)


def test_the_gbm_radius_conversion_is_the_documented_one():
    """Fin_Pos of GRB 180116A, 5.20° statistical (FACTS.md (a)): sqrt(5.2² + 3.7²) = 6.382°
    at 68 %, × 1.4216 = 9.07° at 90 %. Flight positions already include the systematic."""
    from alert_pipeline.storehouse.messengers.grb import radius_90
    assert GAUSS_68_TO_90 == pytest.approx(1.42156, abs=1e-5)
    assert radius_90(5.2, 0.68, False, 3.7) == pytest.approx(9.0724, abs=1e-4)
    assert radius_90(19.8333, 0.68, True, 3.7) == pytest.approx(19.8333 * 1.42156, rel=1e-5)
    assert radius_90(0.05, 0.9, True) == 0.05  # Swift and INTEGRAL quote 90 % radii


def test_swift_flags_that_the_position_may_be_wrong_are_kept_on_the_notice(tmp_path):
    loaded(tmp_path, "swift_bat_trans_pos_84_1125106.xml", "swift_bat_grb_pos_61_948244_startrack-lost-lock.xml")
    (trans,) = slot(tmp_path, "Swift-1125106")["notices"]
    assert trans["target_in_catalog"] is True and trans["startrack_lost_lock"] is True  # README: both true
    (lost,) = slot(tmp_path, "Swift-948244")["notices"]
    assert lost["startrack_lost_lock"] is True and lost["target_in_catalog"] is False


# ------------------------------------------------------------------ one trigger, one slot
GRB180116A = ("fermi_gbm_alert_110_537755817.xml", "fermi_gbm_flt_pos_111_537755817.xml",
              "fermi_gbm_gnd_pos_112_537755817.xml", "fermi_gbm_fin_pos_115_537755817.xml")
SWIFT_1156572 = ("swift_bat_grb_pos_61_1156572.xml", "swift_xrt_pos_67_1156572_ser1.xml",
                 "swift_xrt_pos_67_1156572_ser2.xml")


@pytest.mark.parametrize("order", [1, -1], ids=["as-sent", "reversed"])
def test_the_notices_of_one_gbm_trigger_are_one_slot_with_the_final_position(order, tmp_path):
    report, rosters = loaded(tmp_path, *GRB180116A[::order])
    got = slot(tmp_path, "Fermi-537755817")
    assert (got["ra_deg"], got["dec_deg"], got["error_radius_deg"]) == (212.77, 27.05, 5.2)  # the Final position
    assert got["error_radius_90_deg"] == pytest.approx(gbm_statistical_90(5.2))
    assert got["time"] == "2018-01-16T00:36:52.810000Z"
    # by precision: Final (5.20 → 9.07), Ground (11.19 → 16.76), Flight (19.83 sys incl. → 28.19), the Alert
    # (no position) last; not by Pkt_Ser_Num (5, 13, 12, 6)
    assert [(n["type"], n["serial"]) for n in got["notices"]] == [
        ("FERMI_GBM_FIN_POS", 5), ("FERMI_GBM_GND_POS", 13), ("FERMI_GBM_FLT_POS", 12), ("FERMI_GBM_ALERT", 6)]
    assert got["notices"][3]["ra_deg"] is None and got["notices"][3]["error_radius_deg"] is None
    assert [n["issued"] for n in got["notices"]] == ["2018-01-16T00:46:05Z", "2018-01-16T00:37:05Z",
                                                     "2018-01-16T00:36:56Z", "2018-01-16T00:36:53Z"]
    assert rosters["grb"]["objects"] == 1 and rosters["grb"]["by_mission"] == {"Fermi": 1}


def test_the_files_in_any_order_give_the_same_slots(tmp_path):
    names = (*GRB180116A, *SWIFT_1156572, "integral_refined_54_10042.xml", "integral_wakeup_53_10042.xml")
    loaded(tmp_path / "a", *names)
    loaded(tmp_path / "b", *names[::-1])
    loaded(tmp_path / "c", *names[1::2], *names[::2])

    def content(store: Path) -> dict:
        return {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k != "provenance"}
                for p in (store / "grb").glob("*-*.json")}
    assert len(content(tmp_path / "a")) == 3
    assert content(tmp_path / "a") == content(tmp_path / "b") == content(tmp_path / "c")


def test_an_alert_alone_is_a_slot_without_a_position_that_is_not_matched(tmp_path):
    loaded(tmp_path, "fermi_gbm_alert_110_537755817.xml")
    got = slot(tmp_path, "Fermi-537755817")
    assert got["ra_deg"] is None and got["error_radius_90_deg"] is None  # its 0/0/0 is "unavailable"
    assert json.loads((tmp_path / "grb" / "roster.json").read_text())["without_position"] == 1


def test_xrt_replaces_bat_and_the_better_xrt_the_first_one_the_time_stays_the_trigger(tmp_path):
    loaded(tmp_path, *SWIFT_1156572)
    got = slot(tmp_path, "Swift-1156572")
    assert (got["instrument"], got["ra_deg"], got["dec_deg"], got["error_radius_deg"]) == ("XRT", 18.378, 44.483,
                                                                                          0.0005)
    assert got["time"] == "2023-02-28T05:50:50.250000Z"  # the BAT trigger, not the XRT's 05:52:57
    assert [(n["type"], n["serial"]) for n in got["notices"]] == [
        ("SWIFT_XRT_POSITION", 2), ("SWIFT_XRT_POSITION", 1), ("SWIFT_BAT_GRB_POS_ACK", 2)]


def test_integral_refined_joins_its_wakeup_by_the_ivorn_trigger_number(tmp_path):
    """The Refined notice carries TrigID 75578; its ivorn (and the Wakeup's) say 010042."""
    loaded(tmp_path, "integral_wakeup_53_10042.xml", "integral_refined_54_10042.xml")
    assert sorted(p.name for p in (tmp_path / "grb").glob("INTEGRAL-*")) == ["INTEGRAL-10042.json"]
    got = slot(tmp_path, "INTEGRAL-10042")
    assert (got["ra_deg"], got["dec_deg"], got["error_radius_deg"]) == (273.9546, -37.2428, 0.0431)
    assert got["time"] == "2022-09-26T10:38:19.750000Z" and len(got["notices"]) == 2


def test_equal_radii_the_later_issued_wins_and_a_light_curve_adds_no_position(tmp_path):
    loaded(tmp_path, "swift_bat_grb_pos_61_1118357.xml", "swift_bat_quicklook_pos_97_1118357.xml",
           "swift_bat_lightcurve_63_1118357.xml")
    got = slot(tmp_path, "Swift-1118357")
    assert [n["type"] for n in got["notices"]] == ["SWIFT_BAT_GRB_POS_ACK", "SWIFT_BAT_QL_POS", "SWIFT_BAT_GRB_LC"]
    assert (got["ra_deg"], got["dec_deg"], got["error_radius_deg"]) == (225.0208, -69.4969, 0.05)
    assert got["time"] == "2022-07-30T15:48:54.890000Z"  # the earliest ISOTime (BAT_GRB_Pos; QL .97, LC 55.00)


def test_a_rerun_writes_nothing_and_a_new_notice_touches_only_its_trigger(tmp_path):
    first, _ = loaded(tmp_path, "swift_bat_grb_pos_61_1156572.xml", *GRB180116A)
    assert first.written == {"grb": 5}
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "grb").glob("*-*.json")}
    again, _ = loaded(tmp_path, "swift_bat_grb_pos_61_1156572.xml", *GRB180116A)
    assert again.written == {} and again.unchanged == {"grb": 5}
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "grb").glob("*-*.json")} == stamps
    later, _ = loaded(tmp_path, "swift_xrt_pos_67_1156572_ser1.xml")
    assert later.written == {"grb": 1}
    now = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "grb").glob("*-*.json")}
    assert [name for name in now if now[name] != stamps[name]] == ["Swift-1156572.json"]
    assert slot(tmp_path, "Swift-1156572")["error_radius_deg"] == 0.001


def test_test_and_utility_notices_are_skipped_and_counted(tmp_path):
    report, _ = loaded(tmp_path, "fermi_gbm_subthresh_131_546126856_role-test.xml",
                       "swift_point_dir_83_role-utility.xml", "json/gcnschema_svom_grm_trigger.example.json",
                       "json/gcnschema_svom_eclairs_trigger.wakeup.example.json", "swift_xrt_pos_67_1120270.xml")
    assert report.skipped == {"test_notice": 3, "not_an_observation": 1}
    assert report.written == {"grb": 1}


# ------------------------------------------------------------------ GCN JSON notices
def test_gcn_json_gbm_notices_join_one_trigger_with_their_declared_containment(tmp_path):
    report, _ = loaded(tmp_path, "json/gcnschema_fermi_gbm_trigger.flight1.example.json",
                       "json/gcnschema_fermi_gbm_trigger.ground1.example.json",
                       "json/gcnschema_fermi_gbm_trigger.final.example.json")
    got = slot(tmp_path, "Fermi-745121685")
    # final 1° (0.68, no systematic) → 5.45°; ground 1.34° → 5.59°; flight 8.32° (systematic in) → 11.83°
    assert [(n["type"], n["serial"]) for n in got["notices"]] == [
        ("FINAL_POSITION", 7), ("GROUND_POSITION", 5), ("FLIGHT_POSITION", 2)]
    assert (got["ra_deg"], got["dec_deg"], got["error_radius_deg"]) == (29.24, -63.62, 1)
    assert got["error_radius_90_deg"] == pytest.approx(gbm_statistical_90(1.0))
    assert got["notices"][2]["error_radius_90_deg"] == pytest.approx(8.32 * GAUSS_68_TO_90)
    assert got["time"] == "2024-08-24T02:14:40.430000Z"


def test_a_guano_retraction_marks_the_trigger_not_a_grb_and_keeps_its_position(tmp_path):
    loaded(tmp_path, "json/gcnschema_swift_bat_guano.example.json",
           "json/gcnschema_swift_bat_guano.loc_arc_min.example.json")
    got = slot(tmp_path, "Swift-694215995")
    assert (got["instrument"], got["ra_deg"], got["dec_deg"], got["error_radius_90_deg"]) == ("BAT-GUANO", 336.26,
                                                                                              25.139, 0.5)
    assert got["not_a_grb"] is False and len(got["notices"]) == 2
    loaded(tmp_path, "json/gcnschema_swift_bat_guano.retraction.example.json")
    got = slot(tmp_path, "Swift-694215995")
    assert got["not_a_grb"] is True and got["ra_deg"] == 336.26 and len(got["notices"]) == 3


def test_an_einstein_probe_notice_is_recognised_by_its_schema(tmp_path):
    loaded(tmp_path, "json/gcnschema_einstein_probe_wxt_alert.example.json")
    got = slot(tmp_path, "EinsteinProbe-01708973486")
    assert (got["instrument"], got["ra_deg"], got["dec_deg"], got["error_radius_90_deg"]) == ("WXT", 120, 40, 0.02)


# ------------------------------------------------------------------ IceCube VOEvents → neutrino
@pytest.mark.parametrize("order", [1, -1], ids=["rev0-first", "rev1-first"])
def test_icecube_voevents_are_neutrino_slots_and_the_later_revision_wins(order, tmp_path):
    revisions = ("icecube_gold_173_134191_17593623_rev0.xml", "icecube_gold_173_134191_17593623_rev1.xml")
    report, rosters = loaded(tmp_path, *revisions[::order], "icecube_bronze_174_136918_45252263_rev0.xml")
    assert report.written == {"neutrino": 2}
    got = slot(tmp_path, "IC134191-17593623", "neutrino")
    # rev 1, by hand: C1 142.9499, C2 3.6600, Error2Radius 1.2199 (= src_error_90), energy 496.3637 TeV,
    # signalness 0.8283, FAR 0.2894 per year, issued 2020-06-15T16:10:36
    assert (got["ra_deg"], got["dec_deg"], got["ra_err_plus_deg"], got["dec_err_minus_deg"]) == (142.9499, 3.66,
                                                                                                 1.2199, 1.2199)
    assert (got["energy_tev"], got["signalness"], got["far_per_year"]) == (496.3637, 0.8283, 0.2894)
    assert (got["stream"], got["run_id"], got["event_id"]) == ("gold", "134191", "17593623")
    assert got["time"] == "2020-06-15T14:49:17.370000Z" and got["notice_time"] == "2020-06-15T16:10:36Z"
    assert slot(tmp_path, "IC136918-45252263", "neutrino")["stream"] == "bronze"
    assert rosters["neutrino"]["by_stream"] == {"bronze": 1, "gold": 1}


# ------------------------------------------------------------------ bad notices
def _text(name: str) -> str:
    return (DATA / name).read_text()


def bad_notices(folder: Path) -> dict[str, str]:
    """Hostile or broken notices made from real ones, by the reason each must be skipped with."""
    xrt = _text("swift_xrt_pos_67_1156572_ser1.xml")
    fin = _text("fermi_gbm_fin_pos_115_680782656.xml")
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE VOEvent [\n <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">\n'
            + "".join(f' <!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n' for i in range(9))
            + ']>\n<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://nasa.gsfc.gcn/SWIFT#'
              'XRT_Pos_1-1" role="observation"><What><Param name="Packet_Type" value="67"/><Param name="x" value="&j;"/>'
              '</What></voe:VOEvent>\n')
    made = {
        "truncated.xml": ("bad_xml", xrt[:len(xrt) // 2]),
        "entity-bomb.xml": ("bad_xml", bomb),
        "off-sky.xml": ("bad_coordinates", xrt.replace("<C2>44.4833</C2>", "<C2>95.0000</C2>")),
        "radius-zero.xml": ("bad_error", fin.replace("<Error2Radius>11.3400</Error2Radius>",
                                                     "<Error2Radius>0.0000</Error2Radius>")),
        "radius-negative.xml": ("bad_error", xrt.replace("<Error2Radius>0.0010</Error2Radius>",
                                                         "<Error2Radius>-0.0010</Error2Radius>")),
        "no-time.xml": ("no_time", fin.replace("<ISOTime>2022-07-29T10:17:31.51</ISOTime>", "")),
    }
    reasons = {}
    for name, (reason, text) in made.items():
        assert text != _text("swift_xrt_pos_67_1156572_ser1.xml") and text != fin, name  # each edit took
        (folder / name).write_text(text)
        reasons[name] = reason
    return reasons


def test_bad_notices_are_skipped_with_their_reason_and_nothing_stored_is_lost(tmp_path):
    """Good notices stored first; then the bad ones (two of them about stored triggers)
    with more good ones, in a child process with 1 GB of address space: each bad one is
    skipped and named, the good ones load, the stored slots are untouched."""
    store = tmp_path / "store"
    first = load(store, DATA / "swift_bat_grb_pos_61_1156572.xml", DATA / "swift_xrt_pos_67_1156572_ser1.xml",
                 DATA / "fermi_gbm_fin_pos_115_680782656.xml")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in (store / "grb").glob("*-*.json")}
    bad = tmp_path / "bad"
    bad.mkdir()
    reasons = bad_notices(bad)
    done = load(store, *sorted(bad.iterdir()), DATA / "swift_xrt_pos_67_1093742.xml",
                DATA / "swift_xrt_pos_67_1156572_ser2.xml", limit_gb=1.0)
    assert done.returncode == EXIT_INPUT_UNUSED, done.stderr  # the bad files are named as not used
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["files"]["written"] == {"grb": 2}
    unused = {Path(entry["file"]).name: entry["reason"] for entry in summary["unused_files"]}
    assert unused == reasons
    for name in reasons:
        assert name in done.stderr  # each named in the log
    assert "DTD" in done.stderr and "truncated" in done.stderr
    after = {p.name: p.read_bytes() for p in (store / "grb").glob("*-*.json")}
    assert after["Fermi-680782656.json"] == before["Fermi-680782656.json"]
    assert set(after) == set(before) | {"Swift-1093742.json"}
    joined = json.loads(after["Swift-1156572.json"])  # the good second XRT joined; the bad copies did not
    assert [n["serial"] for n in joined["notices"]] == [2, 1, 2] and joined["error_radius_deg"] == 0.0005


def test_the_real_malformed_notice_is_skipped_and_the_rest_loads(tmp_path):
    """mwa_trigger's Swift_unknown_fail.xml uses xsi: without declaring it."""
    report, _ = loaded(tmp_path, "swift_bat_quicklook_pos_97_1149250_MALFORMED-unbound-prefix.xml",
                       "swift_uvot_pos_81_1121751.xml")
    assert report.skipped == {"bad_xml": 1} and report.written == {"grb": 1}
    assert "unbound prefix" in report.unused[0]["detail"]


@pytest.mark.parametrize("change,reason", [
    ({"id": {"a": 1}}, "missing_field"), ({"ra": "north"}, "bad_coordinates"), ({"dec": -91}, "bad_coordinates"),
    ({"ra_dec_error": -1}, "bad_error"), ({"ra_dec_error": 0}, "bad_error"), ({"containment_probability": 2},
                                                                                 "bad_value"),
    ({"trigger_time": None}, "no_time"), ({"alert_tense": "injection"}, "test_notice")])
def test_a_bad_json_notice_is_skipped_with_its_reason(change, reason, tmp_path):
    doc = json.loads((JSON_DIR / "gcnschema_fermi_gbm_trigger.final.example.json").read_text()) | change
    (tmp_path / "notice.json").write_text(json.dumps(doc))
    report, _ = load_files(str(tmp_path / "store"), [str(tmp_path / "notice.json")])
    assert report.skipped == {reason: 1} and report.written == {}


# ------------------------------------------------------------------ the cross-match
def transient(slot_id: str, ra: float, dec: float, first: float) -> dict[str, Any]:
    return {"slot_id": slot_id, "kind": "transient", "subtype": "sn", "ra_deg": ra, "dec_deg": dec,
            "first_mjd": first, "last_mjd": first + 5, "n_alerts": 3, "provisional": False, "lat": None,
            "lon": None}


def place(store: Path, *placed: dict[str, Any]) -> None:
    transients = kinds.spec("transient").store(str(store))
    for each in placed:
        transients.write_slot(each["slot_id"], each)
    transients.rebuild_index(kinds.spec("transient").index_fields)


def crossmatch(store: Path) -> dict:
    from alert_pipeline.storehouse.enrich import crossmatch as matching
    return matching.run(str(store), kinds.match_rules()())


def found(store: Path, slot_id: str) -> list[dict]:
    # absent and empty both mean "no coincidences" (docs/crossmatch.md)
    return slot(store, slot_id, "transient").get("multimessenger", [])


def test_a_transient_in_a_real_gbm_circle_half_a_day_later_matches_and_no_other(tmp_path):
    """GBM Final position of trigger 680782656: 316.69, −4.1699, 11.34° (statistical, 68 %)
    → 90 %: 1.4216 × sqrt(11.34² + 3.7²) = 16.957°. Transients placed north of the centre
    (along the meridian, so the separation is the Dec offset)."""
    loaded(tmp_path, "fermi_gbm_fin_pos_115_680782656.xml")
    t0 = mjd_of("2022-07-29T10:17:31.51Z")
    r90 = gbm_statistical_90(11.34)
    assert r90 == pytest.approx(16.957, abs=1e-3)
    place(tmp_path,
          transient("ZTF22inside", 316.69, -4.1699 + 10.0, t0 + 0.5),
          transient("ZTF22edge", 316.69, -4.1699 + r90 - 0.01, t0 + 1.0),
          transient("ZTF22outside", 316.69, -4.1699 + r90 + 0.01, t0 + 0.5),
          transient("ZTF22before", 316.69, -4.1699 + 1.0, t0 - 0.01),
          transient("ZTF22late", 316.69, -4.1699 + 1.0, t0 + 10.0))
    summary = crossmatch(tmp_path)
    assert summary["coincidences_by_kind"]["grb"] == 2
    # n_chance: 3 transients first seen in [T0, T0 + 3 d] × the 16.957° cap's share of the sky
    cap = 2 * math.pi * (1 - math.cos(math.radians(r90))) * (180 / math.pi) ** 2
    (entry,) = found(tmp_path, "ZTF22inside")
    assert entry == {"kind": "grb", "event": "Fermi-680782656", "dt_days": pytest.approx(0.5, abs=1e-6),
                     "separation_deg": pytest.approx(10.0, abs=1e-9), "radius_deg": pytest.approx(r90),
                     "n_chance": pytest.approx(3 * cap / SKY_DEG2)}
    assert 3 * cap / SKY_DEG2 == pytest.approx(0.0653, abs=1e-4)
    assert [e["event"] for e in found(tmp_path, "ZTF22edge")] == ["Fermi-680782656"]
    for other in ("ZTF22outside", "ZTF22before", "ZTF22late"):
        assert found(tmp_path, other) == [], other
    assert slot(tmp_path, "Fermi-680782656")["transients"] == ["ZTF22edge", "ZTF22inside"]
    again = crossmatch(tmp_path)
    assert again["slots_written"] == {}  # a rerun writes nothing


def test_a_swift_trigger_refined_by_xrt_matches_at_arcsecond_scale_only(tmp_path):
    """XRT (ser 2) of trigger 1156572: 18.3780, 44.4830, 0.0005° = 1.8″; BAT: 18.4033, 44.4885, 3′."""
    loaded(tmp_path, *SWIFT_1156572)
    t0 = mjd_of("2023-02-28T05:50:50.25Z")
    place(tmp_path,
          transient("ZTF23xrt", 18.378, 44.483 + 1.0 / 3600, t0 + 0.5),  # 1″ north of the XRT position
          transient("ZTF23near", 18.378, 44.483 + 3.0 / 3600, t0 + 0.5),  # 3″: outside 1.8″
          transient("ZTF23bat", 18.4033, 44.4885, t0 + 0.5))  # the BAT centre: 1.1′ from XRT's
    crossmatch(tmp_path)
    (entry,) = found(tmp_path, "ZTF23xrt")
    assert entry["separation_deg"] * 3600 == pytest.approx(1.0, abs=1e-6)
    assert entry["radius_deg"] == 0.0005
    assert found(tmp_path, "ZTF23near") == [] and found(tmp_path, "ZTF23bat") == []


def test_a_retraction_removes_the_matches_it_had(tmp_path):
    loaded(tmp_path, "json/gcnschema_swift_bat_guano.loc_arc_min.example.json")
    t0 = mjd_of("2022-12-31T21:46:05.13Z")
    place(tmp_path, transient("ZTF22guano", 336.26, 25.139 + 0.2, t0 + 0.5))
    crossmatch(tmp_path)
    assert [e["event"] for e in found(tmp_path, "ZTF22guano")] == ["Swift-694215995"]
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "grb").glob("*-*.json")}
    loaded(tmp_path, "json/gcnschema_swift_bat_guano.retraction.example.json", "swift_uvot_pos_81_1121751.xml")
    assert slot(tmp_path, "Swift-694215995")["not_a_grb"] is True
    summary = crossmatch(tmp_path)
    assert found(tmp_path, "ZTF22guano") == [] and slot(tmp_path, "Swift-694215995")["transients"] == []
    assert summary["skipped"]["retracted"] == 1
    assert set(stamps) == {"Swift-694215995.json"}


def test_the_window_is_a_crossmatch_setting(tmp_path):
    assert kinds.match_rules()().grb_window_days == 3.0
    text = (REPO / "config.example.toml").read_text()
    assert "# grb_window_days = 3.0" in text.split("\n[crossmatch]\n")[1]


# ------------------------------------------------------------------ the wrapper's messenger steps
def test_the_wrapper_loads_dropped_notices_and_gcn_voevents(kafka, tmp_path):
    """MESSENGER_FILES (Swift BAT + two XRT, an IceCube VOEvent, an EP JSON notice) and
    GCN (a GBM Final and Flight position on a topic given by GCN_TOPICS)."""
    import uuid

    from tests.conftest import new_topic, produce
    from tests.test_messengers_gcn import gcn_env
    from tests.test_wrapper import consumer_env, run_wrapper, wrapper_env

    bootstrap = kafka.bootstrap_servers
    notices = new_topic(bootstrap)
    produce(bootstrap, notices, [(DATA / name).read_bytes() for name in ("fermi_gbm_fin_pos_115_680782656.xml",
                                                                        "fermi_gbm_flt_pos_111_680977982.xml")])
    dropped = tmp_path / "dropped"
    dropped.mkdir()
    for name in (*SWIFT_1156572, "icecube_gold_173_134191_17593623_rev1.xml"):
        shutil.copy(DATA / name, dropped / name)
    shutil.copy(JSON_DIR / "gcnschema_einstein_probe_wxt_alert.example.json", dropped / "ep.json")
    gcn = {key: value for key, value in gcn_env(bootstrap, f"gcn-{uuid.uuid4().hex[:8]}", tmp_path).items()
           if key.startswith("GCN_")}
    env = wrapper_env(consumer_env(bootstrap, new_topic(bootstrap), tmp_path / "out"), REPORT="0",
                      MESSENGER_FILES=str(dropped), EVENT_STOREHOUSE=str(tmp_path / "store"), GCN_TOPICS=notices,
                      **gcn)
    done = run_wrapper(env)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "step messengers-files: finished" in log and "step messengers-gcn: finished" in log
    store = tmp_path / "store"
    assert slot(store, "Swift-1156572")["error_radius_deg"] == 0.0005
    assert slot(store, "EinsteinProbe-01708973486")["ra_deg"] == 120
    assert slot(store, "IC134191-17593623", "neutrino")["ra_deg"] == 142.9499
    assert slot(store, "Fermi-680782656")["ra_deg"] == 316.69 and slot(store, "Fermi-680977982")["ra_deg"] == 220.8667
    roster = json.loads((store / "grb" / "roster.json").read_text())
    assert roster["by_mission"] == {"EinsteinProbe": 1, "Fermi": 2, "Swift": 1}
    assert roster["by_instrument"] == {"EinsteinProbe WXT": 1, "Fermi GBM": 2, "Swift XRT": 1}


# ------------------------------------------------------------------ GCN Kafka (the suite's broker)
def test_a_bad_voevent_on_gcn_is_quarantined_once_and_the_notices_around_it_load(kafka, tmp_path):
    """The real-topic-name run is in tests/test_messengers_gcn.py; here a truncated XRT
    notice between two good ones on a topic of this test's own."""
    import subprocess
    import sys
    import uuid

    from tests.conftest import new_topic, produce
    from tests.test_kafka_run import committed
    from tests.test_messengers_gcn import gcn_env

    bootstrap = kafka.bootstrap_servers
    topic = new_topic(bootstrap)
    xrt = (DATA / "swift_xrt_pos_67_1156572_ser1.xml").read_bytes()
    produce(bootstrap, topic, [(DATA / "swift_bat_grb_pos_61_1156572.xml").read_bytes(), xrt[:len(xrt) // 2],
                               (DATA / "swift_xrt_pos_67_1156572_ser2.xml").read_bytes()])
    store, group = tmp_path / "store", f"gcn-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, str(REPO / "transient_kind_builder.py"), "load-messengers", "--gcn",
                           "--gcn-topics", topic, "--storehouse", str(store), "--idle-timeout", "20"],
                          env=gcn_env(bootstrap, group, tmp_path), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["gcn"]["skipped"] == {"bad_xml": 1}
    got = slot(store, "Swift-1156572")
    assert [n["type"] for n in got["notices"]] == ["SWIFT_XRT_POSITION", "SWIFT_BAT_GRB_POS_ACK"]
    assert got["error_radius_deg"] == 0.0005
    record = json.loads((store / "quarantine" / "gcn" / f"{topic}_0_1.json").read_text())
    assert record["reason"] == "bad_xml" and "truncated" in record["detail"]
    assert committed(bootstrap, group, topic) == [3]
