"""The chaos tier restarts and freezes the shared local services, so its tests
run after every other test, and it leaves the services up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import services  # noqa: F401 - the fixture

TIER_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Moves this tier's tests to the end of the run."""
    mine = [item for item in items if item.path.is_relative_to(TIER_DIR)]
    items[:] = [item for item in items if item not in mine] + mine
