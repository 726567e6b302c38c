"""cavro and fastavro give identical alerts, rows and quarantine reasons."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from alert_pipeline.consumer.avro import WriterSchema, read_record, resolve_decoder
from alert_pipeline.consumer.decode import AlertDecoder, bundled_versions
from alert_pipeline.consumer.records import base_row
from alert_pipeline.errors import DecodeError
from devtools import hostile
from devtools.factory import AlertFactory, malformed_messages

from .decoder_fuzz import same

REPO = Path(__file__).resolve().parent.parent


def variants(version: str) -> tuple[list[dict], AlertFactory]:
    """The factory's packets: ordinary, Solar-System, null extendedness, NaN values, no
    cutouts, PSF cutouts, empty and deep histories."""
    factory = AlertFactory(version, seed=1400)
    with_nan = factory.alert(cutouts=False)
    floats = [key for key, value in with_nan["diaSource"].items() if isinstance(value, float)]
    for key in floats[:3]:
        with_nan["diaSource"][key] = math.nan
    packets = [factory.alert(cutout_size=16), factory.alert(solar_system=True, cutouts=False),
               factory.alert(extendedness=None, cutout_size=16),
               factory.alert(cutouts=False, n_prv_sources=0, n_prv_forced=0),
               factory.alert(psf_cutouts=True, cutout_size=16),
               factory.alert(cutouts=False, n_prv_sources=60, n_prv_forced=60), with_nan]
    return packets, factory


@pytest.mark.parametrize("version", bundled_versions())
def test_both_decoders_give_identical_alerts_and_rows(version):
    packets, factory = variants(version)
    decoders = {name: AlertDecoder(decoder=name) for name in ("fastavro", "cavro")}
    for packet in packets:
        message = factory.frame(packet)
        (fast,), (quick,) = (decoders[name].decode(message) for name in ("fastavro", "cavro"))
        assert same(fast, quick), version
        paths = {"science": None, "template": None, "difference": None}
        assert same(base_row(fast, paths, "t"), base_row(quick, paths, "t"))
        schemaless = AlertDecoder("schemaless", version, decoder="cavro").decode(factory.serialize(packet))
        assert same(schemaless[0], fast)


def test_garbage_gets_the_same_reason_under_both_decoders():
    factory = AlertFactory("11.1", seed=1401)
    decoders = {name: AlertDecoder(decoder=name) for name in ("fastavro", "cavro")}
    for description, value in malformed_messages(factory):
        reasons = {}
        for name, decoder in decoders.items():
            with pytest.raises(DecodeError) as caught:
                decoder.decode(value)
            reasons[name] = caught.value.reason
        assert reasons["fastavro"] == reasons["cavro"], description
    good = factory.frame(factory.alert(cutouts=False))
    for value in (good + b"\x00", good[:-1]):  # a byte left over, a byte missing
        for decoder in decoders.values():
            with pytest.raises(DecodeError, match="left over|does not match"):
                decoder.decode(value)


def test_bounded_fuzz_crashes_nothing_and_both_decoders_agree():
    """3,000 mutations of real messages, in a child process: no crash, no disagreement
    (reason, or decoded alert), peak memory bounded."""
    done = subprocess.run([sys.executable, "-m", "tests.decoder_fuzz", "3000"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["disagreement_count"] == 0, result["disagreements"]
    assert result["negative_union_index"] > 0  # the documented difference is exercised, and only it differs
    assert result["outcomes"]["cavro"]["corrupt-payload"] > 1000 and result["outcomes"]["cavro"]["ok"] > 100
    assert result["peak_rss_mb"] < 400


def zigzag(value: int) -> bytes:
    return hostile.avro_long(value)


def test_ints_beyond_32_bits_read_alike_and_a_negative_union_index_is_the_documented_difference():
    """Hand-made bytes of a small schema: an ``int`` varint of 2^40 reads as 2^40 under
    both decoders (cavro alone used to truncate it to 256); a union index of -1 is refused
    by cavro and read by fastavro as the union's last branch (documented)."""
    writer = WriterSchema({"type": "record", "name": "R", "fields": [
        {"name": "u", "type": ["null", "int", "string"]}, {"name": "i", "type": "int"},
        {"name": "a", "type": {"type": "array", "items": "int"}}]})
    big = zigzag(0) + zigzag(2**40) + zigzag(1) + zigzag(-2**31 - 1) + zigzag(0)
    for decoder in ("cavro", "fastavro"):
        assert read_record(big, 0, writer, decoder, "t") == {"u": None, "i": 2**40, "a": [-2**31 - 1]}
    negative = zigzag(-1) + zigzag(2) + b"ok" + zigzag(7) + zigzag(0)
    with pytest.raises(DecodeError, match="is not valid for a union"):
        read_record(negative, 0, writer, "cavro", "t")
    assert read_record(negative, 0, writer, "fastavro", "t") == {"u": "ok", "i": 7, "a": []}


def test_decoder_setting_and_auto():
    assert resolve_decoder("auto") == "cavro"  # installed from requirements.txt
    assert resolve_decoder("fastavro") == "fastavro"
    with pytest.raises(ValueError, match="must be one of"):
        resolve_decoder("avro-rs")
