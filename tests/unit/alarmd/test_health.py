"""alarmd/health.py: the one HTTP port, served for real on 127.0.0.1 and asked
with `requests`."""

from __future__ import annotations

import time

import pytest
import requests
import structlog
from structlog.testing import capture_logs

from alarmd import health as health_module
from alarmd import metrics
from alarmd.health import Health, offset_ranges, serve
from tests.unit.conftest import FakeMessage

REQUEST_TIMEOUT_S = 5.0


class DatabasePing:
    """Answers the readiness probe's database ping as told, and counts the pings."""

    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.answers


@pytest.fixture
def serve_health():
    """Starts the probe server on a free port; returns (health, base URL)."""
    servers = []

    def start(
        ping: DatabasePing, stall_deadline_s: float = health_module.STALL_DEADLINE_S
    ) -> tuple[Health, str]:
        health = Health(ping, stall_deadline_s)
        server = serve(health, "127.0.0.1", 0)
        servers.append(server)
        return health, f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=REQUEST_TIMEOUT_S)


@pytest.mark.parametrize("path", ["/metrics", "/orch/api/metrics"])
def test_metrics_are_served_in_prometheus_text(serve_health, path):
    """Both metrics paths serve alarmd's metrics in the Prometheus text format."""
    metrics.MESSAGES_CONSUMED.inc(0)
    _, base = serve_health(DatabasePing(True))

    response = _get(base + path)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE alarmd_messages_consumed_total counter" in response.text


@pytest.mark.parametrize("path", ["/healthz", "/orch/api/heartbeat"])
def test_liveness_is_200_while_the_poll_loop_comes_round(serve_health, path):
    """A poll loop that beat recently is alive."""
    health, base = serve_health(DatabasePing(True))
    health.beat()

    response = _get(base + path)

    assert (response.status_code, response.text) == (200, "alive\n")


@pytest.mark.parametrize("path", ["/healthz", "/orch/api/heartbeat"])
def test_liveness_is_503_when_the_poll_loop_stalled(serve_health, path):
    """Past the stall deadline without a beat, the process asks to be restarted."""
    _, base = serve_health(DatabasePing(True), stall_deadline_s=0.0)

    response = _get(base + path)

    assert (response.status_code, response.text) == (503, "poll loop stalled\n")


def test_liveness_recovers_when_the_loop_beats_again(serve_health):
    """A stall ends with the next beat: /healthz is 200 again."""
    health, base = serve_health(DatabasePing(True), stall_deadline_s=0.2)
    time.sleep(0.3)
    stalled = _get(base + "/healthz").status_code

    health.beat()

    assert (stalled, _get(base + "/healthz").status_code) == (503, 200)


@pytest.fixture
def logged(monkeypatch):
    """The structlog events alarmd.health logs during the test (a fresh logger,
    since capture_logs() cannot reach one that cached its configuration)."""
    monkeypatch.setattr(
        health_module, "log", structlog.get_logger(health_module.__name__)
    )
    with capture_logs() as events:
        yield events


def test_a_stall_is_logged_once_with_its_stage_and_offsets(logged):
    """The watcher names the stage and the batch's partitions and offset ranges,
    once per stall, however often it checks."""
    health = Health(DatabasePing(True), stall_deadline_s=0.05)
    batch = [
        FakeMessage(b"", partition=p, offset=o) for p, o in [(2, 7), (0, 3), (2, 9)]
    ]
    health.enter("write", batch)
    time.sleep(0.1)

    health.check_stall()
    health.check_stall()

    stalls = [e for e in logged if e["event"] == "poll_loop_stalled"]
    assert len(stalls) == 1
    assert stalls[0]["stage"] == "write"
    assert stalls[0]["offsets"] == {"alarms[0]": "3-3", "alarms[2]": "7-9"}
    assert stalls[0]["stalled_s"] >= 0.05
    assert stalls[0]["log_level"] == "error"


def test_the_end_of_a_stall_is_logged_once_after_the_next_beat(logged):
    """A beat after a reported stall logs stall_recovered once; a fresh stall is
    then reported again."""
    health = Health(DatabasePing(True), stall_deadline_s=0.05)
    health.enter("sweep")
    time.sleep(0.1)
    health.check_stall()

    health.beat()
    health.check_stall()
    health.check_stall()
    time.sleep(0.1)
    health.check_stall()

    assert [e["event"] for e in logged] == [
        "poll_loop_stalled",
        "stall_recovered",
        "poll_loop_stalled",
    ]


def test_no_stall_is_logged_while_the_loop_beats(logged):
    """A loop that keeps coming round (a retry polling between attempts) is
    never reported, however long its stage lasts."""
    health = Health(DatabasePing(True), stall_deadline_s=0.2)
    health.enter("write", [FakeMessage(b"")])

    for _ in range(5):
        time.sleep(0.06)
        health.beat()
        health.check_stall()

    assert logged == []
    assert health.alive()


def test_offset_ranges_cover_each_partition_of_each_topic():
    """Ranges are per topic and partition, from the lowest to the highest offset."""
    messages = [
        FakeMessage(b"", topic="b", partition=1, offset=5),
        FakeMessage(b"", topic="a", partition=1, offset=12),
        FakeMessage(b"", topic="a", partition=1, offset=10),
    ]

    assert offset_ranges(messages) == {"a[1]": "10-12", "b[1]": "5-5"}
    assert offset_ranges([]) == {}


def test_readiness_is_503_before_joining_the_group(serve_health):
    """Not ready until the first assignment, whatever the database says."""
    _, base = serve_health(DatabasePing(True))

    response = _get(base + "/readyz")

    assert response.status_code == 503
    assert "assignment" in response.text


def test_readiness_is_200_after_joining_with_the_database_answering(serve_health):
    """Joined (even with no partitions) and PostgreSQL answers: ready."""
    ping = DatabasePing(True)
    health, base = serve_health(ping)
    health.joined()

    response = _get(base + "/readyz")

    assert (response.status_code, response.text) == (200, "ready\n")
    assert ping.calls == 1


def test_readiness_is_503_when_the_database_does_not_answer(serve_health):
    """Joined but PostgreSQL unreachable: not ready."""
    health, base = serve_health(DatabasePing(False))
    health.joined()

    response = _get(base + "/readyz")

    assert (response.status_code, response.text) == (503, "database unreachable\n")


def test_readiness_pings_the_database_at_most_once_per_cache_period(serve_health):
    """Probes in quick succession share one database ping."""
    ping = DatabasePing(True)
    health, base = serve_health(ping)
    health.joined()

    statuses = [_get(base + "/readyz").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert ping.calls == 1


@pytest.mark.parametrize(
    "path", ["/", "/metricsx", "/orch/api/other", "/readyz/extra", "/health"]
)
def test_any_other_path_is_404(serve_health, path):
    """Only the probe and metrics paths exist."""
    _, base = serve_health(DatabasePing(True))

    assert _get(base + path).status_code == 404


def test_a_wait_on_the_broker_is_no_stall_and_its_end_is_a_beat():
    """A Kafka call that outlasts the deadline while the broker is away keeps
    liveness; a stall of the loop itself still fails it."""
    health = Health(lambda: True, stall_deadline_s=0.05)

    with health.waiting_on_broker():
        time.sleep(0.1)
        assert health.alive()
    assert health.alive()

    time.sleep(0.1)
    assert not health.alive()
