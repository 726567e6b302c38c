"""Decode → record → write, offline: every framing and schema version to the README's CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import struct
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import fastavro
import pytest

from alert_pipeline.consumer.config import ConsumerConfig
from alert_pipeline.consumer.csvfiles import format_cell
from alert_pipeline.consumer.cutouts import fits_problem
from alert_pipeline.consumer.decode import AlertDecoder, bundled_versions, schema_id_for_version
from alert_pipeline.consumer.records import COLUMNS, DIA_SOURCE_FIELDS, extendedness_stats
from alert_pipeline.consumer.runner import run
from alert_pipeline.consumer.sources import MemorySource, Message
from alert_pipeline.durable import safe_name
from alert_pipeline.errors import DecodeError
from devtools.factory import TESTED_VERSIONS, AlertFactory, encode_antares_locus, malformed_messages
from lsst_alert_consumer import LSSTAlertConsumer

PROCESSED_AT = dt.datetime(2026, 2, 10, 2, 3, 15, tzinfo=dt.UTC)


def make_consumer(tmp_path: Path, consumer_class=LSSTAlertConsumer, **settings) -> LSSTAlertConsumer:
    config = ConsumerConfig(kafka_config={"bootstrap.servers": "unused:9092", "group.id": "g"}, topics=["t"],
                            output_dir=str(tmp_path / "out"), **settings)
    return consumer_class(config)


def write_offline(consumer: LSSTAlertConsumer, values: list[bytes], processed_at=PROCESSED_AT):
    """The production loop (``runner.run``: recover, batches, durable writes, finish) over
    messages held in memory, with Kafka-like origins, processed at ``processed_at``."""
    messages = [Message(value, {"topic": "alerts", "partition": 0, "offset": offset})
                for offset, value in enumerate(values)]
    return run(consumer, MemorySource(messages), now=lambda: processed_at)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def day_csv(tmp_path: Path, day: str = "20260210", suffix: str = "") -> Path:
    return tmp_path / "out" / "data" / f"lsst_alerts_{day}{suffix}.csv"


def as_written(factory: AlertFactory, packet: dict) -> dict:
    """The packet as a reader sees it (float fields are 32-bit), decoded independently
    of the consumer by fastavro with the bundled schema."""
    buffer = io.BytesIO(factory.serialize(packet))
    return fastavro.schemaless_reader(buffer, factory.schema)


def expected_cell(value) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def check_row_against_packet(row: dict[str, str], packet: dict) -> None:
    """Every column checked against the packet field the version spells it with."""
    source = packet["diaSource"]
    alert_id = packet.get("alertId", packet.get("diaSourceId"))
    assert row["alertId"] == str(alert_id)
    for column, names in DIA_SOURCE_FIELDS.items():
        if column == "diaObjectId":
            continue
        name = next(n for n in names if n in source)
        assert row[column] == expected_cell(source[name]), column
    # The DIAObject: the diaSource's id, else the packet's diaObject's; 0 (Solar-System) is none.
    object_ids = [source.get("diaObjectId"), (packet.get("diaObject") or {}).get("diaObjectId")]
    assert row["diaObjectId"] == next((str(i) for i in object_ids if i not in (None, 0)), "")
    values = [s.get("extendedness") for s in [source, *(packet.get("prvDiaSources") or [])]]
    values = [v for v in values if v is not None and not math.isnan(v)]
    if values:
        ordered = sorted(values)
        middle = len(ordered) // 2
        median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        assert float(row["extendednessMedian"]) == median
        assert float(row["extendednessMin"]) == min(values)
        assert float(row["extendednessMax"]) == max(values)
    else:
        assert row["extendednessMedian"] == row["extendednessMin"] == row["extendednessMax"] == ""
    assert row["timestamp"] == "2026-02-10T02:03:15Z"
    check_solar_system_identity(row, packet)


def check_solar_system_identity(row: dict[str, str], packet: dict) -> None:
    """ssObjectId: ssSource's (v8+), else the diaSource's, else ssObject's (v<=7), 0 = none;
    the designation: ssSource's (v10+), mpc_orbits' (v10+) or MPCORB's mpcDesignation (v8-9)."""
    ids = [(packet.get(name) or {}).get("ssObjectId") for name in ("ssSource", "diaSource", "ssObject")]
    assert row["ssObjectId"] == next((str(i) for i in ids if i not in (None, 0)), "")
    names = [(packet.get("ssSource") or {}).get("designation"), (packet.get("mpc_orbits") or {}).get("designation"),
             (packet.get("MPCORB") or {}).get("mpcDesignation")]
    assert row["designation"] == next((n.strip() for n in names if n and n.strip()), "")


