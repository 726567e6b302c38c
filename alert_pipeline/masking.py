"""Secrets out of everything shown or written: logs, --show-config, quarantine sidecars.

Masked by key (``sasl.password``, ``ssl.key.pem``, ``basic.auth.user.info``,
``sasl.jaas.config`` …) and by value (the user-info of any URL, ``https://user:pw@host``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

_SECRET_KEY = re.compile(r"password|secret|user\.info|token|jaas|oauthbearer\.config|(^|\.)key(\.pem)?$",
                         re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def is_secret_key(key: str) -> bool:
    """Whether a setting's value is a secret (masked everywhere, never echoed)."""
    return bool(_SECRET_KEY.search(str(key)))


def mask_secrets(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with the values of secret keys replaced by '***' and credentials
    removed from URLs."""
    return {key: ("***" if _SECRET_KEY.search(str(key)) and value else
                  mask_text(value) if isinstance(value, str) else value)
            for key, value in settings.items()}


def mask_text(text: str) -> str:
    """``text`` with the user-info of every URL in it (``https://user:pw@host``) masked."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)


#: Third-party loggers that print request URLs (with their user-info) at INFO.
_URL_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "authlib")


class MaskingFilter(logging.Filter):
    """Masks URL user-info in every record a handler emits, whichever logger made it
    (httpx logs each request's URL, password included, at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        return True


def configure_logging(level: int | str) -> None:
    """The tools' logging: one line per record with an ISO 8601 UTC time (the cron log
    has one time format), every handler masked, and the URL-printing third-party loggers
    at WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ")
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None:
            handler.formatter.converter = time.gmtime  # UTC, as the cron wrapper's own lines
        if not any(isinstance(existing, MaskingFilter) for existing in handler.filters):
            handler.addFilter(MaskingFilter())
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
