"""The one HTTP port: /metrics, /healthz, /readyz, and the old service's
/orch/api/metrics and /orch/api/heartbeat, so existing monitors keep working.

Served from a daemon thread; the handlers only read state the poll loop sets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

# /healthz fails when the poll loop has not come round for this long: it is
# stuck, and a restart is the cure.
STALL_LIMIT_S = 60.0
READY_CHECK_CACHE_S = 5.0


class Health:
    """What the poll loop tells the probes."""

    def __init__(self, database_ping: Callable[[], bool]) -> None:
        self._ping = database_ping
        self._last_beat = time.monotonic()
        self._joined = False
        self._db_ok = False
        self._db_checked = 0.0
        self._held: str | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Called by the poll loop on every turn."""
        self._last_beat = time.monotonic()

    def joined(self) -> None:
        """Called on the first assignment, even an empty one (idle member)."""
        self._joined = True

    def hold_readiness(self, reason: str) -> None:
        """Fails readiness with this reason from now on, while liveness stays:
        for a state a restart with the same settings would not cure."""
        self._held = reason

    def alive(self) -> bool:
        return time.monotonic() - self._last_beat < STALL_LIMIT_S

    def ready(self) -> tuple[bool, str]:
        if not self.alive():
            return False, "poll loop stalled"
        if self._held is not None:
            return False, self._held
        if not self._joined:
            return False, "waiting for a partition assignment"
        if not self._database_ok():
            return False, "database unreachable"
        return True, "ready"

    def _database_ok(self) -> bool:
        with self._lock:
            if time.monotonic() - self._db_checked > READY_CHECK_CACHE_S:
                self._db_ok = self._ping()
                self._db_checked = time.monotonic()
            return self._db_ok


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib name
        pass  # probes every few seconds would drown the log


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(health: Health, host: str, port: int) -> WSGIServer:
    """Starts the HTTP server on a daemon thread and returns it (port 0 picks one)."""
    metrics_app = make_wsgi_app()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in ("/metrics", "/orch/api/metrics"):
            return metrics_app(environ, start_response)
        if path in ("/healthz", "/orch/api/heartbeat"):
            ok, text = (
                health.alive(),
                "alive" if health.alive() else "poll loop stalled",
            )
        elif path == "/readyz":
            ok, text = health.ready()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{text}\n".encode()]

    server = make_server(host, port, app, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