@pytest.mark.parametrize("version", TESTED_VERSIONS)
def test_golden_row_and_cutouts_per_schema_version(tmp_path, version):
    factory = AlertFactory(version, seed=21)
    packets = [factory.alert(cutout_size=40) for _ in range(3)]
    consumer = make_consumer(tmp_path)
    result = write_offline(consumer, [factory.frame(p) for p in packets])
    assert (result.written, result.quarantined) == (3, 0)
    rows = read_csv(day_csv(tmp_path))
    assert list(rows[0].keys()) == list(COLUMNS)
    for row, packet in zip(rows, packets, strict=True):
        check_row_against_packet(row, as_written(factory, packet))
        source_id = packet["diaSource"]["diaSourceId"]
        for kind, field in (("science", "cutoutScience"), ("template", "cutoutTemplate"),
                            ("difference", "cutoutDifference")):
            path = row[f"{kind}_cutout_path"]
            assert path == f"cutouts/{source_id}_{kind}_20260210_020315.fits"
            assert (tmp_path / "out" / path).read_bytes() == packet[field]
        check_light_curve(tmp_path / "out" / row["lightcurve_path"], as_written(factory, packet))


def check_light_curve(path: Path, packet: dict) -> None:
    """The light-curve table, read by astropy, holds every prvDiaSource and the diaSource."""
    from astropy.io import fits
    from astropy.table import Table

    with fits.open(path) as hdus:
        hdus.verify("exception")
    table = Table.read(path)
    sources = [*(packet.get("prvDiaSources") or []), packet["diaSource"]]
    time_name = next(n for n in DIA_SOURCE_FIELDS["mjd"] if n in sources[0])
    flux_name = next(n for n in DIA_SOURCE_FIELDS["psFlux"] if n in sources[0])
    band_name = next(n for n in DIA_SOURCE_FIELDS["filterName"] if n in sources[0])
    expected = sorted((s[time_name], s[band_name], s[flux_name]) for s in sources)
    assert len(table) == len(expected) and table.meta["DIASRC"] == packet["diaSource"]["diaSourceId"]
    assert list(table["midpointMjdTai"]) == [e[0] for e in expected]
    assert list(table["band"]) == [e[1] for e in expected]
    assert [float(f) for f in table["psfFlux"]] == [e[2] for e in expected]  # float32 both sides
    assert str(table["psfFlux"].unit) == "nJy"


@pytest.mark.parametrize("version", bundled_versions())
def test_lsst_alert_packet_sample_data_every_version(tmp_path, version):
    """lsst-alert-packet's own sample alert of each version, as an Avro container file."""
    from lsst.alert.packet.schema import get_schema_path

    major, minor = version.split(".")
    sample_dir = Path(get_schema_path(int(major), int(minor))) / "sample_data"
    with open(sample_dir / "fakeAlert.avro", "rb") as handle:
        (expected,) = list(fastavro.reader(handle))
    as_json = json.loads((sample_dir / "alert.json").read_text())
    consumer = make_consumer(tmp_path)
    result = write_offline(consumer, [(sample_dir / "fakeAlert.avro").read_bytes()])
    assert result.written == 1
    (row,) = read_csv(day_csv(tmp_path))
    check_row_against_packet(row, expected)
    assert float(row["ra"]) == as_json["diaSource"]["ra"]
    assert row["science_cutout_path"] == row["template_cutout_path"] == ""  # the samples carry no cutouts


def test_solar_system_alert_without_dia_object(tmp_path):
    factory = AlertFactory("11.1", seed=4)
    packet = factory.alert(solar_system=True)
    write_offline(make_consumer(tmp_path), [factory.frame(packet)])
    (row,) = read_csv(day_csv(tmp_path))
    assert row["diaObjectId"] == ""
    assert row["diaSourceId"] == str(packet["diaSource"]["diaSourceId"])
    check_row_against_packet(row, as_written(factory, packet))


