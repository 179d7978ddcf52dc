"""Fixtures of the integration tier: the running services, the sample's
expectations, and one isolated stack per test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .sample import ROOT, SAMPLE_PATH, SampleExpectation, expect
from .stack import SERVICES_ENV, Services, Stack

SERVICES_UP_TIMEOUT_S = 300
TIER_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test of this tier `integration`, so `-m integration` selects it."""
    for item in items:
        if item.path.is_relative_to(TIER_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services() -> Services:
    """Kafka and PostgreSQL, started by `scripts/services.sh up` when not running."""
    try:
        started = subprocess.run(
            [str(ROOT / "scripts" / "services.sh"), "up"],
            env=os.environ,
            capture_output=True,
            text=True,
            timeout=SERVICES_UP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"scripts/services.sh up did not finish within {SERVICES_UP_TIMEOUT_S} s, "
            "so the integration tests have no Kafka and PostgreSQL to run against",
            pytrace=False,
        )
    if started.returncode != 0:
        pytest.fail(
            f"scripts/services.sh up exited {started.returncode}, so the integration "
            f"tests have no Kafka and PostgreSQL to run against:\n{started.stderr}",
            pytrace=False,
        )

    services = Services.from_env_file(SERVICES_ENV)
    problems = services.unreachable()
    if problems:
        pytest.fail(
            "the integration tests need Kafka and PostgreSQL, and "
            + "; ".join(problems),
            pytrace=False,
        )
    return services


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """The shared sample file, read in place beside the repository."""
    if not SAMPLE_PATH.is_file():
        pytest.fail(
            f"the alarm sample {SAMPLE_PATH} is missing; it lives beside the repository "
            "in shared/data and is never copied into it",
            pytrace=False,
        )
    return SAMPLE_PATH


@pytest.fixture(scope="session")
def sample_lines(sample_path: Path) -> list[str]:
    """The sample's non-blank lines, one JSON alarm event each."""
    text = sample_path.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sample(sample_lines: list[str]) -> SampleExpectation:
    """What alarmd must make of the whole sample, computed from the file."""
    return expect(sample_lines)


@pytest.fixture
def stack(services: Services, tmp_path: Path) -> Iterator[Stack]:
    """Topics alarms-<s> and friends, group alarmd-<s> and database alarmd_<s>,
    all removed afterwards."""
    stack = Stack(services, tmp_path)
    try:
        stack.create()
        yield stack
    finally:
        stack.destroy()
