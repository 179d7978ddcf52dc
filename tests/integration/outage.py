"""Taking the local services away mid-test (scripts/services.sh), and finishing
a run once they are back."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .polling import wait_until
from .sample import ROOT, expect
from .stack import RUN_TIMEOUT_S

SERVICES_SCRIPT = ROOT / "scripts" / "services.sh"
SERVICE_CONTROL_TIMEOUT_S = 120
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


@contextmanager
def postgres_frozen() -> Iterator[None]:
    """PostgreSQL is stopped by SIGSTOP inside the block and runs again after it."""
    control("postgres-freeze")
    try:
        yield
    finally:
        control("postgres-thaw")


@contextmanager
def kafka_stopped() -> Iterator[None]:
    """The Kafka broker is down inside the block and always up again after it."""
    control("kafka-stop")
    try:
        yield
    finally:
        control("kafka-start")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def stop_after_all_committed(daemon, messages: int) -> None:
    """Waits until the daemon has committed `messages` messages, then stops it
    with SIGTERM and asserts it exits 0."""
    wait_until(
        lambda: (
            sum(b["messages"] for b in daemon.events("batch_committed")) == messages
        ),
        RUN_TIMEOUT_S,
        lambda: f"not every message was committed:\n{daemon.tail()}",
    )
    daemon.terminate()
    assert daemon.wait(SHUTDOWN_TIMEOUT_S) == 0, daemon.tail()


def split_in_halves(lines: list[str], folder: Path) -> tuple[Path, Path]:
    """The lines' first and second halves, written as two JSON-lines files."""
    half = len(lines) // 2
    return (
        write_lines(folder / "first.jsonl", lines[:half]),
        write_lines(folder / "rest.jsonl", lines[half:]),
    )


def produce_until_stored(stack, daemon, path: Path) -> None:
    """Produces a file and waits until the daemon has stored its events."""
    stack.produce_file(path)
    expected = expect(path.read_text(encoding="utf-8").splitlines())
    wait_until(
        lambda: stack.counts()["alarm_events"] == expected.events,
        RUN_TIMEOUT_S,
        lambda: f"{path.name} was not stored: {stack.counts()}\n{daemon.tail()}",
    )
