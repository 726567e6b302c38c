"""Message bytes → alert dicts.

Four framings are recognised from the bytes themselves (or forced by configuration):

* ``confluent``: Confluent wire format, as Rubin publishes: byte 0 = 0, then a 4-byte
  big-endian schema id (``major*100 + minor``, e.g. 1101 for v11.1), then schemaless Avro.
  The writer schema comes from a schema registry when one is configured, otherwise from
  the schemas bundled in lsst-alert-packet.
* ``ocf``: an Avro Object Container File holding one or more alerts (self-describing).
* ``schemaless``: bare Avro written with a configured schema version.
* ``antares``: an ANTARES locus summary, zlib-compressed BSON, parsed by antares-client.

Every failure raises a ``DecodeError`` subclass whose message names the reason; the run
loop quarantines the message on it. Nothing here knows about Kafka or files.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro

from alert_pipeline.consumer.avro import WriterSchema, read_record, resolve_decoder
from alert_pipeline.consumer.limits import Limits, check_container, inflate_bounded
from alert_pipeline.consumer.schema_guard import MAX_SCHEMA_BYTES, check_schema_text
from alert_pipeline.errors import (
    CorruptPayloadError,
    DecodeError,
    GzipPayloadError,
    ParquetPayloadError,
    RegistryUnavailableError,
    UnknownSchemaError,
    UnrecognisedFramingError,
    UnsafeSchemaError,
)
from alert_pipeline.masking import mask_text

OCF_MAGIC = b"Obj\x01"
CONFLUENT_MAGIC = 0
#: The largest answer accepted from a schema registry: the largest schema, JSON-escaped.
MAX_REGISTRY_ANSWER_BYTES = 4 * MAX_SCHEMA_BYTES
FRAMINGS = ("auto", "confluent", "ocf", "schemaless", "antares")


def schema_id_for_version(version: str) -> int:
    """'11.1' → 1101: the id Rubin's registry and wire frames use for a schema version."""
    major, minor = (int(part) for part in str(version).split("."))
    return major * 100 + minor


@functools.cache
def _shipped_ids() -> frozenset[int]:
    """Schema ids of every alert schema lsst-alert-packet ships, from its schema tree
    (``<major>/<minor>/lsst.v<major>_<minor>.alert.avsc``, the layout its registry walks),
    without parsing them: an unknown id in a message then costs a set lookup."""
    from lsst.alert.packet.schema import get_schema_root

    ids = set()
    for directory, _, files in os.walk(get_schema_root()):
        major, minor = Path(directory).parts[-2:]
        if f"lsst.v{major}_{minor}.alert.avsc" in files and major.isdigit() and minor.isdigit():
            ids.add(int(major) * 100 + int(minor))
    return frozenset(ids)


def bundled_versions() -> list[str]:
    """Every alert schema version lsst-alert-packet ships, oldest first."""
    return [f"{schema_id // 100}.{schema_id % 100}" for schema_id in sorted(_shipped_ids())]


_bundled_lock = threading.Lock()
_bundled: dict[int, WriterSchema] = {}


def bundled_schema(schema_id: int) -> Any:
    """The fastavro-parsed writer schema lsst-alert-packet ships for ``schema_id``."""
    return bundled_writer(schema_id).fastavro


def bundled_writer(schema_id: int) -> WriterSchema:
    """The writer schema lsst-alert-packet ships for ``schema_id`` (cached)."""
    with _bundled_lock:
        if schema_id not in _bundled:
            if schema_id not in _shipped_ids():
                major, minor = divmod(schema_id, 100)
                raise UnknownSchemaError(
                    f"schema id {schema_id} (v{major}.{minor}) is not among the bundled "
                    f"lsst-alert-packet schemas ({', '.join(bundled_versions())}); "
                    "configure a schema registry or upgrade lsst-alert-packet"
                )
            registry = _version_registry(schema_id)
            _bundled[schema_id] = WriterSchema(registry.get_by_id(schema_id).definition)
        return _bundled[schema_id]


