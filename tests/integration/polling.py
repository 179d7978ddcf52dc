"""Waiting for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_INTERVAL_S = 0.2


def wait_until(
    condition: Callable[[], bool], timeout_s: float, describe: Callable[[], str]
) -> None:
    """Returns once `condition()` is true; raises AssertionError with
    `describe()` when it is still false after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(describe())
        time.sleep(POLL_INTERVAL_S)