def test_solar_system_identity_columns_every_schema_with_one(tmp_path):
    """v7 (ssObject), v9 (ssSource + MPCORB), v10 and v11 (ssSource + mpc_orbits), with
    the designation set by hand: the CSV carries both, appended after the first 16."""
    for number, version in enumerate(("7.0", "9.0", "10.0", "11.1")):
        factory = AlertFactory(version, seed=40 + number)
        packet = factory.alert(cutouts=False, solar_system=True)
        for record, field in (("ssSource", "designation"), ("mpc_orbits", "designation"), ("MPCORB", "mpcDesignation")):
            if isinstance(packet.get(record), dict) and field in packet[record]:
                packet[record][field] = "2015 BQ311"
        out = tmp_path / version
        write_offline(make_consumer(out), [factory.frame(packet)])
        (row,) = read_csv(day_csv(out))
        assert list(row)[16:19] == ["ssObjectId", "designation", "lightcurve_path"]
        assert row["ssObjectId"] != "" and row["ssObjectId"] != "0"
        assert row["designation"] == ("" if version == "7.0" else "2015 BQ311")
        check_solar_system_identity(row, as_written(factory, packet))
    plain = AlertFactory("11.1", seed=50)
    write_offline(make_consumer(tmp_path / "plain"), [plain.frame(plain.alert(cutouts=False))])
    (row,) = read_csv(day_csv(tmp_path / "plain"))
    assert row["ssObjectId"] == row["designation"] == ""  # not associated: empty, never 0


def test_upgrade_day_keeps_the_old_file_and_starts_a_new_one(tmp_path):
    """A day file written before the three new columns existed: its rows stay as they are,
    the new rows go to ``_2`` with the new header, and the report reads both."""
    old_header = ",".join(COLUMNS[:16])
    data = tmp_path / "out" / "data"
    data.mkdir(parents=True)
    old = data / "lsst_alerts_20260210.csv"
    old.write_text(f"{old_header}\n1,1,,10.0,-5.0,61000.1,g,1.0,0.1,,,,,,,2026-02-10T01:00:00Z\n")
    before = old.read_bytes()
    factory = AlertFactory("11.1", seed=51)
    write_offline(make_consumer(tmp_path), [factory.frame(factory.alert(cutouts=False))])
    assert old.read_bytes() == before
    (row,) = read_csv(day_csv(tmp_path, suffix="_2"))
    assert list(row) == list(COLUMNS) and row["lightcurve_path"].startswith("cutouts/")
    from alert_pipeline.report.night import read_night
    assert len(read_night(tmp_path / "out", "20260210").alerts) == 2


def test_light_curves_can_be_left_out(tmp_path):
    factory = AlertFactory("11.1", seed=52)
    write_offline(make_consumer(tmp_path, light_curves=False), [factory.frame(factory.alert(cutout_size=30))])
    (row,) = read_csv(day_csv(tmp_path))
    assert row["lightcurve_path"] == "" and row["science_cutout_path"]
    assert not [name for name in os.listdir(tmp_path / "out" / "cutouts") if "_lightcurve_" in name]


def test_alert_without_cutouts_has_empty_paths_and_no_files(tmp_path):
    factory = AlertFactory("11.1", seed=6)
    write_offline(make_consumer(tmp_path), [factory.frame(factory.alert(cutouts=False))])
    (row,) = read_csv(day_csv(tmp_path))
    assert row["science_cutout_path"] == row["template_cutout_path"] == row["difference_cutout_path"] == ""
    # only the alert's light-curve table, which every LSST alert has
    assert ["cutouts/" + name for name in os.listdir(tmp_path / "out" / "cutouts")] == [row["lightcurve_path"]]


def test_null_and_nan_extendedness_are_ignored():
    alert = {"diaSource": {"extendedness": float("nan")},
             "prvDiaSources": [{"extendedness": None}, {"extendedness": 0.25}, {"extendedness": 0.75},
                               {"extendedness": 1.0}]}
    assert extendedness_stats(alert) == (0.75, 0.25, 1.0)
    assert extendedness_stats({"diaSource": {"extendedness": None}, "prvDiaSources": None}) == (None, None, None)


def test_all_null_extendedness_gives_empty_cells_never_none_or_nan(tmp_path):
    factory = AlertFactory("10.0", seed=8)
    packet = factory.alert(extendedness=None, cutouts=False)
    packet["diaSource"]["psfFluxErr"] = float("nan")
    write_offline(make_consumer(tmp_path), [factory.frame(packet)])
    text = day_csv(tmp_path).read_text()
    assert "None" not in text and "nan" not in text.lower()
    (row,) = read_csv(day_csv(tmp_path))
    assert row["extendednessMedian"] == row["psFluxErr"] == ""


def test_floats_round_trip_exactly():
    for value in (0.1, 1 / 3, 351.570546978, 60902.993305483615, 1e-300):
        assert float(format_cell(value)) == value
    assert format_cell(None) == "" and format_cell(float("nan")) == ""