def _version_registry(schema_id: int) -> Any:
    """lsst-alert-packet's registry of the one version ``schema_id`` names: parsing only
    that schema keeps a noticeable delay off every run's first message."""
    from lsst.alert.packet import SchemaRegistry

    major, minor = divmod(schema_id, 100)
    return SchemaRegistry.from_filesystem(schema_root=f"lsst.v{major}_{minor}.alert")


class RegistrySchemas:
    """Writer schemas fetched by id from a Confluent schema registry, parsed once each.

    ``client_config`` is confluent-kafka's ``SchemaRegistryClient`` configuration (``url``,
    ``basic.auth.user.info``, ``ssl.*`` …). Only a definite "no such schema" (HTTP 404
    with the registry's code 40403) is the message's fault (``UnknownSchemaError``, the
    message is quarantined); refused credentials, server errors, timeouts and an
    unreachable registry raise ``RegistryUnavailableError``, which stops the run before
    anything of the batch is committed. A forked worker builds its own HTTP client: a
    connection shared across ``fork`` would interleave two processes' requests.

    The client's ``timeout`` bounds each read, and a registry that drips its answer a
    byte at a time restarts it with every byte; so every request also has an overall
    ``deadline`` (see ``request_deadline``) and an answer of at most
    ``MAX_REGISTRY_ANSWER_BYTES``. A schema the registry serves is immutable for its id,
    so a refused one (unsafe, not Avro) is refused again without asking.
    """

    def __init__(self, client_config: Mapping[str, Any]) -> None:
        self.config = dict(client_config)
        self.url = mask_text(str(self.config["url"]))
        self.deadline = request_deadline(self.config)
        self._parsed: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_pid = 0

    def __call__(self, schema_id: int) -> Any:
        with self._lock:
            if schema_id not in self._parsed:
                schema = self._fetch(schema_id)
                try:
                    self._parsed[schema_id] = self._writer(schema_id, schema)
                except DecodeError as exc:
                    self._parsed[schema_id] = exc
            found = self._parsed[schema_id]
        if isinstance(found, DecodeError):
            raise found.with_traceback(None)
        return found

    def _fetch(self, schema_id: int) -> Any:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return self._within_deadline(lambda: self._http_client().get_schema(schema_id))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 and exc.error_code == 40403:
                raise UnknownSchemaError(f"schema id {schema_id} is not in the schema registry at {self.url} "
                                         f"({mask_text(str(exc.error_message))})") from None
            raise RegistryUnavailableError(self._explain(exc)) from None
        except RegistryUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - httpx transport errors, TLS, OAuth token errors
            raise RegistryUnavailableError(
                f"the schema registry at {self.url} cannot be reached: {type(exc).__name__}: "
                f"{mask_text(str(exc))}. Check schema.registry.url, the network and schema.registry.ssl.*; "
                "nothing of this batch was committed, the next run reads it again."
            ) from None

    def _writer(self, schema_id: int, schema: Any) -> WriterSchema:
        if (schema.schema_type or "AVRO") != "AVRO":
            raise UnknownSchemaError(f"schema id {schema_id} in the registry at {self.url} is a "
                                     f"{schema.schema_type} schema, not Avro")
        try:
            writer = WriterSchema(check_schema_text(schema.schema_str))
            writer.fastavro  # noqa: B018 - parsed now: a schema that does not parse is the message's problem
        except UnsafeSchemaError as exc:
            raise UnsafeSchemaError(f"schema id {schema_id} in the registry at {self.url}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - json and fastavro parse errors
            raise UnknownSchemaError(f"schema id {schema_id} in the registry at {self.url} is not a valid "
                                     f"Avro schema: {type(exc).__name__}: {exc}") from None
        return writer

    def _within_deadline(self, request: Any) -> Any:
        """``request()`` on a daemon thread, given up after ``self.deadline`` seconds: a
        stuck connection is abandoned with its client (the run stops with exit 3 anyway)."""
        outcome: dict[str, Any] = {}

        def attempt() -> None:
            try:
                outcome["value"] = request()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=attempt, name="schema-registry-request", daemon=True)
        thread.start()
        thread.join(self.deadline)
        if thread.is_alive():
            self._client = None
            raise RegistryUnavailableError(
                f"the schema registry at {self.url} did not answer within {self.deadline:g} s (the overall "
                "deadline: schema.registry.timeout x (max.retries + 1) plus the retry waits); nothing of this "
                "batch was committed, the next run reads it again")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _explain(self, exc: Any) -> str:
        status = exc.http_status_code
        what = {401: "refused the credentials (HTTP 401): check schema.registry.basic.auth.user.info "
                     "(LSST_CONSUMER_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO or its _FILE variant)",
                403: "denied access (HTTP 403): the account may not read schemas",
                404: "answered HTTP 404 without the registry's 'schema not found' code: check that "
                     "schema.registry.url is the registry's root URL"}.get(status)
        if what is None:
            what = (f"failed with HTTP {status} after {self.config.get('max.retries', 3)} retries"
                    if status >= 500 else f"answered HTTP {status}")
        return (f"the schema registry at {self.url} {what} ({mask_text(str(exc.error_message))}); "
                "nothing of this batch was committed, the next run reads it again")

    def _http_client(self) -> Any:
        if self._client is None or self._client_pid != os.getpid():
            from confluent_kafka.schema_registry import SchemaRegistryClient

            self._client = SchemaRegistryClient(self.config)
            self._client_pid = os.getpid()
            from alert_pipeline.consumer.registry_http import bound_answers
            bound_answers(self._client, MAX_REGISTRY_ANSWER_BYTES, self.deadline)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])


