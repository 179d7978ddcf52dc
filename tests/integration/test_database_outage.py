"""PostgreSQL stopped while the daemon runs, and started again."""

from __future__ import annotations

from .outage import (
    postgres_stopped,
    produce_until_stored,
    split_in_halves,
    stop_after_all_committed,
)
from .sample import assert_sample_delivered
from .stack import RUN_TIMEOUT_S

# Retries back off to this at most, so recovery is noticed within seconds.
RETRY_MAX_S = "2"


def test_database_outage_pauses_consumption_and_loses_nothing(
    stack, sample, sample_lines, tmp_path
):
    """While PostgreSQL is down the daemon pauses instead of dead-lettering; once
    it is back every event of the sample is stored and published exactly once."""
    first_part, rest = split_in_halves(sample_lines, tmp_path)
    daemon = stack.start_daemon(
        exit_when_idle_s=None, extra_env={"ALARMD_RETRY_MAX_S": RETRY_MAX_S}
    )
    produce_until_stored(stack, daemon, first_part)

    with postgres_stopped():
        stack.produce_file(rest)
        daemon.wait_for_event("consumption_paused", RUN_TIMEOUT_S)
        assert daemon.running()
    daemon.wait_for_event("consumption_resumed", RUN_TIMEOUT_S)

    stop_after_all_committed(daemon, sample.lines)
    assert not daemon.events("message_dead_lettered")
    assert_sample_delivered(stack, sample)
