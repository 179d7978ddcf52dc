"""Fixtures of the chart tier. The metric-name test reuses the integration
tier's services and stack: its own topics, consumer groups and database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import sample_path, services  # noqa: F401
from tests.integration.stack import Services, Stack


@pytest.fixture
def stack(
    services: Services,  # noqa: F811 - the integration tier's fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """An integration stack whose sidecar topics and group are its own too."""
    stack = Stack(services, tmp_path)
    monkeypatch.setenv(
        "ALARMD_NOTIFY_DEAD_LETTER_TOPIC", f"notification-{stack.suffix}.dlq"
    )
    monkeypatch.setenv("ALARMD_NOTIFY_GROUP_ID", f"alarmd-notify-{stack.suffix}")
    try:
        stack.create()
        yield stack
    finally:
        stack.destroy()
