"""A Schema Registry on 127.0.0.1, in a thread, that speaks the part of the
Confluent REST API alarmd and its producers use: register a schema under a
subject, and fetch a schema by id.

The Confluent server itself is not on the package registries this project
installs from, so the tier serves these two calls over real HTTP, and the
daemon's own client (confluent-kafka's `SchemaRegistryClient`) talks to it as it
would to the real one: ids count up from 1, the same schema text keeps its id,
and an id never issued is a 404 with error code 40403.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REGISTER_PATH = re.compile(r"^/subjects/(?P<subject>[^/?]+)/versions(\?.*)?$")
SCHEMA_BY_ID_PATH = re.compile(r"^/schemas/ids/(?P<id>\d+)(\?.*)?$")
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class LocalSchemaRegistry:
    """Serves schemas from memory until `close()`; `url` is its base URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, str] = {}
        self.lookups: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                match = REGISTER_PATH.match(self.path)
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                if match is None or "schema" not in request:
                    self._answer(404, {"error_code": 404, "message": "not found"})
                    return
                self._answer(200, {"id": owner.register(request["schema"])})

            def do_GET(self):  # noqa: N802
                match = SCHEMA_BY_ID_PATH.match(self.path)
                text = owner.schema(int(match["id"])) if match else None
                if text is None:
                    message = "Schema not found" if match else "not found"
                    self._answer(404, {"error_code": 40403, "message": message})
                    return
                self._answer(200, {"schema": text})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def register(self, schema_text: str) -> int:
        """The schema's id, issuing the next one on first sight."""
        with self._lock:
            if schema_text not in self._ids:
                self._ids[schema_text] = len(self._ids) + 1
                self._schemas[self._ids[schema_text]] = schema_text
            return self._ids[schema_text]

    def schema(self, schema_id: int) -> str | None:
        with self._lock:
            self.lookups.append(schema_id)
            return self._schemas.get(schema_id)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
