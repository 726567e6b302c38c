"""Realistic LSST alert packets for the demo, the tests and the benchmarks.

Packets are generated from the lsst-alert-packet schema of the requested version, so
every packet is valid for that version by construction: each field gets a plausible
value of its Avro type, then the fields the pipeline reads (ids, position, time, band,
fluxes, extendedness, solar-system association, cutouts) are set realistically using the
version's own field names (the same map the CSV writer reads them with).

Cutouts are made the way Rubin makes them: an astropy ``CCDData`` in nJy with a WCS, a
``VarianceUncertainty`` and a mask, written as FITS (primary image + MASK + UNCERT).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Iterator, Mapping
from functools import cache, lru_cache
from typing import Any

import fastavro

from alert_pipeline.consumer.decode import bundled_schema, schema_id_for_version
from alert_pipeline.consumer.records import ALERT_ID_FIELDS, CUTOUT_FIELDS, DIA_SOURCE_FIELDS, field_name

DEFAULT_VERSION = "11.1"
#: The versions the factory is tested on (older majors lack fields Rubin streams carry).
TESTED_VERSIONS = ("7.0", "7.1", "7.2", "7.3", "7.4", "8.0", "9.0", "10.0", "11.0", "11.1")
BANDS = ("u", "g", "r", "i", "z", "y")
MJD_2026_02_10 = 61081.0


def _placeholder(avro_type: Any, name: str) -> Any:
    """A plausible value of an Avro type: nullable fields get a value, not null."""
    if isinstance(avro_type, list):
        branches = [branch for branch in avro_type if branch != "null"]
        return _placeholder(branches[0], name) if branches else None
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "record":
            return {field["name"]: _placeholder(field["type"], field["name"]) for field in avro_type["fields"]}
        if kind == "array":
            return []
        if kind == "map":
            return {}
        if kind == "enum":
            return avro_type["symbols"][0]
        if kind == "fixed":
            return bytes(avro_type["size"])
        return _placeholder(kind, name)
    return {
        "long": 0,
        "int": 0,
        "double": 0.0,
        "float": 0.0,
        "boolean": False,
        "string": "",
        "bytes": b"",
        "null": None,
    }[avro_type]


@cache
def _writer_definition(version: str) -> dict[str, Any]:
    """The full (unparsed) alert schema of a version, references resolved."""
    from lsst.alert.packet import Schema
    from lsst.alert.packet.schema import get_schema_path

    major, minor = version.split(".")
    return Schema.from_file(f"{get_schema_path(int(major), int(minor))}/lsst.v{major}_{minor}.alert.avsc").definition


@cache
def _templates(version: str) -> dict[str, Any]:
    """Placeholder records for each nested record type of the version's alert schema."""
    definition = _writer_definition(version)
    templates: dict[str, Any] = {"alert": {}, "nullable": {}}
    for field in definition["fields"]:
        avro_type = field["type"]
        branches = avro_type if isinstance(avro_type, list) else [avro_type]
        for branch in branches:
            if isinstance(branch, dict) and branch.get("type") == "array":
                branch = branch["items"]
            if isinstance(branch, dict) and branch.get("type") == "record":
                templates[field["name"]] = _placeholder(branch, field["name"])
                templates["nullable"][field["name"]] = {
                    sub["name"] for sub in branch["fields"] if isinstance(sub["type"], list) and "null" in sub["type"]
                }
        templates["alert"][field["name"]] = None if "null" in branches else _placeholder(avro_type, field["name"])
    return templates


def make_cutout(size: int = 60, seed: int = 0, flux_njy: float = 5000.0, psf: bool = False) -> bytes:
    """FITS bytes of a Rubin-like cutout: CCDData (nJy), WCS, variance and mask; with
    ``psf``, as Rubin's 2026 cutouts: PRIMARY, UNCERT and PSFIMAGE, no mask."""
    import numpy as np
    from astropy import units as u
    from astropy.nddata import CCDData, VarianceUncertainty
    from astropy.wcs import WCS

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    star = flux_njy * np.exp(-((xx - centre) ** 2 + (yy - centre) ** 2) / (2 * 1.8**2))
    image = (star + rng.normal(0, 40.0, (size, size))).astype(np.float32)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [centre + 1, centre + 1]
    wcs.wcs.crval = [float(rng.uniform(0, 360)), float(rng.uniform(-80, 30))]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    mask = np.zeros((size, size), dtype=np.int32)
    mask[rng.integers(0, size), :] = 4  # one flagged row, as an interpolated bad column
    ccd = CCDData(
        image,
        unit=u.nJy,
        wcs=wcs,
        uncertainty=VarianceUncertainty(np.full((size, size), 1600.0, dtype=np.float32)),
        mask=mask,
    )
    buffer = io.BytesIO()
    if psf:
        from astropy.io import fits

        ccd.mask = None
        hdus = ccd.to_hdu(hdu_mask=None, hdu_uncertainty="UNCERT")
        kernel = np.exp(-((xx[:15, :15] - 7) ** 2 + (yy[:15, :15] - 7) ** 2) / (2 * 1.8**2))
        hdus.append(fits.ImageHDU((kernel / kernel.sum()).astype(np.float32), name="PSFIMAGE"))
        hdus.writeto(buffer)
    else:
        ccd.to_hdu(hdu_mask="MASK", hdu_uncertainty="UNCERT").writeto(buffer)
    return buffer.getvalue()


