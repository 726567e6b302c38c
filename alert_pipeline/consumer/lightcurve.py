"""An alert's light curve (its ``prvDiaSources`` and its own ``diaSource``) as a small
FITS binary table, written beside its cutouts, and read back for the report.

Every Rubin alert carries its DIAObject's detection history, hundreds of points for a
deep-drilling field; the CSV keeps one row per alert, so the history would otherwise be
lost once the alert is consumed. One table per alert (``<diaSourceId>_lightcurve_….fits``)
goes through the same staging, journal and retention as the cutouts, so it is written
exactly once and removed with them.

The table has one row per detection, sorted by time: ``midpointMjdTai`` (float64),
``band`` (8 characters), ``psfFlux`` and ``psfFluxErr`` (float32, nJy, NaN when the
source has none). ``astropy.table.Table.read(path)`` opens it; the header names the
``DIAOBJ`` and ``DIASRC``. The writer is the FITS format spelled out here because astropy's
table writer costs more per file than decoding the alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alert_pipeline.consumer.records import DIA_SOURCE_FIELDS, first_present

FITS_BLOCK = 2880
CARD = 80
#: The table's columns: (name, FITS TFORM, TUNIT, numpy type). Fixed, so the report reads
#: the file with one ``numpy.frombuffer``.
COLUMNS = (("midpointMjdTai", "D", "d", ">f8"), ("band", "8A", "", "S8"),
           ("psfFlux", "E", "nJy", ">f4"), ("psfFluxErr", "E", "nJy", ">f4"))
ROW_TYPE = np.dtype([(name, kind) for name, _, _, kind in COLUMNS])
EXTNAME = "LIGHTCURVE"


def history_points(alert: Mapping[str, Any]) -> np.ndarray:
    """The alert's detections (prvDiaSources and the diaSource), oldest first. A source
    without a finite time is left out; a missing flux is NaN.

    Read a column at a time (hundreds of sources in a deep field) when the values are of
    the types Avro gives (floats or null, text or null); anything else is read source by
    source (``points_one_by_one``), which gives the same table more slowly."""
    sources = [source for source in (alert.get("prvDiaSources") or ()) if isinstance(source, Mapping)]
    if isinstance(alert.get("diaSource"), Mapping):
        sources.append(alert["diaSource"])
    mjd, flux, error = (_floats(_column(sources, DIA_SOURCE_FIELDS[name])) for name in ("mjd", "psFlux", "psFluxErr"))
    bands = _column(sources, DIA_SOURCE_FIELDS["filterName"])
    if mjd is None or flux is None or error is None or not set(map(type, bands)) <= _TEXT_OR_NONE:
        return points_one_by_one(sources)
    kept = np.flatnonzero(np.isfinite(mjd))
    by_time = kept[np.argsort(mjd[kept], kind="stable")]
    times = mjd[by_time]
    if not np.any(times[1:] == times[:-1]):
        return _table(by_time, mjd, bands, flux, error)
    # Two equal times: np.sort breaks the tie by the other columns.
    return np.sort(_table(kept, mjd, bands, flux, error), order="midpointMjdTai", kind="stable")


def _table(rows: np.ndarray, mjd: np.ndarray, bands: list[str | None], flux: np.ndarray,
           error: np.ndarray) -> np.ndarray:
    """The table of these rows (indices into the columns), in this order."""
    table = np.empty(len(rows), dtype=ROW_TYPE)
    table["midpointMjdTai"] = mjd[rows]
    table["band"] = np.array([(band or "")[:8].encode("ascii", "replace") for band in bands], dtype="S8")[rows]
    with np.errstate(over="ignore"):  # a flux beyond float32 is inf, as it is source by source
        table["psfFlux"] = np.where(np.isfinite(flux), flux, math.nan)[rows]
        table["psfFluxErr"] = np.where(np.isfinite(error), error, math.nan)[rows]
    return table


def points_one_by_one(sources: list[Mapping[str, Any]]) -> np.ndarray:
    """``history_points`` of these sources, read one source at a time (any value types)."""
    points = []
    for source in sources:
        mjd = _finite(first_present(source, DIA_SOURCE_FIELDS["mjd"]))
        if mjd is None:
            continue
        band = first_present(source, DIA_SOURCE_FIELDS["filterName"])
        flux = _finite(first_present(source, DIA_SOURCE_FIELDS["psFlux"]))
        error = _finite(first_present(source, DIA_SOURCE_FIELDS["psFluxErr"]))
        points.append((mjd, str(band or "")[:8].encode("ascii", "replace"),
                       math.nan if flux is None else flux, math.nan if error is None else error))
    table = np.array(points, dtype=ROW_TYPE)
    return np.sort(table, order="midpointMjdTai", kind="stable")


_FLOAT_OR_NONE = frozenset((float, type(None)))
_TEXT_OR_NONE = frozenset((str, type(None)))


def _column(sources: list[Mapping[str, Any]], names: tuple[str, ...]) -> list[Any]:
    """``first_present(source, names)`` of every source."""
    newest, older = names[0], names[1:]
    if not older:
        return [source.get(newest) for source in sources]
    return [source[newest] if newest in source else first_present(source, older) for source in sources]


def _floats(values: list[Any]) -> np.ndarray | None:
    """The values as float64, None as NaN, when each is a float or None; else None."""
    if not set(map(type, values)) <= _FLOAT_OR_NONE:
        return None
    return np.array(values, dtype=np.float64)


def lightcurve_fits(points: np.ndarray, dia_object_id: int | None, dia_source_id: int) -> bytes:
    """A FITS file: an empty primary HDU and the ``LIGHTCURVE`` binary table."""
    cards = [_card("NAXIS2", len(points)), *_TABLE_CARDS, _card("DIASRC", int(dia_source_id))]
    if dia_object_id is not None:
        cards.append(_card("DIAOBJ", int(dia_object_id)))
    cards.append(_END_CARD)
    text = "".join(cards)
    header = (_TABLE_START + text + " " * (-(len(_TABLE_START) + len(text)) % FITS_BLOCK)).encode("ascii")
    data = np.ascontiguousarray(points, dtype=ROW_TYPE).tobytes()
    return _PRIMARY + header + data + b"\0" * (-len(data) % FITS_BLOCK)


def read_lightcurve(path: Path, max_bytes: int = 16 * 2**20) -> np.ndarray | None:
    """The table of a file ``lightcurve_fits`` wrote, or None when the file is anything
    else (another layout, truncated, larger than ``max_bytes``)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError:
        return None
    if len(data) > max_bytes or len(data) < 2 * FITS_BLOCK or not data.startswith(b"SIMPLE  ="):
        return None
    cards, start = _cards(data, FITS_BLOCK)
    if cards is None or cards.get("XTENSION") != "'BINTABLE'" or cards.get("EXTNAME") != f"'{EXTNAME}'":
        return None
    expected = {f"TTYPE{n}": f"'{name}'" for n, (name, _, _, _) in enumerate(COLUMNS, start=1)}
    expected |= {f"TFORM{n}": f"'{form}'" for n, (_, form, _, _) in enumerate(COLUMNS, start=1)}
    try:
        rows = int(cards["NAXIS2"])
        if any(cards.get(key, "").replace(" ", "") != value for key, value in expected.items()) \
                or int(cards["NAXIS1"]) != ROW_TYPE.itemsize or rows < 0 \
                or start + rows * ROW_TYPE.itemsize > len(data):
            return None
    except (KeyError, ValueError):
        return None
    return np.frombuffer(data, dtype=ROW_TYPE, count=rows, offset=start)


