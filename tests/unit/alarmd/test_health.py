"""alarmd/health.py: the one HTTP port, served for real on 127.0.0.1 and asked
with `requests`."""

from __future__ import annotations

import pytest
import requests

from alarmd import health as health_module
from alarmd import metrics
from alarmd.health import Health, serve

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

    def start(ping: DatabasePing) -> tuple[Health, str]:
        health = Health(ping)
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
def test_liveness_is_503_when_the_poll_loop_stalled(serve_health, monkeypatch, path):
    """Past the stall limit without a beat, the process asks to be restarted."""
    monkeypatch.setattr(health_module, "STALL_LIMIT_S", 0.0)
    _, base = serve_health(DatabasePing(True))

    response = _get(base + path)

    assert (response.status_code, response.text) == (503, "poll loop stalled\n")


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
