"""Grouping requests into emails, in the manner of Alertmanager.

A request joins the open group of its key (by default customer and alarmText).
A new group is first sent `group_wait` after its first request, to collect its
siblings; afterwards, requests that joined an open group go out at most every
`group_interval`. A group that had nothing to send for a whole interval closes,
and the next request of its key opens a new one.

Pure logic: the caller passes the time, so the rules are tested without clocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from notifier.request import GROUPABLE_FIELDS, Coordinates, Received


@dataclass(frozen=True, slots=True)
class Digest:
    """The requests of one email, in arrival order, and the group they belong to.

    `duplicates` are the coordinates of redelivered copies of these requests; their
    offsets are done once the digest is recorded."""

    key: tuple[str, ...]
    key_text: str
    received: tuple[Received, ...]
    duplicates: tuple[Coordinates, ...]
    opened_at: float


@dataclass
class _Group:
    key: tuple[str, ...]
    opened_at: float
    flush_at: float
    pending: dict[str, Received] = field(default_factory=dict)
    duplicates: list[Coordinates] = field(default_factory=list)


class Grouper:
    def __init__(
        self, fields: list[str], group_wait_s: float, group_interval_s: float
    ) -> None:
        unknown = [name for name in fields if name not in GROUPABLE_FIELDS]
        if unknown or not fields:
            raise ValueError(
                f"grouping fields {fields} are not usable; choose from "
                f"{', '.join(GROUPABLE_FIELDS)}"
            )
        self.fields = list(fields)
        self._wait_s = group_wait_s
        self._interval_s = group_interval_s
        self._groups: dict[tuple[str, ...], _Group] = {}

    def key_of(self, received: Received) -> tuple[str, ...]:
        return tuple(received.request.field(name) for name in self.fields)

    def key_text(self, key: tuple[str, ...]) -> str:
        return json.dumps(dict(zip(self.fields, key, strict=True)), ensure_ascii=False)

    def add(self, received: Received, now: float) -> bool:
        """Adds a request; False when an identical request is already pending (a
        redelivered copy), whose coordinates are then kept with the original."""
        key = self.key_of(received)
        group = self._groups.get(key)
        if group is None:
            group = _Group(key, opened_at=now, flush_at=now + self._wait_s)
            self._groups[key] = group
        event_id = received.request.event_id
        if event_id in group.pending:
            group.duplicates.append(received.coordinates)
            return False
        group.pending[event_id] = received
        return True

    def due(self, now: float) -> list[Digest]:
        """Takes the digests whose time has come; closes groups that stayed empty
        for a whole interval."""
        digests = []
        for key, group in list(self._groups.items()):
            if now < group.flush_at:
                continue
            if not group.pending:
                del self._groups[key]
                continue
            digests.append(
                Digest(
                    key=key,
                    key_text=self.key_text(key),
                    received=tuple(group.pending.values()),
                    duplicates=tuple(group.duplicates),
                    opened_at=group.opened_at,
                )
            )
            group.pending, group.duplicates = {}, []
            group.flush_at = now + self._interval_s
        return digests

    def next_due(self) -> float | None:
        """The earliest time `due` may return something or close a group."""
        return min((g.flush_at for g in self._groups.values()), default=None)

    def pending(self) -> int:
        return sum(len(g.pending) for g in self._groups.values())

    def drop_partitions(self, revoked: set[tuple[str, int]]) -> int:
        """Forgets requests of revoked partitions: their new owner gets them again.
        Returns how many were dropped."""
        dropped = 0
        for group in self._groups.values():
            for event_id, received in list(group.pending.items()):
                c = received.coordinates
                if (c.topic, c.partition) in revoked:
                    del group.pending[event_id]
                    dropped += 1
            group.duplicates = [
                c for c in group.duplicates if (c.topic, c.partition) not in revoked
            ]
        return dropped
