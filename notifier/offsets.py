"""Which offsets the sidecar may commit.

Requests wait in groups for seconds, across partitions and out of order, so a
partition's committable offset is its lowest offset not yet recorded (sent or
dead-lettered), or one past the last seen when none is outstanding.
"""

from __future__ import annotations

from notifier.request import Coordinates


class OffsetTracker:
    def __init__(self) -> None:
        self._outstanding: dict[tuple[str, int], set[int]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def seen(self, c: Coordinates) -> None:
        key = (c.topic, c.partition)
        self._outstanding.setdefault(key, set()).add(c.offset)
        self._next[key] = max(self._next.get(key, -1), c.offset + 1)

    def done(self, c: Coordinates) -> None:
        self._outstanding.get((c.topic, c.partition), set()).discard(c.offset)

    def committable(self) -> dict[tuple[str, int], int]:
        """Positions that moved since the last `committed` call."""
        positions = {}
        for key, next_offset in self._next.items():
            outstanding = self._outstanding.get(key)
            position = min(outstanding) if outstanding else next_offset
            if position > self._committed.get(key, -1):
                positions[key] = position
        return positions

    def committed(self, positions: dict[tuple[str, int], int]) -> None:
        self._committed.update(positions)

    def outstanding(self) -> int:
        return sum(len(offsets) for offsets in self._outstanding.values())

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        for key in partitions:
            self._outstanding.pop(key, None)
            self._next.pop(key, None)
            self._committed.pop(key, None)
