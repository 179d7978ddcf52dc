"""A smaller fault-injection run than `make chaos`, as part of every test run."""

from __future__ import annotations

import pytest

from .scenario import Options, run

ALARMS = 20_000
KILLS = 3
ZERO_LOSS_KEYS = (
    "lost", "duplicated_rows", "missing_downstream", "unexpected_dlq",
    "missing_dlq", "emails_missing",
)  # fmt: skip


@pytest.mark.timeout(1800)
def test_faults_during_processing_lose_and_repeat_nothing(services):
    """With daemons and the sidecar killed, PostgreSQL restarted and frozen, Kafka
    restarted and one daemon stopped gracefully, every event is stored once,
    every expected message reaches its topic, email and dead-letter topic, and
    the graceful stop keeps its deadline."""
    outcome = run(Options(ALARMS, KILLS))

    assert outcome.failures == [], outcome.details
    assert {key: outcome.report[key] for key in ZERO_LOSS_KEYS} == dict.fromkeys(
        ZERO_LOSS_KEYS, 0
    )
    assert outcome.report["stored"] == outcome.details["distinct_events"]
    assert outcome.report["kills"] == KILLS + 1
    assert outcome.report["produced"] >= ALARMS
