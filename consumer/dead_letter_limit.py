"""The dead-letter limit: a brake for when a producer or the configuration is
wrong and nearly every message is invalid.

Dead-lettering is right for the odd bad message. When a whole stream is bad
(a collector switched framing, the daemon has the wrong ALARMD_INPUT_ENCODING
or lacks a writer schema), dead-lettering would move the topic to
`alarms.dlq` one message at a time. The limit stops that instead:

1. each batch's messages are counted in consumption order, after decoding and
   before the transaction, as valid or invalid;
2. if they cross the limit, the batch is held back: nothing of it is written,
   dead-lettered or committed, and consumption pauses;
3. readiness fails with the reason, liveness stays (a restart with the same
   settings and the same input would trip again), one error line and the
   `alarmd_dead_letter_limit_tripped` gauge say so;
4. it stays so until the process restarts, with the fix in place. The held
   batch is then consumed again from the last committed offset.

Only decoding failures count: a row PostgreSQL refuses is found inside the
transaction, when the batch can no longer be held back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from alarmd import logs, metrics
from alarmd.health import Health
from alarmd.settings import Settings
from consumer.batch import Batch, Coordinates

log = logs.get(__name__)


class InvalidRun:
    """Counts messages as valid or invalid and says when they cross the limit:
    `max_in_row` invalid messages in a row, or more than `max_ratio` of the last
    `window` messages invalid (judged once `window` messages have been seen).
    0 switches either test off."""

    def __init__(self, max_in_row: int, max_ratio: float, window: int) -> None:
        self.max_in_row = max_in_row
        self.max_ratio = max_ratio
        self.window = window
        self._seen = 0
        self._in_row = 0
        # Sequence numbers of the invalid messages among the last `window`.
        self._invalid: deque[int] = deque()

    def exceeded(self, invalid: Sequence[bool]) -> str | None:
        """Counts the messages (True: invalid), in order; returns why, once they
        cross the limit, else None."""
        # The share can only cross on an invalid message, or when the window
        # first fills up; a batch with neither needs no walk.
        fills = self._seen < self.window <= self._seen + len(invalid)
        if not fills and not any(invalid):
            self._seen += len(invalid)
            self._in_row = 0
            return None
        for bad in invalid:
            self._seen += 1
            if bad:
                self._in_row += 1
                self._invalid.append(self._seen)
            else:
                self._in_row = 0
            if bad or self._seen == self.window:
                reason = self._crossed()
                if reason:
                    return reason
        return None

    def _crossed(self) -> str | None:
        if self.max_in_row and self._in_row >= self.max_in_row:
            return (
                f"{self._in_row} invalid messages in a row "
                f"(ALARMD_DEAD_LETTER_LIMIT_IN_ROW={self.max_in_row})"
            )
        if not self.max_ratio or self._seen < self.window:
            return None
        while self._invalid and self._invalid[0] <= self._seen - self.window:
            self._invalid.popleft()
        if len(self._invalid) > self.max_ratio * self.window:
            return (
                f"{len(self._invalid)} of the last {self.window} messages invalid "
                f"(ALARMD_DEAD_LETTER_LIMIT_RATIO={self.max_ratio} over "
                f"ALARMD_DEAD_LETTER_LIMIT_WINDOW={self.window})"
            )
        return None


class DeadLetterLimit:
    """The daemon's side of the limit. `holds` is called once per decoded batch,
    on the poll loop's thread; it never blocks."""

    def __init__(self, settings: Settings, health: Health) -> None:
        self._run = InvalidRun(
            settings.dead_letter_limit_in_row,
            settings.dead_letter_limit_ratio,
            settings.dead_letter_limit_window,
        )
        self._health = health
        self.tripped = False
        metrics.DEAD_LETTER_LIMIT_TRIPPED.set(0)

    def holds(self, messages: list[Any], batch: Batch) -> bool:
        """True when this batch crosses the limit (or it was crossed before):
        the caller must then leave the batch unwritten and uncommitted and
        pause consumption."""
        if self.tripped:
            return True
        rejected = {r.coordinates for r in batch.rejected}
        invalid = (
            [Coordinates(m.topic(), m.partition(), m.offset()) in rejected for m in messages]
            if rejected
            else [False] * len(messages)
        )  # fmt: skip
        reason = self._run.exceeded(invalid)
        if reason is None:
            return False

        self.tripped = True
        metrics.DEAD_LETTER_LIMIT_TRIPPED.set(1)
        self._health.hold_readiness(
            f"dead-letter limit reached: {reason}; consumption paused until restart"
        )
        first: dict[int, int] = {}
        for m in messages:
            first.setdefault(m.partition(), m.offset())
        log.error("dead_letter_limit_tripped", reason=reason,
                  topic=messages[0].topic(), held_from=first,
                  held_messages=len(messages), invalid_in_batch=len(batch.rejected),
                  reasons=sorted({r.reason.value for r in batch.rejected}))  # fmt: skip
        return True
