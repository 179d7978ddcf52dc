"""PostgreSQL stopped while the daemon runs, and started again."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .polling import wait_until
from .sample import ROOT, assert_sample_delivered, expect
from .stack import RUN_TIMEOUT_S

SERVICES_SCRIPT = ROOT / "scripts" / "services.sh"
SERVICE_CONTROL_TIMEOUT_S = 120
# Retries back off to this at most, so recovery is noticed within seconds.
RETRY_MAX_S = "2"
SHUTDOWN_TIMEOUT_S = 30.0


def control(action: str) -> None:
    done = subprocess.run(
        [str(SERVICES_SCRIPT), action],
        capture_output=True,
        text=True,
        timeout=SERVICE_CONTROL_TIMEOUT_S,
    )
    assert done.returncode == 0, f"scripts/services.sh {action} failed:\n{done.stderr}"


@contextmanager
def postgres_stopped() -> Iterator[None]:
    """PostgreSQL is down inside the block and always up again after it."""
    control("postgres-stop")
    try:
        yield
    finally:
        control("postgres-start")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_database_outage_pauses_consumption_and_loses_nothing(
    stack, sample, sample_lines, tmp_path
):
    """While PostgreSQL is down the daemon pauses instead of dead-lettering; once
    it is back every event of the sample is stored and published exactly once."""
    half = len(sample_lines) // 2
    first_part = write_lines(tmp_path / "first.jsonl", sample_lines[:half])
    rest = write_lines(tmp_path / "rest.jsonl", sample_lines[half:])
    daemon = stack.start_daemon(
        exit_when_idle_s=None, extra_env={"ALARMD_RETRY_MAX_S": RETRY_MAX_S}
    )
    stack.produce_file(first_part)
    first = expect(sample_lines[:half])
    wait_until(
        lambda: stack.counts()["alarm_events"] == first.events,
        RUN_TIMEOUT_S,
        lambda: f"the first part was not stored: {stack.counts()}\n{daemon.tail()}",
    )

    with postgres_stopped():
        stack.produce_file(rest)
        daemon.wait_for_event("consumption_paused", RUN_TIMEOUT_S)
        assert daemon.running()
    daemon.wait_for_event("consumption_resumed", RUN_TIMEOUT_S)

    wait_until(
        lambda: (
            sum(b["messages"] for b in daemon.events("batch_committed")) == sample.lines
        ),
        RUN_TIMEOUT_S,
        lambda: f"not every message was committed:\n{daemon.tail()}",
    )
    daemon.terminate()
    assert daemon.wait(SHUTDOWN_TIMEOUT_S) == 0, daemon.tail()
    assert not daemon.events("message_dead_lettered")
    assert_sample_delivered(stack, sample)
