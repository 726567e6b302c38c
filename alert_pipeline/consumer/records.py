"""Alert dict → CSV row: the column list, the schema-version field map, extendedness stats.

Rubin renamed several DIASource fields between alert schema versions (``filterName`` →
``band``, ``midPointTai`` → ``midpointMjdTai``, ``psFlux`` → ``psfFlux``, ``decl`` →
``dec``; v8 dropped the top-level ``alertId`` for ``diaSourceId``). fastavro returns every
field of the writer schema as a key, so the first candidate name present in the decoded
record identifies the version's spelling; no version table has to be kept in sync.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from alert_pipeline.errors import IncompletePacketError, WrongSurveyError

#: The CSV columns, in order, exactly as the project README documents them.
COLUMNS: tuple[str, ...] = (
    "alertId",
    "diaSourceId",
    "diaObjectId",
    "ra",
    "dec",
    "mjd",
    "filterName",
    "psFlux",
    "psFluxErr",
    "extendednessMedian",
    "extendednessMin",
    "extendednessMax",
    "science_cutout_path",
    "template_cutout_path",
    "difference_cutout_path",
    "timestamp",
    # Appended in 2026-12 (readers of the first 16 columns keep working):
    "ssObjectId",
    "designation",
    "lightcurve_path",
)

#: Row column → DIASource field names across schema versions, newest spelling first.
DIA_SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "diaSourceId": ("diaSourceId",),
    "diaObjectId": ("diaObjectId",),
    "ra": ("ra",),
    "dec": ("dec", "decl"),
    "mjd": ("midpointMjdTai", "midPointTai"),
    "filterName": ("band", "filterName"),
    "psFlux": ("psfFlux", "psFlux"),
    "psFluxErr": ("psfFluxErr", "psFluxErr"),
}

#: The alert's own identifier: v3–v7 ``alertId``; v8+ the top-level ``diaSourceId``.
ALERT_ID_FIELDS: tuple[str, ...] = ("alertId", "diaSourceId")

#: Cutout kind → packet field. v3.0–v6.0 packets have no science cutout.
CUTOUT_FIELDS: dict[str, str] = {
    "science": "cutoutScience",
    "template": "cutoutTemplate",
    "difference": "cutoutDifference",
}
#: The per-alert light-curve table (``alert_pipeline.consumer.lightcurve``), staged like a cutout.
LIGHTCURVE = "lightcurve"
#: The columns that name a file under cutouts/ (what a merge copies with the row).
FILE_COLUMNS: tuple[str, ...] = (*(f"{kind}_cutout_path" for kind in CUTOUT_FIELDS), f"{LIGHTCURVE}_path")

#: Where a packet names its Solar-System object, newest schema first: v10+ ``ssSource``
#: (``ssObjectId``, ``designation``), v10+ ``mpc_orbits.designation``, v8–v9
#: ``MPCORB.mpcDesignation``, and every version's ``diaSource.ssObjectId``.
SS_OBJECT_ID_SOURCES: tuple[str, ...] = ("ssSource", "diaSource", "ssObject", "MPCORB")
DESIGNATION_SOURCES: tuple[tuple[str, str], ...] = (("ssSource", "designation"), ("mpc_orbits", "designation"),
                                                    ("ssObject", "designation"), ("MPCORB", "mpcDesignation"))


def first_present(record: Mapping[str, Any], names: Iterable[str]) -> Any:
    """The value of the first of ``names`` that ``record`` has as a key (None if none)."""
    for name in names:
        if name in record:
            return record[name]
    return None


def field_name(record: Mapping[str, Any], names: Iterable[str]) -> str | None:
    """Which of ``names`` this record's schema spells the field with."""
    return next((name for name in names if name in record), None)


def usable_numbers(values: Iterable[Any]) -> list[float]:
    """Finite numbers among ``values`` (None and NaN are 'no measurement')."""
    kept = []
    for value in values:
        if value is None or isinstance(value, bool):
            continue
        number = float(value)
        if math.isfinite(number):
            kept.append(number)
    return kept


