"""The consumer's per-alert shortcuts give what the plain way gives.

The light curve is read a column at a time when the values have the types Avro gives,
else source by source (``points_one_by_one``, the plain way); the FITS check searches for
the END, BITPIX and NAXIS cards instead of reading every card. Each is checked here
against the plain way, on factory alerts of every tested schema version and on values no
schema would give, and the FITS check on headers made by hand.
"""

from __future__ import annotations

import copy
import io
import math
import random

import numpy as np
import pytest
from astropy.io import fits

from alert_pipeline.consumer import lightcurve
from alert_pipeline.consumer.cutouts import FITS_BLOCK, fits_problem
from alert_pipeline.consumer.lightcurve import history_points, lightcurve_fits, points_one_by_one
from alert_pipeline.consumer.records import DIA_SOURCE_FIELDS
from devtools.factory import TESTED_VERSIONS, AlertFactory

#: Values a hostile or broken schema could put where a time, band or flux is expected.
ODD_VALUES = [None, math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300, 5, True, "61000.5", "x", b"r", "é",
              "a band name longer than 8", "", [1]]
FIELDS = [name for column in ("mjd", "filterName", "psFlux", "psFluxErr") for name in DIA_SOURCE_FIELDS[column]]


def sources_of(alert: dict) -> list:
    sources = [source for source in (alert.get("prvDiaSources") or ()) if isinstance(source, dict)]
    return [*sources, alert["diaSource"]] if isinstance(alert.get("diaSource"), dict) else sources


def same_table(alert: dict) -> None:
    fast, plain = history_points(alert), points_one_by_one(sources_of(alert))
    assert fast.dtype == plain.dtype and fast.tobytes() == plain.tobytes()


@pytest.mark.parametrize("version", TESTED_VERSIONS)
def test_the_column_reading_gives_the_plain_table_and_is_taken_for_avro_values(version, monkeypatch):
    factory = AlertFactory(version, seed=7)
    alerts = [factory.alert(n_prv_sources=n, n_prv_forced=0, cutouts=False) for n in (0, 1, 5, 40)]
    alerts.append(factory.alert(n_prv_sources=3, cutouts=False, solar_system=True))
    for alert in alerts:
        same_table(alert)
        times = [source[next(n for n in DIA_SOURCE_FIELDS["mjd"] if n in source)] for source in sources_of(alert)]
        assert list(history_points(alert)["midpointMjdTai"]) == sorted(times)
    def refuse(_sources):
        raise AssertionError("read source by source")

    monkeypatch.setattr(lightcurve, "points_one_by_one", refuse)
    for alert in alerts:  # plain Avro values never need the source-by-source reading
        history_points(alert)


def test_the_column_reading_gives_the_plain_table_for_values_no_schema_gives():
    rng = random.Random(11)
    factory = AlertFactory("11.1", seed=8)
    checked = 0
    for _ in range(60):
        alert = factory.alert(n_prv_sources=rng.choice([1, 4, 12]), n_prv_forced=0, cutouts=False)
        for _ in range(8):
            variant = copy.deepcopy(alert)
            sources = sources_of(variant)
            for _ in range(rng.randint(1, 3)):
                source, name = rng.choice(sources), rng.choice(FIELDS)
                if rng.random() < 0.2:
                    source.pop(name, None)
                else:
                    source[name] = rng.choice(ODD_VALUES)
            if rng.random() < 0.3:  # two detections at the same time: the tie is broken by the other columns
                sources[0]["midpointMjdTai"] = sources[-1].get("midpointMjdTai")
            with np.errstate(over="ignore"):
                same_table(variant)
            checked += 1
    assert checked == 480


def test_equal_times_keep_the_tie_break_by_band():
    factory = AlertFactory("11.1", seed=9)
    alert = factory.alert(n_prv_sources=2, n_prv_forced=0, cutouts=False)
    for source, band in zip(sources_of(alert), ("r", "g", "i"), strict=True):
        source["midpointMjdTai"], source["band"] = 61000.5, band
    assert list(history_points(alert)["band"]) == [b"g", b"i", b"r"]


def test_the_light_curve_file_names_its_object_only_when_there_is_one():
    points = history_points(AlertFactory("11.1", seed=10).alert(n_prv_sources=3, cutouts=False))
    for object_id, expected in ((None, None), (1234567890123, 1234567890123)):
        with fits.open(io.BytesIO(lightcurve_fits(points, object_id, 987654321))) as hdus:
            hdus.verify("exception")
            header = hdus["LIGHTCURVE"].header
            assert (header["NAXIS2"], header["DIASRC"], header.get("DIAOBJ")) == (4, 987654321, expected)


def header(*cards: str, data_blocks: int = 1) -> bytes:
    """A primary header of these cards (each padded to 80 bytes) and zero data blocks."""
    text = b"".join(card.encode("latin-1").ljust(80) for card in cards)
    return text.ljust(-(-len(text) // FITS_BLOCK) * FITS_BLOCK) + bytes(FITS_BLOCK * data_blocks)


SIMPLE = "SIMPLE  =                    T"


def test_the_fits_check_on_headers_made_by_hand():
    good = (SIMPLE, "BITPIX  =                  -32", "NAXIS   =                    2", "NAXIS1  =                   26",
            "NAXIS2  =                   26")
    assert fits_problem(header(*good, "END")) is None  # 26*26*4 = 2704 bytes: one data block
    assert fits_problem(header(*good, "END\t")) is None  # END then whitespace other than spaces is END
    assert fits_problem(header(*good, "NAXIS2  =                   28", "END")).startswith("truncated")  # the later card wins
    assert fits_problem(header(*good, "END", "NAXIS2  =                   28")) is None  # cards after END do not count
    assert fits_problem(header(*good, "COMMENT   an END here is no END card")) == "no END card in the primary header"
    assert fits_problem(header(*good, "ENDX", "END")) is None
    assert fits_problem(header(SIMPLE, "NAXIS   =                    0", "END")) == "header lacks BITPIX"
    assert fits_problem(header(SIMPLE, "BITPIX  =                    8", "NAXIS   =                    1",
                               "END")) == "BITPIX, NAXIS or an NAXISn card is missing or not an integer"
