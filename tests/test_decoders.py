"""cavro and fastavro give identical alerts, rows and quarantine reasons."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from alert_pipeline.avro import resolve_decoder
from alert_pipeline.decode import AlertDecoder, bundled_versions
from alert_pipeline.devtools.factory import AlertFactory, malformed_messages
from alert_pipeline.errors import DecodeError
from alert_pipeline.records import base_row

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
    assert result["outcomes"]["cavro"]["corrupt-payload"] > 1000 and result["outcomes"]["cavro"]["ok"] > 100
    assert result["peak_rss_mb"] < 400


def test_decoder_setting_and_auto():
    assert resolve_decoder("auto") == "cavro"  # installed from requirements.txt
    assert resolve_decoder("fastavro") == "fastavro"
    with pytest.raises(ValueError, match="must be one of"):
        resolve_decoder("avro-rs")