def request_deadline(client_config: Mapping[str, Any]) -> float:
    """The longest one schema request may take in all: what the client itself would take
    at worst if every read honoured ``timeout``: one timeout per attempt
    (``max.retries`` + 1 attempts) plus the longest wait before each retry."""
    timeout = float(client_config.get("timeout") or 30)
    retries = int(client_config.get("max.retries", 3))
    max_wait = float(client_config.get("retries.max.wait.ms", 20000)) / 1000
    return timeout * (retries + 1) + max_wait * retries


class AlertDecoder:
    """Turns one message value into a list of alert dicts.

    ``framing`` is one of FRAMINGS; ``schema_version`` is needed for ``schemaless``;
    ``registry`` (a ``SchemaRegistryClient`` configuration) switches Confluent-framed
    schemas from the bundled set to a registry;
    ``limits`` bound what one message may expand to (see ``alert_pipeline.consumer.limits``).
    """

    def __init__(
        self,
        framing: str = "auto",
        schema_version: str | None = None,
        registry: Mapping[str, Any] | None = None,
        limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
        decoder: str = "auto",
    ) -> None:
        problem = framing_problem(framing, schema_version)
        if problem:
            raise ValueError(problem)
        self.framing = framing
        self.schema_version = schema_version
        self.schema_for_id = RegistrySchemas(registry) if registry else bundled_writer
        self.limits = limits
        #: The Avro library that decodes (see ``alert_pipeline.consumer.avro``), for the start line
        #: and the run history.
        self.name = resolve_decoder(decoder)

    def decode(self, value: bytes | None) -> list[dict[str, Any]]:
        """All alerts carried by one message value."""
        if not value:
            raise CorruptPayloadError("empty message value")
        framing = self.framing if self.framing != "auto" else detect_framing(value)
        if framing == "confluent":
            return [self._decode_confluent(value)]
        if framing == "ocf":
            check_container(value, self.limits)
            return decode_ocf(value)
        if framing == "schemaless":
            writer = self.schema_for_id(schema_id_for_version(self.schema_version))
            return [read_record(value, 0, writer, self.name, f"schema v{self.schema_version}")]
        inflate_bounded(value, self.limits.max_decompressed_bytes)  # refuse a bomb before the parser inflates it
        return [decode_antares_locus(value)]

    def schema_label(self, value: bytes | None) -> str:
        """Which writer schema a message names, for the run's tally: the registry id of a
        Confluent frame ("1101"), "container", "v11.1" (schemaless), "antares-locus"."""
        if not value:
            return "empty"
        framing = self.framing
        if framing == "auto":
            try:
                framing = detect_framing(value)
            except UnrecognisedFramingError:
                return "unrecognised"
        if framing == "confluent":
            return str(struct.unpack_from(">I", value, 1)[0]) if len(value) >= 5 else "unrecognised"
        return {"ocf": "container", "schemaless": f"v{self.schema_version}", "antares": "antares-locus"}[framing]

    def library_for(self, label: str) -> str | None:
        """Which library decodes messages of a ``schema_label``: container files are always
        read by fastavro, ANTARES loci by antares-client, Avro records by ``self.name``;
        None for messages nothing decodes (empty, unrecognised)."""
        if label in ("empty", "unrecognised"):
            return None
        return {"container": "fastavro", "antares-locus": "antares-client"}.get(label, self.name)

    def _decode_confluent(self, value: bytes) -> dict[str, Any]:
        if len(value) < 5 or value[0] != CONFLUENT_MAGIC:
            raise UnrecognisedFramingError("not Confluent wire format (byte 0 is not 0)")
        (schema_id,) = struct.unpack_from(">I", value, 1)
        return read_record(value, 5, self.schema_for_id(schema_id), self.name, f"schema id {schema_id}")


