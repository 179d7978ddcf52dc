"""SIGTERM while the daemon is working through the sample, then a restart."""

from __future__ import annotations

from .sample import assert_sample_delivered
from .stack import RUN_TIMEOUT_S

# Small batches make the run long enough to be stopped in the middle of it.
SMALL_BATCH = {"ALARMD_BATCH_MAX_MESSAGES": "20", "ALARMD_SHUTDOWN_DEADLINE_S": "15"}


def test_sigterm_mid_run_exits_zero_and_the_restart_loses_and_repeats_nothing(
    stack, sample, sample_path
):
    """A daemon stopped by SIGTERM after its first batch exits 0 within its
    shutdown deadline; the next run completes the sample with every event stored
    once and one downstream record per event id."""
    stack.produce_file(sample_path)
    stopped = stack.start_daemon(exit_when_idle_s=None, extra_env=SMALL_BATCH)
    stopped.wait_for_event("batch_committed", RUN_TIMEOUT_S)

    stopped.terminate()
    exit_code = stopped.wait(float(SMALL_BATCH["ALARMD_SHUTDOWN_DEADLINE_S"]))

    assert exit_code == 0, stopped.tail()
    assert stopped.events("stop_requested")[0]["signal"] == "SIGTERM"
    assert stopped.events("stopped")[0]["producer_queue"] == 0
    restarted = stack.run_daemon_until_idle(extra_env=SMALL_BATCH)

    # The batch in hand at SIGTERM was committed, so the restart resumes after it.
    before_stop = sum(b["messages"] for b in stopped.events("batch_committed"))
    after_restart = sum(b["messages"] for b in restarted.events("batch_committed"))
    assert before_stop + after_restart == sample.lines
    assert_sample_delivered(stack, sample)
