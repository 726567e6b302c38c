"""ANTARES filter: LSST loci by DIASource extendedness and Solar-System association.

Upload this one file to the ANTARES DevKit (see the README, "Part 1"). It tags a locus
with ``OUTPUT_TAG`` when

* the median, minimum and maximum of ``lsst_diaSource_extendedness`` over all of the
  locus's LSST alerts (None and NaN ignored) satisfy::

      EXTENDEDNESS_MEDIAN_MIN <= median <= EXTENDEDNESS_MEDIAN_MAX
      min >= EXTENDEDNESS_MIN_THRESHOLD
      max <= EXTENDEDNESS_MAX_THRESHOLD

* and its Solar-System association matches ``REQUIRE_SSSOURCE`` (True: only loci
  associated with a Solar-System object, e.g. known asteroids; False: only loci that
  are not, e.g. extragalactic sources).

A locus is associated with a Solar-System object when one of its alerts *identifies* one
(presence alone is not enough: brokers that re-serialize packets keep ``ssSource`` and
``mpc_orbits`` as records whose fields are all null when there is no association):

1. an LSST alert has ``lsst_diaSource_ssObjectId`` other than None, 0, "0" or "";
2. an LSST alert has an identifying ``lsst_ssSource_*`` / ``lsst_ssObject_*`` property
   (``ssObjectId`` non-zero, or a non-empty ``designation`` / ``mpcDesignation``);
3. the raw alert packet, when the runtime supplies it in an alert's
   ``non_persistent_properties``, has an ``ssSource``, ``ssObject``, ``MPCORB`` or
   ``mpc_orbits`` record carrying such an identifying value (see ``SOLAR_SYSTEM_ID_FIELDS``;
   the names per schema version are those of lsst-alert-packet v7–v11);
4. the locus property ``survey.lsst.ss_object_id`` holds a non-zero id;
5. the locus carries one of ``SOLAR_SYSTEM_TAGS``.

On a pass the locus also gets the properties listed in ``OUTPUT_LOCUS_PROPERTIES`` (the
figures travel with the locus in the output stream, where the consumer reads them).

Edit the constants below; the filter reads them each time it runs.

Local dry run, to tune the thresholds on real data before uploading::

    python3 antares_extendedness_filter.py ALERTS.avro MESSAGES.frames LOCUS.json ...

Only the standard library and antares_devkit are imported at module level, as the
DevKit runtime requires; the dry run (``devtools/filter_dry_run.py``,
imported only when this file is run as a script) also uses this repository's decoder.
"""

import math
import statistics
import sys

from antares_devkit.models import BaseFilter

# Extendedness thresholds
EXTENDEDNESS_MEDIAN_MIN = 0.0  # Adjust for your science case
EXTENDEDNESS_MEDIAN_MAX = 1.0
EXTENDEDNESS_MIN_THRESHOLD = 0.0
EXTENDEDNESS_MAX_THRESHOLD = 1.0

# SSSource requirement
REQUIRE_SSSOURCE = True  # True = require SSSource, False = exclude SSSource

# The tag (and so the output stream) of passing loci.
OUTPUT_TAG = "lsst_extendedness_filtered"

# Tags other filters put on Solar-System loci.
SOLAR_SYSTEM_TAGS = ("sso_candidates", "sso_confirmed", "ztf_sso_candidates", "lsst_sso_candidates")

# Locus properties set on a pass (the "lsstext_" author prefix keeps them apart).
PROPERTY_MEDIAN = "lsstext_extendedness_median"
PROPERTY_MIN = "lsstext_extendedness_min"
PROPERTY_MAX = "lsstext_extendedness_max"
PROPERTY_COUNT = "lsstext_extendedness_count"
PROPERTY_SSSOURCE = "lsstext_sssource"

LSST_SURVEY = 4
EXTENDEDNESS = "lsst_diaSource_extendedness"
SS_OBJECT_ID = "lsst_diaSource_ssObjectId"
SOLAR_SYSTEM_PREFIXES = ("lsst_ssSource_", "lsst_ssObject_")
SOLAR_SYSTEM_PACKET_FIELDS = ("ssSource", "ssObject", "MPCORB", "mpc_orbits")
# Fields that identify a Solar-System object: ssObject (v<=7) ssObjectId; ssSource (v8+)
# ssObjectId and (v10+) designation; MPCORB (v8-9) mpcDesignation; mpc_orbits (v10+)
# designation and the packed/unpacked provisional designations.
SOLAR_SYSTEM_ID_FIELDS = ("ssObjectId", "designation", "mpcDesignation", "packed_primary_provisional_designation",
                          "unpacked_primary_provisional_designation")
NO_ID = (None, 0, "0", "", "null")


def _identifies(field, value):
    """True when ``field`` is one of SOLAR_SYSTEM_ID_FIELDS and ``value`` names a
    Solar-System object (not null, 0 or blank)."""
    if field not in SOLAR_SYSTEM_ID_FIELDS:
        return False
    if field == "ssObjectId":
        return value not in NO_ID
    return isinstance(value, str) and value.strip() not in ("", "null")


def extendedness_values(locus):
    """Finite ``lsst_diaSource_extendedness`` values of the locus's LSST alerts."""
    values = []
    for alert in locus.alerts:
        properties = alert.properties
        if properties.get("ant_survey") != LSST_SURVEY:
            continue
        value = properties.get(EXTENDEDNESS)
        if value is None or isinstance(value, (bool, str)):
            continue
        value = float(value)
        if math.isfinite(value):
            values.append(value)
    return values


