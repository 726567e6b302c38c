"""Why a message could not be used: the quarantine reasons of decoding and records; and
the two errors that stop a run instead (a configuration or a service that cannot be used).

Every failure that is the message's own fault raises a ``DecodeError`` subclass whose
``reason`` is the short tag written in the quarantine sidecar.
"""

from __future__ import annotations

from alert_pipeline.exitcodes import EXIT_SERVICE


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why (exit 2)."""


class DecodeError(ValueError):
    """A message could not be turned into alerts. ``reason`` is a short machine tag."""

    reason = "undecodable"


class UnknownSchemaError(DecodeError):
    """The schema id is neither bundled nor in the configured registry."""

    reason = "unknown-schema-id"


class CorruptPayloadError(DecodeError):
    """The bytes do not decode with their schema, or bytes are left over."""

    reason = "corrupt-payload"


class UnrecognisedFramingError(DecodeError):
    """The bytes are none of the framings the decoder knows."""

    reason = "unrecognised-framing"


class WrongSurveyError(DecodeError):
    """A ZTF alert (``objectId``, ``candidate``) where LSST alerts are expected: the
    consumer is reading the wrong topic."""

    reason = "ztf-alert"


class GzipPayloadError(UnrecognisedFramingError):
    """The message is gzip-compressed bytes (a file uploaded whole, a producer compressing
    values itself): not an alert framing."""

    reason = "gzip-payload"


class ParquetPayloadError(UnrecognisedFramingError):
    """The message is a Parquet file (``PAR1``): a table, not an alert."""

    reason = "parquet-payload"


class IncompletePacketError(DecodeError):
    """The packet lacks what a row needs (diaSource, its id, an alert id)."""

    reason = "incomplete-packet"


class UnsafeSchemaError(DecodeError):
    """The writer schema could make a small message cost the machine (recursive types,
    items that take no bytes, absurd size or depth): no alert schema looks like that."""

    reason = "unsafe-schema"


class UnusableIdError(DecodeError):
    """An id that must name a file is not a signed 64-bit integer."""

    reason = "unusable-id"


class LimitExceededError(DecodeError):
    """The message would cost more than a configured limit; ``reason`` names the limit."""

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"{detail} (limit: {setting})")
        self.reason = f"exceeds-{setting.replace('_', '-')}"


class ServiceError(RuntimeError):
    """A service the run depends on (the broker, the schema registry) cannot be used.

    Never the message's fault: the run stops with ``exit_code``, the batch in hand is
    neither committed nor quarantined, and the next run reads the same messages."""

    exit_code = EXIT_SERVICE


class RegistryUnavailableError(ServiceError):
    """The schema registry refused the credentials, failed or could not be reached."""


__all__ = ["CorruptPayloadError", "DecodeError", "IncompletePacketError", "LimitExceededError",
           "RegistryUnavailableError", "ServiceError", "UnknownSchemaError", "UnrecognisedFramingError",
           "UnsafeSchemaError", "UnusableIdError", "WrongSurveyError", "GzipPayloadError",
           "ParquetPayloadError"]