def test_container_file_with_several_alerts(tmp_path):
    factory = AlertFactory("9.0", seed=9)
    packets = [factory.alert(cutouts=False) for _ in range(4)]
    write_offline(make_consumer(tmp_path), [factory.container_file(packets)])
    rows = read_csv(day_csv(tmp_path))
    assert [row["diaSourceId"] for row in rows] == [str(p["diaSource"]["diaSourceId"]) for p in packets]


def test_schemaless_with_configured_version(tmp_path):
    factory = AlertFactory("8.0", seed=10)
    packet = factory.alert(cutouts=False)
    consumer = make_consumer(tmp_path, framing="schemaless", schema_version="8.0")
    write_offline(consumer, [factory.serialize(packet)])
    (row,) = read_csv(day_csv(tmp_path))
    check_row_against_packet(row, as_written(factory, packet))


def test_every_malformed_kind_raises_a_named_decode_error():
    decoder = AlertDecoder()
    reasons = {}
    for what, value in malformed_messages(AlertFactory("11.1", seed=1)):
        with pytest.raises(DecodeError) as caught:
            decoder.decode(value)
        reasons[what] = caught.value.reason
    assert reasons == {"random bytes": "unrecognised-framing", "truncated Avro": "corrupt-payload",
                       "unknown schema id": "unknown-schema-id", "empty message": "corrupt-payload",
                       "wrong schema id": "corrupt-payload"}


def test_corrupt_message_is_quarantined_with_its_coordinates(tmp_path):
    factory = AlertFactory("11.1", seed=12)
    good = factory.frame(factory.alert(cutouts=False))
    value = good[:5] + b"\x00"  # the frame header, then a payload cut after one byte
    result = write_offline(make_consumer(tmp_path), [good, value])
    assert (result.written, result.quarantined) == (1, 1)
    sidecar = json.loads((tmp_path / "out" / "quarantine" / "alerts_0_1.json").read_text())
    assert sidecar["reason"] == "corrupt-payload" and sidecar["offset"] == 1 and sidecar["topic"] == "alerts"
    assert (tmp_path / "out" / "quarantine" / "alerts_0_1.bin").read_bytes() == value


def test_invalid_fits_cutout_row_kept_path_empty_bytes_quarantined(tmp_path):
    factory = AlertFactory("11.1", seed=13)
    packet = factory.alert(cutout_size=32)
    packet["cutoutTemplate"] = b"this is not a FITS file" * 200
    result = write_offline(make_consumer(tmp_path), [factory.frame(packet)])
    assert (result.written, result.quarantined, result.cutouts) == (1, 1, 2)
    (row,) = read_csv(day_csv(tmp_path))
    assert row["template_cutout_path"] == ""
    assert row["science_cutout_path"] and row["difference_cutout_path"]
    source_id = packet["diaSource"]["diaSourceId"]
    stem = tmp_path / "out" / "quarantine" / f"alerts_0_0_{source_id}_template"
    assert stem.with_suffix(".bin").read_bytes() == packet["cutoutTemplate"]
    assert json.loads(stem.with_suffix(".json").read_text())["reason"] == "invalid-cutout"


def test_fits_check():
    good = AlertFactory("11.1", seed=1).alert(cutout_size=30)["cutoutScience"]
    assert fits_problem(good) is None
    assert "2880" in fits_problem(good[:-1])
    assert "SIMPLE" in fits_problem(b"X" * 2880)
    assert fits_problem(b"SIMPLE  =                    T" + b" " * (2880 - 30)) == "no END card in the primary header"


def test_names_from_messages_cannot_leave_the_output_dir():
    assert "/" not in safe_name("../../etc/passwd") and not safe_name("..").startswith(".")