def solar_system_signals(locus):
    """The names of the Solar-System association signals this locus shows (empty: none)."""
    signals = []
    for alert in locus.alerts:
        properties = alert.properties
        if properties.get("ant_survey") != LSST_SURVEY:
            continue
        if properties.get(SS_OBJECT_ID) not in NO_ID:
            signals.append("ssObjectId")
        if any(key.startswith(SOLAR_SYSTEM_PREFIXES) and _identifies(key.split("_", 2)[2], value)
               for key, value in properties.items()):
            signals.append("ssSource/ssObject property")
        if _packet_has_solar_system(alert.non_persistent_properties):
            signals.append("alert packet")
    survey = locus.properties.get("survey")
    lsst = survey.get("lsst") if isinstance(survey, dict) else None
    ss_ids = lsst.get("ss_object_id") if isinstance(lsst, dict) else locus.properties.get("survey.lsst.ss_object_id")
    if isinstance(ss_ids, (list, tuple)) and any(i not in NO_ID for i in ss_ids):
        signals.append("survey.lsst.ss_object_id")
    if any(tag in locus.tags for tag in SOLAR_SYSTEM_TAGS):
        signals.append("solar-system tag")
    return sorted(set(signals))


def _packet_has_solar_system(extra):
    """A raw packet (or one nested a level down) whose ssSource/ssObject/MPCORB/mpc_orbits
    record identifies a Solar-System object."""
    if not isinstance(extra, dict):
        return False
    candidates = [extra, *(value for value in extra.values() if isinstance(value, dict))]
    records = [packet.get(name) for packet in candidates for name in SOLAR_SYSTEM_PACKET_FIELDS]
    return any(_identifies(field, record.get(field)) for record in records if isinstance(record, dict)
               for field in SOLAR_SYSTEM_ID_FIELDS)


def evaluate(locus):
    """The filter's decision for a locus: a dict with ``passes`` and the reasons.

    Reads the module constants now, so editing them takes effect without re-importing.
    """
    values = extendedness_values(locus)
    signals = solar_system_signals(locus)
    decision = {"passes": False, "values": len(values), "median": None, "min": None, "max": None,
                "sssource": bool(signals), "signals": signals, "reason": ""}
    if not values:
        decision["reason"] = "no usable extendedness"
        return decision
    median, low, high = statistics.median(values), min(values), max(values)
    decision.update(median=median, min=low, max=high)
    if not EXTENDEDNESS_MEDIAN_MIN <= median <= EXTENDEDNESS_MEDIAN_MAX:
        decision["reason"] = f"median {median:g} outside [{EXTENDEDNESS_MEDIAN_MIN:g}, {EXTENDEDNESS_MEDIAN_MAX:g}]"
    elif low < EXTENDEDNESS_MIN_THRESHOLD:
        decision["reason"] = f"min {low:g} < {EXTENDEDNESS_MIN_THRESHOLD:g}"
    elif high > EXTENDEDNESS_MAX_THRESHOLD:
        decision["reason"] = f"max {high:g} > {EXTENDEDNESS_MAX_THRESHOLD:g}"
    elif bool(signals) != bool(REQUIRE_SSSOURCE):
        decision["reason"] = "Solar-System association required" if REQUIRE_SSSOURCE else \
            f"Solar-System association excluded ({', '.join(signals)})"
    else:
        decision["passes"] = True
        decision["reason"] = "passes"
    return decision


class LsstExtendednessFilter(BaseFilter):
    """Tags LSST loci whose extendedness statistics and Solar-System association match
    the module constants (see the module docstring)."""

    TRIGGERING_SURVEY = "lsst"
    REQUIRED_ALERT_PROPERTIES = []  # history may hold the values when the newest alert lacks one
    OUTPUT_LOCUS_TAGS = [
        {
            "name": OUTPUT_TAG,
            "description": "LSST locus whose DIASource extendedness (median/min/max over its alerts) and "
                           "Solar-System association match the lsst-alert-pipeline thresholds.",
        },
    ]
    OUTPUT_LOCUS_PROPERTIES = [
        {"name": PROPERTY_MEDIAN, "type": "float", "description": "Median lsst_diaSource_extendedness over the locus's LSST alerts."},
        {"name": PROPERTY_MIN, "type": "float", "description": "Minimum lsst_diaSource_extendedness over the locus's LSST alerts."},
        {"name": PROPERTY_MAX, "type": "float", "description": "Maximum lsst_diaSource_extendedness over the locus's LSST alerts."},
        {"name": PROPERTY_COUNT, "type": "int", "description": "Number of extendedness values used (None and NaN ignored)."},
        {"name": PROPERTY_SSSOURCE, "type": "int", "description": "1 when the locus is associated with a Solar-System object, else 0."},
    ]

    def _run(self, locus):
        decision = evaluate(locus)
        if not decision["passes"]:
            return
        locus.tag(OUTPUT_TAG)
        locus.set_property(PROPERTY_MEDIAN, float(decision["median"]))
        locus.set_property(PROPERTY_MIN, float(decision["min"]))
        locus.set_property(PROPERTY_MAX, float(decision["max"]))
        locus.set_property(PROPERTY_COUNT, int(decision["values"]))
        locus.set_property(PROPERTY_SSSOURCE, int(decision["sssource"]))


if __name__ == "__main__":
    # The local dry run lives in the repository (devtools/filter_dry_run.py),
    # not in this uploaded file; it is imported only when the file is run as a script.
    from devtools.filter_dry_run import main

    sys.exit(main(sys.modules[__name__], sys.argv[1:]))