@lru_cache(maxsize=64)
def cutout_pool(size: int, count: int = 4, psf: bool = False) -> tuple[bytes, ...]:
    """A few cutouts of one size, reused across alerts (making them is the slow part)."""
    return tuple(make_cutout(size, seed, psf=psf) for seed in range(count))


class AlertFactory:
    """Makes alert packets of one schema version with a seeded random generator."""

    def __init__(self, version: str = DEFAULT_VERSION, seed: int = 0) -> None:
        self.version = version
        self.schema_id = schema_id_for_version(version)
        self.schema = bundled_schema(self.schema_id)
        self.rng = random.Random(seed)
        self._templates = _templates(version)
        self._next_id = 170_000_000_000_000_000 + seed * 1_000_000_000 + self.schema_id * 1_000_000

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def dia_source(
        self,
        *,
        dia_object_id: int | None,
        ra: float,
        dec: float,
        mjd: float,
        extendedness: float | None,
        ss_object_id: int | None = None,
    ) -> dict[str, Any]:
        """One DIASource record with the version's field names."""
        source = dict(self._templates["diaSource"])
        band = self.rng.choice(BANDS)
        flux = self.rng.lognormvariate(8.5, 1.0)
        values = {
            "diaSourceId": self.new_id(),
            "diaObjectId": dia_object_id,
            "ra": ra + self.rng.gauss(0, 0.1 / 3600),
            "dec": dec + self.rng.gauss(0, 0.1 / 3600),
            "mjd": mjd,
            "filterName": band,
            "psFlux": flux,
            "psFluxErr": flux * self.rng.uniform(0.01, 0.2),
        }
        for column, value in values.items():
            name = field_name(source, DIA_SOURCE_FIELDS[column])
            if name is not None:
                source[name] = value
        for name, value in (("extendedness", extendedness), ("ssObjectId", ss_object_id), ("snr", flux / 100.0)):
            if name in source:
                source[name] = value
        return self._fill_required("diaSource", source)

    def _fill_required(self, record_type: str, record: dict[str, Any]) -> dict[str, Any]:
        """Replace None by 0 in fields this version's schema does not let be null."""
        nullable = self._templates["nullable"][record_type]
        for name, value in record.items():
            if value is None and name not in nullable:
                record[name] = self._templates[record_type][name]
        return record

    def alert(
        self,
        *,
        n_prv_sources: int = 3,
        n_prv_forced: int = 3,
        extendedness: float | None | str = "random",
        solar_system: bool = False,
        cutouts: bool = True,
        cutout_size: int | None = None,
        ra: float | None = None,
        dec: float | None = None,
        mjd: float | None = None,
        psf_cutouts: bool = False,
    ) -> dict[str, Any]:
        """One alert packet (a dict valid for this version's schema).

        Solar-System alerts of v10+ carry ``diaObjectId = 0``, as Rubin's 2026 alerts do
        (older versions: null). ``psf_cutouts`` gives cutouts laid out as real 2026 ones
        (PRIMARY, UNCERT, PSFIMAGE; no mask). Deep-drilling histories: ``n_prv_sources=350``.
        """
        rng = self.rng
        ra = rng.uniform(0, 360) if ra is None else ra
        dec = rng.uniform(-70, 20) if dec is None else dec
        mjd = MJD_2026_02_10 + rng.uniform(0, 1) if mjd is None else mjd
        dia_object_id = self.new_id() if not solar_system else 0 if self.schema_id >= 1000 else None
        ss_object_id = self.new_id() if solar_system else None

        def ext() -> float | None:
            if extendedness == "random":
                return None if rng.random() < 0.1 else rng.random()
            return extendedness

        packet = dict(self._templates["alert"])
        packet["diaSource"] = self.dia_source(
            dia_object_id=dia_object_id, ra=ra, dec=dec, mjd=mjd, extendedness=ext(), ss_object_id=ss_object_id
        )
        id_field = field_name(packet, ALERT_ID_FIELDS)
        packet[id_field] = self.new_id() if id_field == "alertId" else packet["diaSource"]["diaSourceId"]
        packet["prvDiaSources"] = [
            self.dia_source(dia_object_id=dia_object_id, ra=ra, dec=dec, mjd=mjd - 3 * (i + 1), extendedness=ext(),
                            ss_object_id=ss_object_id)
            for i in range(n_prv_sources)
        ]
        if "prvDiaForcedSources" in packet and not solar_system:
            packet["prvDiaForcedSources"] = [self._forced_source(dia_object_id, ra, dec, mjd - 2 * (i + 1))
                                             for i in range(n_prv_forced)]
        if solar_system:
            self._attach_solar_system(packet, ss_object_id)
        elif "diaObject" in self._templates:
            packet["diaObject"] = dict(self._templates["diaObject"], diaObjectId=dia_object_id, ra=ra)
            decl = field_name(packet["diaObject"], DIA_SOURCE_FIELDS["dec"])
            if decl:
                packet["diaObject"][decl] = dec
        if cutouts:
            size = cutout_size or rng.randint(30, 102)
            pool = cutout_pool(size, psf=psf_cutouts)
            for field in CUTOUT_FIELDS.values():
                if field in packet:
                    packet[field] = rng.choice(pool)
        return packet

    def _forced_source(self, dia_object_id: int | None, ra: float, dec: float, mjd: float) -> dict[str, Any]:
        forced = dict(self._templates["prvDiaForcedSources"])
        forced.update({key: value for key, value in (("diaForcedSourceId", self.new_id()),
                                                     ("diaObjectId", dia_object_id), ("ra", ra)) if key in forced})
        for column, value in (("dec", dec), ("mjd", mjd), ("filterName", self.rng.choice(BANDS)),
                              ("psFlux", self.rng.gauss(0, 300))):
            name = field_name(forced, DIA_SOURCE_FIELDS[column])
            if name:
                forced[name] = value
        return self._fill_required("prvDiaForcedSources", forced)

    def _attach_solar_system(self, packet: dict[str, Any], ss_object_id: int) -> None:
        """ssObject (v≤7) or ssSource + MPCORB/mpc_orbits (v8+); no diaObject."""
        if "diaObject" in packet:
            packet["diaObject"] = None
        for field in ("ssObject", "ssSource", "MPCORB", "mpc_orbits"):
            if field in self._templates:
                record = dict(self._templates[field])
                if "ssObjectId" in record:
                    record["ssObjectId"] = ss_object_id
                if "diaSourceId" in record:
                    record["diaSourceId"] = packet["diaSource"]["diaSourceId"]
                packet[field] = self._fill_required(field, record)

    def serialize(self, packet: dict[str, Any]) -> bytes:
        """Schemaless Avro bytes of one packet."""
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.schema, packet)
        return buffer.getvalue()

    def frame(self, packet: dict[str, Any]) -> bytes:
        """Confluent wire format: 0, 4-byte big-endian schema id, schemaless Avro."""
        return b"\x00" + struct.pack(">I", self.schema_id) + self.serialize(packet)

    def container_file(self, packets: list[dict[str, Any]]) -> bytes:
        """An Avro Object Container File holding ``packets``."""
        buffer = io.BytesIO()
        fastavro.writer(buffer, self.schema, packets)
        return buffer.getvalue()


