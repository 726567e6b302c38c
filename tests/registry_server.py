"""A small Confluent-style schema registry on loopback, for tests.

A real HTTP server (confluent-kafka's ``SchemaRegistryClient`` talks to it over HTTP)
serving ``GET /schemas/ids/{id}`` from lsst-alert-packet's bundled schemas, optionally
behind HTTP basic auth, with ids it "lacks" (404, code 40403), extra schemas given as
text (``extra``), a switch that makes it answer every request with a given status (e.g.
503), and two hostile modes: ``drip`` (headers at once, then one body byte every
``drip_interval`` seconds, for at most two minutes) and ``huge_answer`` (a body of that
many bytes, streamed without a declared length).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SchemaRegistryServer:
    def __init__(self, user_info: str | None = None, lacking: tuple[int, ...] = (),
                 extra: dict[int, str] | None = None) -> None:
        self.user_info = user_info
        self.lacking = set(lacking)
        self.extra = dict(extra or {})
        self.fail_with: int | None = None
        self.drip = False
        self.drip_interval = 0.5
        self.huge_answer = 0
        self.requests: list[tuple[str, str]] = []  # (path, Authorization header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append((self.path, self.headers.get("Authorization", "")))
                if server.drip or server.huge_answer:
                    self.hostile_answer()
                    return
                status, body = server.answer(self.path, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def hostile_answer(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                if server.drip:
                    self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    if server.drip:
                        ends = time.monotonic() + 120
                        while time.monotonic() < ends:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(server.drip_interval)
                    else:
                        chunk = b" " * (1 << 20)
                        for _ in range(server.huge_answer >> 20):
                            self.wfile.write(chunk)
                except OSError:
                    pass  # the client gave up: what the test wants

            def log_message(self, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def answer(self, path: str, authorization: str) -> tuple[int, dict]:
        if self.fail_with is not None:
            return self.fail_with, {"error_code": self.fail_with * 100, "message": "Service Unavailable"}
        if self.user_info is not None:
            expected = "Basic " + base64.b64encode(self.user_info.encode()).decode()
            if authorization != expected:
                return 401, {"error_code": 40101, "message": "Unauthorized"}
        parts = path.split("?")[0].strip("/").split("/")
        if parts[:2] != ["schemas", "ids"] or len(parts) != 3 or not parts[2].isdigit():
            return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}
        schema_id = int(parts[2])
        if schema_id in self.extra:
            return 200, {"schema": self.extra[schema_id]}
        from lsst.alert.packet import SchemaRegistry

        registry = SchemaRegistry.all_schemas_from_filesystem()
        if schema_id in self.lacking or schema_id not in registry.known_ids:
            return 404, {"error_code": 40403, "message": f"Schema {schema_id} not found"}
        return 200, {"schema": json.dumps(registry.get_by_id(schema_id).definition)}

    def schema_fetches(self) -> list[str]:
        return [path for path, _ in self.requests if path.startswith("/schemas/ids/")]

    def __enter__(self) -> SchemaRegistryServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
