"""A frozen PostgreSQL (SIGSTOP: connections stay open, queries hang) while the
daemon writes a batch: liveness fails, the log names the stage, and all is well
once the server runs again."""

from __future__ import annotations

import requests

from .outage import (
    postgres_frozen,
    produce_until_stored,
    split_in_halves,
    stop_after_all_committed,
)
from .sample import assert_sample_delivered
from .stack import RUN_TIMEOUT_S

STALL_DEADLINE_S = 4.0
HTTP_TIMEOUT_S = 2.0
STALL_ENV = {
    "ALARMD_STALL_DEADLINE_S": str(STALL_DEADLINE_S),
    "ALARMD_PUBLISH_TIMEOUT_S": "2",
    "ALARMD_SMTP_TIMEOUT_S": "2",
    # Only the batch may touch the database while frozen: no sweep after start-up.
    "ALARMD_OUTBOX_SWEEP_INTERVAL_S": "3600",
}


def healthz(base_url: str) -> int:
    return requests.get(f"{base_url}/healthz", timeout=HTTP_TIMEOUT_S).status_code


def test_a_hung_database_fails_liveness_and_names_the_stalled_batch(
    stack, sample, sample_lines, tmp_path
):
    """A batch whose database call hangs past the stall deadline turns /healthz
    503 and logs poll_loop_stalled with its database stage and offsets; once
    PostgreSQL runs again, /healthz is 200 and every event is stored once."""
    first_part, rest = split_in_halves(sample_lines, tmp_path)
    daemon = stack.start_daemon(exit_when_idle_s=None, extra_env=STALL_ENV)
    base_url = f"http://127.0.0.1:{daemon.http_port(RUN_TIMEOUT_S)}"
    produce_until_stored(stack, daemon, first_part)
    assert healthz(base_url) == 200

    with postgres_frozen():
        stack.produce_file(rest)
        stalled = daemon.wait_for_event("poll_loop_stalled", RUN_TIMEOUT_S)
        status_while_frozen = healthz(base_url)

    assert status_while_frozen == 503
    # The batch's own write, or the transaction that marks the batch before it
    # published: either way a database call of the batch in hand.
    assert stalled["stage"] in {"write", "mark"}, stalled
    assert stalled["stalled_s"] >= STALL_DEADLINE_S
    partitions = set(stalled["offsets"])
    assert partitions and all(
        p.startswith(f"{stack.topics.input}[") for p in partitions
    )

    daemon.wait_for_event("stall_recovered", RUN_TIMEOUT_S)
    assert healthz(base_url) == 200
    stop_after_all_committed(daemon, sample.lines)
    assert_sample_delivered(stack, sample)
