"""A daemon killed outright (SIGKILL) mid-run, then restarted."""

from __future__ import annotations

import json
import signal

from .sample import assert_sample_delivered
from .stack import RUN_TIMEOUT_S

# Small batches, so the kill lands mid-run; a short session, so the dead
# member's partitions reach the restarted daemon within seconds.
CRASH_ENV = {
    "ALARMD_BATCH_MAX_MESSAGES": "20",
    "ALARMD_KAFKA_PROPERTIES": json.dumps(
        {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}
    ),
}


def test_sigkill_mid_run_then_restart_loses_nothing(stack, sample, sample_path):
    """After a kill at any point of a batch, the restart stores every event once
    and publishes every outbox row, repeats only under the same event id."""
    stack.produce_file(sample_path)
    crashed = stack.start_daemon(exit_when_idle_s=None, extra_env=CRASH_ENV)
    crashed.wait_for_event("batch_committed", RUN_TIMEOUT_S)

    crashed.kill()
    restarted = stack.run_daemon_until_idle(extra_env=CRASH_ENV)

    assert crashed.process.returncode == -signal.SIGKILL
    assert restarted.events("partitions_assigned")
    assert_sample_delivered(stack, sample, repeats_allowed=True)
