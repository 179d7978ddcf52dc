"""The Kafka broker stopped while the daemon works, for longer than the session
timeout, and started again."""

from __future__ import annotations

import json
import time

import requests

from tests.chaos.workload import build

from .outage import SHUTDOWN_TIMEOUT_S, kafka_stopped
from .polling import wait_until
from .sample import SAMPLE_PATH
from .stack import RUN_TIMEOUT_S

ALARMS = 6000
OUTAGE_S = 30.0
HTTP_TIMEOUT_S = 2.0
OUTAGE_ENV = {
    # The default stall deadline: while the broker is away the commit stage
    # has been seen to go 20-35 s without a beat (README, Known limits), which
    # the default leaves room for and a 30 s outage must not exceed.
    "ALARMD_PUBLISH_TIMEOUT_S": "5",
    "ALARMD_SMTP_TIMEOUT_S": "5",
    "ALARMD_RETRY_MAX_S": "2",
    # The outage outlasts the session, so the member loses its partitions.
    "ALARMD_KAFKA_PROPERTIES": json.dumps({"session.timeout.ms": "10000"}),
}


def test_a_broker_outage_is_no_stall_and_the_daemon_resumes_after_it(stack):
    """While the broker is away the loop keeps coming round (/healthz 200, even
    when a publish or an offset commit waits for it); once it is back, and the
    partitions are assigned again, every event is stored and published."""
    workload = build(SAMPLE_PATH, ALARMS, stack.suffix, seed=5)
    daemon = stack.start_daemon(exit_when_idle_s=None, extra_env=OUTAGE_ENV)
    base_url = f"http://127.0.0.1:{daemon.http_port(RUN_TIMEOUT_S)}"
    stack.produce_raw(workload.messages)
    wait_until(
        lambda: stack.counts()["alarm_events"] > 0,
        RUN_TIMEOUT_S,
        lambda: f"nothing was stored before the outage:\n{daemon.tail()}",
    )

    statuses = []
    with kafka_stopped():
        ends = time.monotonic() + OUTAGE_S
        while time.monotonic() < ends:
            statuses.append(
                requests.get(f"{base_url}/healthz", timeout=HTTP_TIMEOUT_S).status_code
            )
            time.sleep(1.0)

    assert set(statuses) == {200}, (statuses, daemon.events("poll_loop_stalled"))
    # Messages of a batch whose commit the lost partitions refused come again,
    # so the daemon commits more messages than were produced: wait for rows.
    wait_until(
        lambda: (
            (counts := stack.counts())["alarm_events"] == workload.events
            and counts["outbox_pending"] == 0
        ),
        RUN_TIMEOUT_S,
        lambda: f"not every event was stored: {stack.counts()}\n{daemon.tail()}",
    )
    daemon.terminate()
    assert daemon.wait(SHUTDOWN_TIMEOUT_S) == 0, daemon.tail()
    assert not daemon.events("poll_loop_stalled")
