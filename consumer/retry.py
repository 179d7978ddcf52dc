"""Retrying transient failures while keeping the consumer in its group.

The first failure pauses every assigned partition; each wait between attempts
polls the consumer, so heartbeats and rebalances go on while fetching stops.
A warning is logged when the error changes, not on every attempt, and one
info line says when the operation succeeded again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

from alarmd import logs, metrics
from alarmd.errors import TransientError

T = TypeVar("T")
log = logs.get(__name__)


class PausingRetry:
    """Runs operations until they succeed, pausing consumption meanwhile.

    `pause`/`resume` pause and resume the current assignment; `poll` serves the
    consumer for up to the given seconds; `give_up` says when to stop trying
    (a shutdown past its deadline). All are called on the caller's thread.
    """

    def __init__(
        self,
        *,
        initial_s: float,
        max_s: float,
        pause: Callable[[], None],
        resume: Callable[[], None],
        poll: Callable[[float], None],
        give_up: Callable[[], bool],
    ) -> None:
        self._wait = wait_exponential_jitter(
            multiplier=initial_s, max=max_s, jitter=initial_s
        )
        self._pause, self._resume, self._poll, self._give_up = (
            pause,
            resume,
            poll,
            give_up,
        )
        self.paused = False
        # The last error text, kept across operations: a later step that fails
        # differently while still paused is a change worth a warning too.
        self._last_error = ""

    def __call__(self, stage: str, operation: Callable[[], T]) -> T:
        """Returns what `operation` returns once it stops raising TransientError.

        Raises the last TransientError when `give_up` turns true first.
        """
        attempts = 0

        def before_sleep(state: Any) -> None:
            nonlocal attempts
            attempts = state.attempt_number
            error = state.outcome.exception()
            metrics.TRANSIENT_ERRORS.labels(stage=stage).inc()
            if not self.paused:
                self._pause()
                self.paused = True
                metrics.PAUSED.set(1)
                log.warning("consumption_paused", stage=stage, error=str(error))
            elif self._last_error != str(error):
                log.warning("retry_error_changed", stage=stage, error=str(error))
            self._last_error = str(error)

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=self._wait,
            sleep=self._sleep,
            stop=lambda _state: self._give_up(),
            before_sleep=before_sleep,
            reraise=True,
        )
        result = retrying(operation)
        if attempts:
            log.info("retry_succeeded", stage=stage, attempts=attempts + 1)
        return result

    def resume_if_paused(self) -> None:
        """Resumes consumption after the batch that paused it is complete."""
        if self.paused:
            self._resume()
            self.paused = False
            metrics.PAUSED.set(0)
            log.info("consumption_resumed")

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._give_up():
            self._poll(min(left, 1.0))
