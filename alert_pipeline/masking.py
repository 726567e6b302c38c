"""Secrets out of everything shown or written: logs, --show-config, quarantine sidecars.

Masked by key (``sasl.password``, ``ssl.key.pem``, ``basic.auth.user.info``,
``sasl.jaas.config`` …) and by value (the user-info of any URL, ``https://user:pw@host``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SECRET_KEY = re.compile(r"password|secret|user\.info|token|jaas|oauthbearer\.config|(^|\.)key(\.pem)?$",
                         re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def mask_secrets(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with the values of secret keys replaced by '***' and credentials
    removed from URLs."""
    return {key: ("***" if _SECRET_KEY.search(str(key)) and value else
                  mask_text(value) if isinstance(value, str) else value)
            for key, value in settings.items()}


def mask_text(text: str) -> str:
    """``text`` with the user-info of every URL in it (``https://user:pw@host``) masked."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)
