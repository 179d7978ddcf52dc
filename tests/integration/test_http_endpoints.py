"""The daemon's HTTP port: probes and Prometheus metrics."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from .polling import wait_until
from .stack import RUN_TIMEOUT_S

HTTP_TIMEOUT_S = 5.0
SHUTDOWN_TIMEOUT_S = 30.0


def consumed_total(base_url: str) -> float | None:
    text = requests.get(f"{base_url}/metrics", timeout=HTTP_TIMEOUT_S).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "alarmd_messages_consumed_total":
                return sample.value
    return None


def test_probes_answer_and_metrics_count_the_consumed_messages(
    stack, sample, sample_path
):
    """While the daemon runs, /healthz and /readyz answer 200 and /metrics
    reports alarmd_messages_consumed_total equal to the messages produced."""
    daemon = stack.start_daemon(exit_when_idle_s=None)
    base_url = f"http://127.0.0.1:{daemon.http_port(RUN_TIMEOUT_S)}"
    stack.produce_file(sample_path)

    healthz = requests.get(f"{base_url}/healthz", timeout=HTTP_TIMEOUT_S)
    wait_until(
        lambda: requests.get(f"{base_url}/readyz", timeout=HTTP_TIMEOUT_S).ok,
        RUN_TIMEOUT_S,
        lambda: f"/readyz never answered 200:\n{daemon.tail()}",
    )
    wait_until(
        lambda: consumed_total(base_url) == sample.lines,
        RUN_TIMEOUT_S,
        lambda: (
            f"alarmd_messages_consumed_total is {consumed_total(base_url)}, "
            f"not {sample.lines}"
        ),
    )

    assert (healthz.status_code, healthz.text) == (200, "alive\n")
    readyz = requests.get(f"{base_url}/readyz", timeout=HTTP_TIMEOUT_S)
    assert (readyz.status_code, readyz.text) == (200, "ready\n")
    daemon.terminate()
    assert daemon.wait(SHUTDOWN_TIMEOUT_S) == 0, daemon.tail()
