"""The one HTTP port: /metrics, /healthz, /readyz, and the old service's
/orch/api/metrics and /orch/api/heartbeat, so existing monitors keep working.

Served from a daemon thread; the handlers only read state the poll loop sets.

**Stuck detection.** The poll loop beats whenever it comes round, and a retry
beats on every wait, since it keeps polling. It also says which stage it is in
(`enter`), with the batch in hand. When no beat comes for the stall deadline (a
hung database call: a frozen server keeps its TCP connection open, so a query
just waits), /healthz answers 503 so the orchestrator restarts the process, and
a watcher thread logs `poll_loop_stalled` once, naming the stage and the batch's
partitions and offsets. A beat after that logs `stall_recovered`, and /healthz
is 200 again. A retry that keeps failing (PostgreSQL down) is no stall: the loop
is alive and waiting, /readyz says why, and a restart would cure nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from alarmd import logs

log = logs.get(__name__)

# /healthz fails when the poll loop has not come round for this long: it is
# stuck, and a restart is the cure. ALARMD_STALL_DEADLINE_S sets it.
STALL_DEADLINE_S = 60.0
STALL_CHECK_INTERVAL_S = 1.0
READY_CHECK_CACHE_S = 5.0


class Health:
    """What the poll loop tells the probes."""

    def __init__(
        self,
        database_ping: Callable[[], bool],
        stall_deadline_s: float = STALL_DEADLINE_S,
    ) -> None:
        self._ping = database_ping
        self.stall_deadline_s = stall_deadline_s
        self._last_beat = time.monotonic()
        self._stage = "start"
        self._batch: Sequence[Any] = ()
        self._entered = time.monotonic()
        self._reported_beat: float | None = None
        self._joined = False
        self._db_ok = False
        self._db_checked = 0.0
        self._held: str | None = None
        self._lock = threading.Lock()
        self._broker_waits = 0

    def beat(self) -> None:
        """Called by the poll loop on every turn, and by each wait of a retry."""
        self._last_beat = time.monotonic()

    def enter(self, stage: str, batch: Sequence[Any] = ()) -> None:
        """Called by the poll loop as it starts a stage (consume, decode, write,
        publish, mark, commit, sweep, idle), with the Kafka messages in hand.
        Cheap: the batch is described only if the stage stalls."""
        self._stage, self._batch, self._entered = stage, batch, time.monotonic()

    @contextlib.contextmanager
    def waiting_on_broker(self) -> Iterator[None]:
        """Around a Kafka client call that outlasts its timeout only while the
        broker is away (librdkafka's consume can, during a rebalance of lost
        partitions). That wait is not a stall: a restart would not bring the
        broker back. The call's end counts as a beat."""
        self._broker_waits += 1
        try:
            yield
        finally:
            self._broker_waits -= 1
            self.beat()

    def stalled_for(self) -> float:
        """Seconds since the last beat; 0 while waiting on the broker."""
        if self._broker_waits:
            return 0.0
        return time.monotonic() - self._last_beat

    def joined(self) -> None:
        """Called on the first assignment, even an empty one (idle member)."""
        self._joined = True

    def hold_readiness(self, reason: str) -> None:
        """Fails readiness with this reason from now on, while liveness stays:
        for a state a restart with the same settings would not cure."""
        self._held = reason

    def alive(self) -> bool:
        return self.stalled_for() < self.stall_deadline_s

    def check_stall(self) -> None:
        """Logs a stall once when it passes the deadline, and its end once the
        loop beats again. Called by the watcher thread."""
        beat = self._last_beat
        if self._reported_beat is None and not self.alive():
            self._reported_beat = beat
            log.error("poll_loop_stalled", stage=self._stage,
                      stalled_s=round(self.stalled_for(), 1),
                      in_stage_s=round(time.monotonic() - self._entered, 1),
                      deadline_s=self.stall_deadline_s,
                      offsets=offset_ranges(self._batch))  # fmt: skip
        elif self._reported_beat is not None and beat != self._reported_beat:
            log.info("stall_recovered", stage=self._stage,
                     stalled_s=round(beat - self._reported_beat, 1))  # fmt: skip
            self._reported_beat = None

    def watch(self) -> threading.Thread:
        """Starts the daemon thread that reports stalls; returns it."""

        def loop() -> None:
            while True:
                time.sleep(STALL_CHECK_INTERVAL_S)
                self.check_stall()

        watcher = threading.Thread(target=loop, name="stall-watch", daemon=True)
        watcher.start()
        return watcher

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


def offset_ranges(messages: Sequence[Any]) -> dict[str, str]:
    """`{"topic[partition]": "first-last"}` of Kafka messages, for a log line."""
    ranges: dict[str, tuple[int, int]] = {}
    for message in messages:
        key = f"{message.topic()}[{message.partition()}]"
        offset = message.offset()
        low, high = ranges.get(key, (offset, offset))
        ranges[key] = (min(low, offset), max(high, offset))
    return {key: f"{low}-{high}" for key, (low, high) in sorted(ranges.items())}


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
            ok = health.alive()
            text = "alive" if ok else "poll loop stalled"
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