def malformed_messages(factory: AlertFactory) -> Iterator[tuple[str, bytes]]:
    """Broken messages of several kinds, each with what is wrong with it."""
    good = factory.frame(factory.alert(cutouts=False))
    noise = random.Random(7)
    yield "random bytes", b"\x01" + bytes(noise.getrandbits(8) for _ in range(300))
    yield "truncated Avro", good[: len(good) // 2]
    yield "unknown schema id", b"\x00" + struct.pack(">I", 4242) + good[5:]
    yield "empty message", b""
    yield "wrong schema id", b"\x00" + struct.pack(">I", 300) + good[5:]


def encode_antares_locus(locus: Mapping[str, Any]) -> bytes:
    """Frame a locus summary the way ANTARES publishes it (zlib-compressed BSON)."""
    import bson

    return zlib.compress(bson.dumps(dict(locus)))


def enriched_schema(version: str) -> dict[str, Any]:
    """The alert schema as a broker that re-serializes packets writes it (e.g. Fink's data
    transfer): extra top-level columns, and the Solar-System records with every field
    nullable, so that an alert without an association carries them all-null."""
    import copy

    schema = copy.deepcopy(_writer_definition(version))
    for field in schema["fields"]:
        if field["name"] in ("ssSource", "ssObject", "MPCORB", "mpc_orbits"):
            record = next(branch for branch in field["type"] if isinstance(branch, dict))
            for sub in record["fields"]:
                branches = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
                sub["type"], sub["default"] = ["null", *[b for b in branches if b != "null"]], None
    schema["fields"] += [{"name": "finkclass", "type": ["null", "string"], "default": None},
                         {"name": "rf_snia_vs_nonia", "type": ["null", "double"], "default": None}]
    return schema


def broker_container(factory: AlertFactory, packets: list[dict[str, Any]]) -> bytes:
    """An Avro container file of ``packets`` as a broker delivers them: the enriched schema,
    the broker's own columns filled, and all-null Solar-System records on alerts without
    an association."""
    schema = enriched_schema(factory.version)
    null_records = {field["name"]: {sub["name"]: None for sub in next(
        b for b in field["type"] if isinstance(b, dict))["fields"]}
        for field in schema["fields"] if field["name"] in ("ssSource", "ssObject", "MPCORB", "mpc_orbits")}
    delivered = []
    for packet in packets:
        copy_ = dict(packet, finkclass="SN candidate", rf_snia_vs_nonia=0.42)
        for name, record in null_records.items():
            if copy_.get(name) is None:
                copy_[name] = dict(record)
        delivered.append(copy_)
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), delivered)
    return buffer.getvalue()
