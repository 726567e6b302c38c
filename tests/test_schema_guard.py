"""Writer schemas are checked before any record is decoded; slot file names are case-safe."""

from __future__ import annotations

import json

import pytest

from alert_pipeline.consumer.decode import bundled_versions, bundled_writer, schema_id_for_version
from alert_pipeline.consumer.schema_guard import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, check_schema, check_schema_text
from alert_pipeline.errors import UnsafeSchemaError
from alert_pipeline.storehouse.slots import EscapedSlotNames

RECORD = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}


def record(name: str, *fields: tuple[str, object], namespace: str | None = None) -> dict:
    made = {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}
    if namespace:
        made["namespace"] = namespace
    return made


def test_every_bundled_alert_schema_passes():
    for version in bundled_versions():
        check_schema(bundled_writer(schema_id_for_version(version)).definition)


@pytest.mark.parametrize(("schema", "words"), [
    (record("R", ("next", ["null", "R"])), "recursive: type 'R'"),
    (record("A", ("b", record("B", ("a", ["null", "A"])))), "recursive: type 'A'"),  # through another record
    (record("A", ("b", record("B", ("a", ["null", "ns.A"]))), namespace="ns"), "recursive: type 'ns.A'"),
    (record("R", ("kids", {"type": "array", "items": "R"})), "recursive"),
    (record("Z", ("a", {"type": "array", "items": "null"})), "items that take no bytes"),
    (record("Z", ("m", {"type": "map", "values": "null"})), "items that take no bytes"),
    (record("Z", ("a", {"type": "array", "items": record("E")})), "items that take no bytes"),
    (record("Z", ("a", {"type": "array", "items": record("E2", ("n", "null"), ("f", {"type": "fixed", "name": "F0",
                                                                                         "size": 0}))})),
     "items that take no bytes"),
])
def test_unsafe_schemas_are_refused_naming_why(schema, words):
    with pytest.raises(UnsafeSchemaError, match=words.replace("(", r"\(")):
        check_schema(schema)


@pytest.mark.parametrize("schema", [
    record("Ok", ("a", {"type": "array", "items": ["null", "int"]})),  # a union costs its index byte
    record("Ok", ("a", {"type": "array", "items": record("P", ("n", "null"), ("x", "float"))})),
    record("Ok", ("first", RECORD), ("second", "R")),  # a named type used twice is not recursion
    record("Ok", ("a", {"type": "array", "items": {"type": "array", "items": "long"}})),
    record("Ok", ("e", {"type": "array", "items": {"type": "enum", "name": "E", "symbols": ["a"]}})),
])
def test_safe_shapes_pass(schema):
    check_schema(schema)


def test_depth_and_size_are_bounded():
    nested: object = "int"
    for _ in range(MAX_SCHEMA_DEPTH + 1):
        nested = {"type": "array", "items": nested}
    with pytest.raises(UnsafeSchemaError, match=f"more than {MAX_SCHEMA_DEPTH} deep"):
        check_schema(record("Deep", ("a", nested)))
    with pytest.raises(UnsafeSchemaError, match="bytes of JSON"):
        check_schema_text(" " * (MAX_SCHEMA_BYTES + 1))
    with pytest.raises(UnsafeSchemaError, match="nests too deeply"):
        check_schema_text("[" * 200_000 + "]" * 200_000)
    assert check_schema_text(json.dumps(RECORD)) == RECORD


def test_slot_names_are_distinct_ignoring_case_and_never_a_kind_level_file():
    names = EscapedSlotNames(verbatim=r"ZTF[0-9]{2}[a-z]{7}")
    stems = {name: names.stem(name) for name in ("2015AB", "2015ab", "2015aB", "P/2010 A2", "4179", "ZTF21abgiwdu")}
    # by hand: capitals and digits stay, lower case and the rest become _XX (hex), ZTF ids stay
    assert stems == {"2015AB": "2015AB", "2015ab": "2015_61_62", "2015aB": "2015_61B", "P/2010 A2": "P_2F2010_20A2",
                     "4179": "4179", "ZTF21abgiwdu": "ZTF21abgiwdu"}
    assert len({stem.lower() for stem in stems.values()}) == len(stems)
    for name, stem in stems.items():
        assert names.slot_id(stem) == name
    for reserved in ("index", "INDEX", "Roster", "ROSTER"):
        with pytest.raises(ValueError, match="kind-level file"):
            names.stem(reserved)