def extendedness_stats(alert: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    """Median, min and max ``extendedness`` over the diaSource and its prvDiaSources."""
    sources = [alert.get("diaSource") or {}]
    sources.extend(alert.get("prvDiaSources") or ())
    values = usable_numbers(source.get("extendedness") for source in sources)
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def alert_key(alert: Mapping[str, Any]) -> str:
    """A stable identity for de-duplication: the same alert always gives the same key."""
    locus = alert.get("antares_locus")
    if locus is not None:
        newest = (locus.get("properties") or {}).get("newest_alert_id")
        return f"locus:{locus['locus_id']}:{newest}"
    return f"alert:{alert_id(alert)}"


def alert_id(alert: Mapping[str, Any]) -> int:
    """The alert identifier (see ALERT_ID_FIELDS)."""
    value = first_present(alert, ALERT_ID_FIELDS)
    if value is None:
        _refuse_other_surveys(alert)
        raise IncompletePacketError("packet has no alertId/diaSourceId")
    return int(value)


def _refuse_other_surveys(alert: Mapping[str, Any]) -> None:
    """A ZTF packet (``objectId`` and a ``candidate`` record) says the consumer reads the
    wrong topic; saying so beats "incomplete packet"."""
    if "objectId" in alert and isinstance(alert.get("candidate"), Mapping):
        raise WrongSurveyError(f"this is a ZTF alert ({alert.get('objectId')}), not an LSST one: check the topic "
                               "(LSST alerts carry diaSource, ZTF alerts candidate)")


def dia_source_values(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The DIASource columns of a row, whatever the schema version's field names."""
    source = alert.get("diaSource")
    if not isinstance(source, Mapping):
        _refuse_other_surveys(alert)
        raise IncompletePacketError("packet has no diaSource record")
    values = {column: first_present(source, names) for column, names in DIA_SOURCE_FIELDS.items()}
    if values["diaSourceId"] is None:
        raise IncompletePacketError("diaSource has no diaSourceId")
    values["diaObjectId"] = dia_object_id(alert)
    return values


def dia_object_id(alert: Mapping[str, Any]) -> int | None:
    """The alert's DIAObject id, or None for an alert with no DIAObject.

    The diaSource's own ``diaObjectId`` first, else the packet's ``diaObject`` record's
    (Rubin's sample packets leave the first null). Solar-System alerts carry 0, which
    is "no DIAObject", not an object id."""
    for record in (alert.get("diaSource"), alert.get("diaObject")):
        if isinstance(record, Mapping) and record.get("diaObjectId") not in (None, 0):
            return record["diaObjectId"]
    return None


def base_row(alert: Mapping[str, Any], cutout_paths: Mapping[str, str | None], timestamp: str) -> dict[str, Any]:
    """The README's standard columns (``COLUMNS``) for one decoded LSST alert packet."""
    locus = alert.get("antares_locus")
    if locus is not None:
        return locus_row(locus, timestamp)
    row: dict[str, Any] = {"alertId": alert_id(alert)}
    row.update(dia_source_values(alert))
    row["extendednessMedian"], row["extendednessMin"], row["extendednessMax"] = extendedness_stats(alert)
    for kind in CUTOUT_FIELDS:
        row[f"{kind}_cutout_path"] = cutout_paths.get(kind)
    row["timestamp"] = timestamp
    row["ssObjectId"], row["designation"] = solar_system_identity(alert)
    row["lightcurve_path"] = cutout_paths.get(LIGHTCURVE)
    return {column: row.get(column) for column in COLUMNS}


def solar_system_identity(alert: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """(ssObjectId, designation) of the Solar-System object the alert is associated with;
    None for each the packet does not give (0 and "" mean "not associated")."""
    object_id = None
    for name in SS_OBJECT_ID_SOURCES:
        record = alert.get(name)
        value = record.get("ssObjectId") if isinstance(record, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool) and value != 0:
            object_id = value
            break
    designation = None
    for name, field in DESIGNATION_SOURCES:
        record = alert.get(name)
        value = record.get(field) if isinstance(record, Mapping) else None
        if isinstance(value, str) and value.strip():
            designation = value.strip()
            break
    return object_id, designation


#: Locus property names that carry the filter's extendedness figures. They are the
#: filter's own output properties (see antares_extendedness_filter.py); kept here too
#: because the consumer must not import the DevKit filter at run time.
LOCUS_EXTENDEDNESS_PROPERTIES: dict[str, str] = {
    "extendednessMedian": "lsstext_extendedness_median",
    "extendednessMin": "lsstext_extendedness_min",
    "extendednessMax": "lsstext_extendedness_max",
}


def locus_row(locus: Mapping[str, Any], timestamp: str) -> dict[str, Any]:
    """A row from an ANTARES locus summary: ids, position, the filter's extendedness.

    A locus message carries no DIASource measurements and no cutouts; those cells stay
    empty.
    """
    properties = locus.get("properties") or {}
    survey = properties.get("survey")
    lsst = survey.get("lsst") if isinstance(survey, Mapping) else None
    dia_object_ids = (lsst.get("dia_object_id") if isinstance(lsst, Mapping) else None) or []
    row: dict[str, Any] = {
        "alertId": properties.get("newest_alert_id"),
        "diaObjectId": dia_object_ids[-1] if dia_object_ids else None,
        "ra": locus.get("ra"),
        "dec": locus.get("dec"),
        "mjd": properties.get("newest_alert_observation_time"),
        "timestamp": timestamp,
    }
    for column, name in LOCUS_EXTENDEDNESS_PROPERTIES.items():
        row[column] = properties.get(name)
    return {column: row.get(column) for column in COLUMNS}
