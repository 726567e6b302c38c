"""Bounds on what a schema registry's HTTP answers may cost (see ``decode.RegistrySchemas``).

Imported only when a registry is configured. confluent-kafka talks HTTP through httpx2
where it is installed, else httpx; its ``_httpx_compat`` names the one it uses, and the
stream wrapper must be that library's ``SyncByteStream``.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka.schema_registry.common._httpx_compat import httpx


class AnswerTooLarge(RuntimeError):
    """The registry's answer passed the size cap or the request's deadline."""


class _BoundedStream(httpx.SyncByteStream):
    """A response body that refuses to grow past ``cap`` bytes or to go on past
    ``deadline`` (a monotonic time), so an abandoned request also ends."""

    def __init__(self, stream: Any, cap: int, deadline: float) -> None:
        self.stream, self.cap, self.deadline = stream, cap, deadline

    def __iter__(self) -> Any:
        size = 0
        for chunk in self.stream:
            size += len(chunk)
            if size > self.cap:
                raise AnswerTooLarge(f"the answer is larger than {self.cap} bytes")
            if time.monotonic() > self.deadline:
                raise AnswerTooLarge("the answer took longer than the request deadline")
            yield chunk

    def close(self) -> None:
        self.stream.close()


def bound_answers(client: Any, cap: int, deadline_seconds: float) -> None:
    """Make every answer ``client`` (a ``SchemaRegistryClient``) receives at most ``cap``
    bytes: a declared larger answer is refused before its body is read, a streamed one
    as soon as it passes the cap. Uses httpx's response event hook on the client's
    session (confluent-kafka keeps it as ``_rest_client.session``)."""

    def on_response(response: Any) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise AnswerTooLarge(f"the answer declares {declared} bytes, more than {cap}")
        response.stream = _BoundedStream(response.stream, cap, time.monotonic() + deadline_seconds)

    session = client._rest_client.session
    session.event_hooks = {**session.event_hooks, "response": [*session.event_hooks["response"], on_response]}