def framing_problem(framing: str, schema_version: str | None) -> str | None:
    """Why this framing cannot be used (the consumer's configuration asks the same), or None."""
    if framing not in FRAMINGS:
        return f"framing must be one of {', '.join(FRAMINGS)}, not {framing!r}"
    if framing == "schemaless" and not schema_version:
        return "framing 'schemaless' needs schema_version (e.g. 11.1)"
    return None


def detect_framing(value: bytes) -> str:
    """Which framing the bytes carry, from their first bytes."""
    if value[:4] == OCF_MAGIC:
        return "ocf"
    if value[0] == CONFLUENT_MAGIC and len(value) >= 5:
        return "confluent"
    if value[0] == 0x78 and (value[0] * 256 + value[1]) % 31 == 0:  # zlib header
        return "antares"
    if value[:2] == b"\x1f\x8b":
        raise GzipPayloadError("the message is gzip-compressed bytes, not an alert: decompress before "
                               "producing, or let Kafka compress (compression.type)")
    if value[:4] == b"PAR1":
        raise ParquetPayloadError("the message is a Parquet file, not an alert: this topic carries tables")
    raise UnrecognisedFramingError(
        f"bytes start with {value[:5].hex()}: neither Confluent wire format (00 + schema id), "
        "an Avro container file (Obj\\x01) nor an ANTARES zlib locus; set framing='schemaless' "
        "with schema_version for bare Avro"
    )


def decode_ocf(value: bytes) -> list[dict[str, Any]]:
    """Every record of an Avro Object Container File."""
    try:
        return list(fastavro.reader(io.BytesIO(value)))
    except Exception as exc:  # noqa: BLE001
        raise CorruptPayloadError(f"Avro container file is corrupt: {type(exc).__name__}: {exc}") from exc


class _LocusMessage:
    """The two methods antares-client's stream parser asks of a Kafka message."""

    def __init__(self, value: bytes) -> None:
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value


def decode_antares_locus(value: bytes) -> dict[str, Any]:
    """An ANTARES stream message (zlib BSON locus) → ``{"antares_locus": {...}}``.

    Parsed by antares-client's own stream parser, so both locus layouts ANTARES has
    published are understood exactly as the official client understands them.
    """
    from antares_client.stream import _parse_message

    try:
        locus = _parse_message(_LocusMessage(value))
    except Exception as exc:  # noqa: BLE001 - zlib, bson and pydantic errors
        raise CorruptPayloadError(f"not an ANTARES locus message: {type(exc).__name__}: {exc}") from exc
    return {
        "antares_locus": {
            "locus_id": locus.locus_id,
            "ra": locus.ra,
            "dec": locus.dec,
            "properties": dict(locus.properties or {}),
            "tags": list(locus.tags or []),
        }
    }
