"""A fatal librdkafka error ends the daemon with a non-zero exit code, so the
orchestrator restarts it, instead of an exit 0 that reads as a clean stop."""

from __future__ import annotations

import json

from .daemon_process import DaemonProcess
from .stack import RUN_TIMEOUT_S

# Two members with one static identity: the broker fences the first one when
# the second joins, which librdkafka reports as a fatal error.
STATIC_MEMBER = {
    "ALARMD_HTTP_PORT": "0",
    "ALARMD_KAFKA_PROPERTIES": json.dumps({"group.instance.id": "alarmd-fenced"}),
}


def test_a_fenced_static_member_exits_non_zero_and_its_successor_goes_on(
    stack, sample, sample_path
):
    first = stack.start_daemon(exit_when_idle_s=None, extra_env=STATIC_MEMBER)
    first.wait_for_event("partitions_assigned", RUN_TIMEOUT_S)

    second = stack.start_daemon(exit_when_idle_s=None, extra_env=STATIC_MEMBER)
    exit_code = first.wait(RUN_TIMEOUT_S)

    assert exit_code != 0, first.tail()
    assert first.events("kafka_fatal_error"), first.tail()
    # The member that took the identity over is unaffected and does the work.
    stack.produce_file(sample_path)
    second.wait_for_event("batch_committed", RUN_TIMEOUT_S)
    assert second.running(), second.tail()
    second.terminate()
    assert second.wait(RUN_TIMEOUT_S) == 0, second.tail()
    assert stack.counts()["alarm_events"] == sample.events


def test_a_fenced_email_sidecar_exits_non_zero(stack):
    """The sidecar shares the member code: fenced, it exits 1 too."""
    env = stack.env({**STATIC_MEMBER, "ALARMD_NOTIFY_HTTP_PORT": "0"})
    first = DaemonProcess(env, stack.work_dir / "notify-1.log", None, "notify")
    second = None
    try:
        first.wait_for_event("partitions_assigned", RUN_TIMEOUT_S)
        second = DaemonProcess(env, stack.work_dir / "notify-2.log", None, "notify")
        exit_code = first.wait(RUN_TIMEOUT_S)
        assert exit_code == 1, first.tail()
        assert first.events("kafka_fatal_error"), first.tail()
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
