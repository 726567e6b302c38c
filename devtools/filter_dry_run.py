"""The ANTARES filter's local dry run: ``python3 antares_extendedness_filter.py FILES...``.

Reads LSST alert packets (Avro container files with any writer schema that holds the
LSST alert fields, e.g. files from Fink's data transfer; framed messages; ``.frames``
files) and exported locus JSON, builds DevKit loci the way ANTARES associates alerts,
runs the filter through ``BaseFilter.run`` and prints each decision and the pass rate.
The filter module is passed in, so its constants are the ones the user just edited.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, TextIO

from antares_devkit.models import DevkitAlert, DevKitLocus

from alert_pipeline.consumer.decode import AlertDecoder
from alert_pipeline.consumer.records import dia_object_id
from alert_pipeline.consumer.sources import read_message_files
from alert_pipeline.errors import DecodeError

LSST_SURVEY = 4
SOLAR_SYSTEM_PACKET_FIELDS = ("ssSource", "ssObject", "MPCORB", "mpc_orbits")
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def alert_properties(packet: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """An LSST alert packet → the alert properties ANTARES gives filters (``lsst_diaSource_*``,
    ``lsst_ssSource_*``, ``ant_survey`` = 4) and its MJD."""
    source = packet.get("diaSource") or {}
    properties: dict[str, Any] = {"ant_survey": LSST_SURVEY}
    properties.update({f"lsst_diaSource_{key}": value for key, value in source.items()
                       if isinstance(value, (int, float, str)) or value is None})
    solar = packet.get("ssSource") or {}
    properties.update({f"lsst_ssSource_{key}": value for key, value in solar.items()
                       if isinstance(value, (int, float, str))})
    mjd = source.get("midpointMjdTai", source.get("midPointTai")) or 0.0
    return properties, float(mjd)


def locus_key(packet: Mapping[str, Any]) -> str:
    """How ANTARES would associate the alert: by DIAObject, else by Solar-System object,
    else the alert is a locus of its own (never merged with unrelated alerts)."""
    source = packet.get("diaSource") or {}
    object_id = dia_object_id(packet)
    if object_id is not None:
        return f"dia{object_id}"
    if source.get("ssObjectId") not in (None, 0):
        return f"ss{source['ssObjectId']}"
    return f"alert{source.get('diaSourceId', id(packet))}"


def loci_from_packets(packets: Iterable[Mapping[str, Any]]) -> list[DevKitLocus]:
    """Group packets into DevKitLoci (see ``locus_key``); each packet's prvDiaSources
    become earlier alerts of its locus."""
    groups: dict[str, dict[str, Any]] = {}
    for packet in packets:
        source = packet.get("diaSource") or {}
        locus = groups.setdefault(locus_key(packet), {
            "ra": source.get("ra") or 0.0, "dec": source.get("dec", source.get("decl")) or 0.0,
            "alerts": {}, "dia": set(), "ss": set()})
        if dia_object_id(packet) is not None:
            locus["dia"].add(dia_object_id(packet))
        if source.get("ssObjectId"):
            locus["ss"].add(source["ssObjectId"])
        solar = {name: packet.get(name) for name in SOLAR_SYSTEM_PACKET_FIELDS if packet.get(name) is not None}
        for previous in packet.get("prvDiaSources") or []:
            properties, mjd = alert_properties({"diaSource": previous})
            locus["alerts"].setdefault(previous.get("diaSourceId"), (properties, mjd, {}))
        properties, mjd = alert_properties(packet)
        locus["alerts"][source.get("diaSourceId")] = (properties, mjd, {"alert_packet": solar} if solar else {})
    loci = []
    for key, group in groups.items():
        alerts = [DevkitAlert(id=f"lsst_alert:{alert_id}", mjd=mjd, properties=properties,
                              non_persistent_properties=extra)
                  for alert_id, (properties, mjd, extra) in sorted(group["alerts"].items(), key=lambda i: i[1][1])]
        survey = {"lsst": {"dia_object_id": sorted(group["dia"]), "ss_object_id": sorted(group["ss"])}}
        loci.append(DevKitLocus(id=f"dryrun:{key}", ra=group["ra"], dec=group["dec"], alerts=alerts,
                                internal_properties={"survey": survey}))
    return loci


def locus_from_dict(data: Mapping[str, Any]) -> DevKitLocus:
    """A DevKitLocus from exported JSON; older exports list ``grav_wave_events_metadata``
    as bare event ids, which the current model does not accept, so those are dropped."""
    data = dict(data)
    if isinstance(data.get("grav_wave_events_metadata"), list):
        data.pop("grav_wave_events_metadata")
    return DevKitLocus.model_validate(data)


def read_inputs(paths: Sequence[str], err: TextIO = sys.stderr) -> list[DevKitLocus]:
    """Packets from Avro container files and framed-message files, loci from JSON files."""
    packets, loci = [], []
    decoder = AlertDecoder()
    for path in paths:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            loci.extend(locus_from_dict(item) for item in (data if isinstance(data, list) else [data]))
            continue
        for message in read_message_files([path], MAX_MESSAGE_BYTES):
            try:
                if message.problem:
                    raise DecodeError(message.problem[1])
                packets.extend(decoder.decode(message.value))
            except DecodeError as exc:
                print(f"skipped {path}#{message.origin['index']}: {exc}", file=err)
    return loci_from_packets(packets) + loci


def dry_run(flt: ModuleType, paths: Sequence[str], out: TextIO = sys.stdout) -> int:
    """Run the filter over local data; print each locus's decision and the pass rate."""
    the_filter = flt.LsstExtendednessFilter()
    loci = read_inputs(paths)
    passed = errored = 0
    for locus in loci:
        decision = flt.evaluate(locus)
        status = the_filter.run(locus).status
        errored += status == "Errored"
        tagged = flt.OUTPUT_TAG in locus.tags
        passed += tagged
        median = "-" if decision["median"] is None else f"{decision['median']:.3f}"
        print(f"{locus.id}\t{status}\t{'PASS' if tagged else 'fail'}\tn={decision['values']}\tmedian={median}\t"
              f"sssource={'yes' if decision['sssource'] else 'no'}\t{decision['reason']}", file=out)
    rate = 100.0 * passed / len(loci) if loci else 0.0
    print(f"summary: {passed} of {len(loci)} loci pass ({rate:.1f}%), {errored} errored; thresholds: median in "
          f"[{flt.EXTENDEDNESS_MEDIAN_MIN}, {flt.EXTENDEDNESS_MEDIAN_MAX}], min >= {flt.EXTENDEDNESS_MIN_THRESHOLD}, "
          f"max <= {flt.EXTENDEDNESS_MAX_THRESHOLD}, REQUIRE_SSSOURCE = {flt.REQUIRE_SSSOURCE}", file=out)
    return 1 if errored else 0


def main(flt: ModuleType, argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(flt.__doc__)
        return 0 if argv else 2
    return dry_run(flt, argv)