def _cards(data: bytes, offset: int) -> tuple[dict[str, str] | None, int]:
    """The header at ``offset`` as {keyword: raw value}, and where its data start."""
    cards: dict[str, str] = {}
    for start in range(offset, min(len(data), offset + 4 * FITS_BLOCK), CARD):
        keyword = data[start:start + 8].decode("ascii", "replace").rstrip()
        if keyword == "END":
            return cards, offset + -(-(start + CARD - offset) // FITS_BLOCK) * FITS_BLOCK
        if data[start + 8:start + 10] == b"= ":
            cards[keyword] = data[start + 10:start + CARD].decode("ascii", "replace").split("/")[0].strip()
    return None, 0


def _header(cards: list[tuple[str, Any]]) -> bytes:
    lines = [_card(keyword, value) for keyword, value in cards] + ["END".ljust(CARD)]
    text = "".join(lines)
    return (text + " " * (-len(text) % FITS_BLOCK)).encode("ascii")


def _card(keyword: str, value: Any) -> str:
    """A fixed-format card (FITS 4.0, section 4.2): logicals and integers right-justified
    in column 30, strings quoted from column 11."""
    if isinstance(value, bool):
        text = ("T" if value else "F").rjust(20)
    elif isinstance(value, int):
        text = str(value).rjust(20)
    else:
        text = "'" + str(value).replace("'", "''").ljust(8) + "'"
    return f"{keyword:<8}= {text}".ljust(CARD)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


#: The headers' fixed parts, made once: what changes per alert is the row count, DIASRC
#: and DIAOBJ.
_PRIMARY = _header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
_TABLE_START = "".join(_card(keyword, value) for keyword, value in (
    ("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", ROW_TYPE.itemsize)))
_TABLE_CARDS = tuple(_card(keyword, value) for keyword, value in (
    ("PCOUNT", 0), ("GCOUNT", 1), ("TFIELDS", len(COLUMNS)),
    *((keyword, value) for number, (name, form, unit, _) in enumerate(COLUMNS, start=1)
      for keyword, value in ((f"TTYPE{number}", name), (f"TFORM{number}", form), (f"TUNIT{number}", unit))
      if value),
    ("EXTNAME", EXTNAME)))
_END_CARD = "END".ljust(CARD)