class _RegistryHandler(BaseHTTPRequestHandler):
    """The Confluent schema-registry endpoint the client uses: GET /schemas/ids/{id}."""

    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).requests.append(self.path)
        parts = self.path.split("?")[0].strip("/").split("/")
        schema_id = int(parts[2]) if parts[:2] == ["schemas", "ids"] and len(parts) == 3 else -1
        if schema_id == 1101:
            from lsst.alert.packet import Schema
            from lsst.alert.packet.schema import get_schema_path

            definition = Schema.from_file(f"{get_schema_path(11, 1)}/lsst.v11_1.alert.avsc").definition
            body = json.dumps({"schema": json.dumps(definition)}).encode()
            self.send_response(200)
        else:
            body = json.dumps({"error_code": 40403, "message": "Schema not found"}).encode()
            self.send_response(404)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry_url():
    server = HTTPServer(("127.0.0.1", 0), _RegistryHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _RegistryHandler.requests = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_schema_registry_through_confluent_client(tmp_path, registry_url):
    factory = AlertFactory("11.1", seed=14)
    packets = [factory.alert(cutouts=False) for _ in range(3)]
    unknown = b"\x00" + struct.pack(">I", 1102) + factory.serialize(packets[0])
    config = make_consumer(tmp_path).config
    config.kafka_config["schema.registry.url"] = registry_url
    consumer = LSSTAlertConsumer(config)
    result = write_offline(consumer, [factory.frame(p) for p in packets] + [unknown])
    assert (result.written, result.quarantined) == (3, 1)
    fetched = [path for path in _RegistryHandler.requests if path.startswith("/schemas/ids/1101")]
    assert len(fetched) == 1, _RegistryHandler.requests  # cached after the first fetch
    sidecar = json.loads((tmp_path / "out" / "quarantine" / "alerts_0_3.json").read_text())
    assert sidecar["reason"] == "unknown-schema-id" and registry_url in sidecar["detail"]
    assert "schema.registry.url" not in consumer.config.librdkafka_config()


def test_antares_locus_messages_both_layouts(tmp_path):
    properties = {"newest_alert_id": "lsst_alert:42", "newest_alert_observation_time": 61081.25,
                  "survey": {"lsst": {"dia_object_id": [555], "ss_object_id": []}},
                  "lsstext_extendedness_median": 0.5, "lsstext_extendedness_min": 0.125,
                  "lsstext_extendedness_max": 0.875}
    new_layout = {"id": "ANT2026abcdef", "ra": 150.25, "dec": -30.5, "properties": properties, "tags": ["x"]}
    old_layout = {"data": {"id": "ANT2026zzzzzz", "attributes": {"ra": 10.5, "dec": 2.25,
                                                                  "properties": dict(properties, newest_alert_id="lsst_alert:43")}}}
    result = write_offline(make_consumer(tmp_path), [encode_antares_locus(new_layout), encode_antares_locus(old_layout)])
    assert result.written == 2
    first, second = read_csv(day_csv(tmp_path))
    assert (first["alertId"], first["diaObjectId"], first["ra"], first["dec"]) == ("lsst_alert:42", "555", "150.25", "-30.5")
    assert (first["extendednessMedian"], first["extendednessMin"], first["extendednessMax"]) == ("0.5", "0.125", "0.875")
    assert first["mjd"] == "61081.25" and first["science_cutout_path"] == "" and first["psFlux"] == ""
    assert (second["ra"], second["alertId"]) == ("10.5", "lsst_alert:43")


class ConsumerWithExtras(LSSTAlertConsumer):
    def process_alert(self, alert):
        record = super().process_alert(alert)
        dia_source = alert.get("diaSource") or {}
        record["snr"] = dia_source.get("snr")
        record["prv_candidates"] = len(alert.get("prvDiaSources") or [])
        return record


def test_subclass_columns_appended_and_new_layout_starts_a_new_file(tmp_path):
    factory = AlertFactory("11.1", seed=15)
    plain = factory.alert(cutouts=False)
    write_offline(make_consumer(tmp_path), [factory.frame(plain)])
    extended = factory.alert(cutouts=False, n_prv_sources=5)
    write_offline(make_consumer(tmp_path, ConsumerWithExtras), [factory.frame(extended)])
    write_offline(make_consumer(tmp_path, ConsumerWithExtras), [factory.frame(factory.alert(cutouts=False))])

    assert read_csv(day_csv(tmp_path))[0]["diaSourceId"] == str(plain["diaSource"]["diaSourceId"])
    assert len(read_csv(day_csv(tmp_path))) == 1  # the old layout's file is untouched
    second = day_csv(tmp_path, suffix="_2")
    header = second.read_text().splitlines()[0].split(",")
    assert header == [*COLUMNS, "snr", "prv_candidates"]
    rows = read_csv(second)
    assert len(rows) == 2
    assert rows[0]["snr"] == repr(as_written(factory, extended)["diaSource"]["snr"]) and rows[0]["prv_candidates"] == "5"


def test_csv_is_per_utc_processing_day(tmp_path):
    factory = AlertFactory("11.1", seed=16)
    consumer = make_consumer(tmp_path)
    write_offline(consumer, [factory.frame(factory.alert(cutouts=False))], PROCESSED_AT)
    write_offline(consumer, [factory.frame(factory.alert(cutouts=False))], PROCESSED_AT + dt.timedelta(days=1))
    assert len(read_csv(day_csv(tmp_path, "20260210"))) == 1
    assert len(read_csv(day_csv(tmp_path, "20260211"))) == 1


def test_schema_ids_follow_rubin_convention():
    assert schema_id_for_version("11.1") == 1101 and schema_id_for_version("7.4") == 704
    assert "11.1" in bundled_versions() and "3.0" in bundled_versions()
    # The versions read from the schema tree are exactly those lsst-alert-packet's registry finds.
    from lsst.alert.packet import SchemaRegistry

    shipped = SchemaRegistry.all_schemas_from_filesystem().known_versions
    assert bundled_versions() == sorted(shipped, key=lambda version: tuple(map(int, version.split("."))))


def test_offline_command_line_on_a_frames_file(tmp_path):
    import subprocess
    import sys

    from alert_pipeline.consumer.avro import resolve_decoder
    from alert_pipeline.consumer.sources import write_frames_file
    factory = AlertFactory("11.1", seed=17)
    frames = tmp_path / "night.frames"
    write_frames_file(str(frames), [factory.frame(factory.alert(cutout_size=30)) for _ in range(5)])
    container = tmp_path / "two.avro"  # a container file: always read by fastavro, whatever the decoder
    container.write_bytes(factory.container_file([factory.alert(cutout_size=30) for _ in range(2)]))
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(repo / "lsst_alert_consumer.py"), "--from-file", str(frames),
                           str(container), "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LSST Alert Consumer finished: written=7" in done.stderr
    configured = resolve_decoder("auto")
    assert f"decoder: {configured} for Confluent-framed and schemaless Avro" in done.stderr
    used = {configured: 5, "fastavro": 1} if configured != "fastavro" else {"fastavro": 6}
    assert "decoded by: " + ", ".join(f"{name} ({count} messages)" for name, count in used.items()) in done.stderr
    assert len(os.listdir(tmp_path / "out" / "cutouts")) == (5 + 2) * 4  # three cutouts and a light curve per alert


def test_registry_credentials_never_reach_a_quarantine_sidecar(tmp_path, registry_url):
    factory = AlertFactory("11.1", seed=15)
    unknown = b"\x00" + struct.pack(">I", 1102) + factory.serialize(factory.alert(cutouts=False))
    config = make_consumer(tmp_path).config
    config.kafka_config["schema.registry.url"] = registry_url.replace("http://", "http://reader:hunter2@")
    result = write_offline(LSSTAlertConsumer(config), [unknown])
    assert result.quarantined == 1
    (sidecar,) = (tmp_path / "out" / "quarantine").glob("*.json")
    text = sidecar.read_text()
    assert json.loads(text)["reason"] == "unknown-schema-id"
    assert "hunter2" not in text and "127.0.0.1" in text


def test_broker_delivered_container_file_through_the_consumer(tmp_path):
    """As Fink's data transfer delivers alerts: an enriched writer schema (extra columns
    ignored), all-null Solar-System records, diaObjectId 0 on Solar-System alerts, 350
    prvDiaSources plus forced sources, PSFIMAGE cutouts without a mask."""
    from astropy.io import fits

    from devtools.factory import broker_container

    factory = AlertFactory("10.0", seed=16)
    ordinary = [factory.alert(cutout_size=30, psf_cutouts=True, n_prv_sources=350, n_prv_forced=350)
                for _ in range(3)]
    asteroid = factory.alert(cutouts=False, solar_system=True)
    assert asteroid["diaSource"]["diaObjectId"] == 0
    result = write_offline(make_consumer(tmp_path), [broker_container(factory, [*ordinary, asteroid])])
    assert (result.written, result.quarantined, result.cutouts) == (4, 0, 9)
    rows = read_csv(day_csv(tmp_path))
    assert list(rows[0]) == list(COLUMNS)  # the broker's own columns do not leak in
    for row, packet in zip(rows, [*ordinary, asteroid], strict=True):
        check_row_against_packet(row, as_written(factory, packet))
    assert rows[-1]["diaObjectId"] == "" and rows[0]["diaObjectId"] == str(ordinary[0]["diaSource"]["diaObjectId"])
    with fits.open(tmp_path / "out" / rows[0]["science_cutout_path"]) as hdus:
        assert [hdu.name for hdu in hdus] == ["PRIMARY", "UNCERT", "PSFIMAGE"]
