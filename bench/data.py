"""The benchmark's alarms: real events from a JSON-lines file, replayed under
fresh iactokens, with about 5% of messages repeating an earlier one.

What every variant must end with (distinct events, cycles, downstream
messages) is counted here from the JSON documents themselves, never from any
variant's code.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemas
from schemas.encoding import single_object
from schemas.mapping import json_to_event

DUPLICATE_SHARE = 0.05
# A repeated message copies one of the last this many, as a redelivery would.
DUPLICATE_WINDOW = 200
SCOPE_IN = "In"


@dataclass(frozen=True, slots=True)
class Alarm:
    """One message to produce: its key, its single-object encoded value, and
    whether it repeats an earlier message byte for byte."""

    key: bytes
    value: bytes
    repeat: bool


@dataclass
class Expected:
    """What a correct run stores, counted from the documents."""

    messages: int = 0
    distinct_events: int = 0
    cycles: int = 0
    notifications: int = 0
    # iactoken -> index of the message whose event starts its cycle.
    cycle_starts: dict[str, int] = field(default_factory=dict)

    @property
    def outbox_rows(self) -> int:
        return 2 * self.cycles + self.notifications

    def __add__(self, other: Expected) -> Expected:
        """What two replays (under different tags) store together; message
        indexes belong to one replay each, so `cycle_starts` is left out."""
        return Expected(
            self.messages + other.messages,
            self.distinct_events + other.distinct_events,
            self.cycles + other.cycles,
            self.notifications + other.notifications,
        )


def source_lines(path: Path) -> list[str]:
    """The file's distinct lines, in first-seen order."""
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            seen.setdefault(line, None)
    return list(seen)


def replay(
    path: Path, count: int, run_tag: str, email_alarm_types: list[str]
) -> tuple[list[Alarm], Expected]:
    """`count` messages (see `replay_lazily`), all in memory."""
    expected = Expected()
    alarms = list(replay_lazily(path, count, run_tag, email_alarm_types, expected))
    return alarms, expected


def replay_lazily(
    path: Path,
    count: int,
    run_tag: str,
    email_alarm_types: list[str],
    expected: Expected,
    seed: int = 6,
) -> Iterator[Alarm]:
    """`count` messages: the file's distinct events round after round, each
    round under fresh iactokens (ParentId follows its parent), and about
    DUPLICATE_SHARE of them repeats of a recent message. `expected` is
    counted up as the messages are taken."""
    listed = frozenset(email_alarm_types)
    stream = _stream(source_lines(path), count, run_tag, random.Random(seed))
    for alarm, document in stream:
        if not alarm.repeat:
            expected.distinct_events += 1
            token = document["iactoken"]
            if (document["scope"] == SCOPE_IN and document["final"] is True
                    and token not in expected.cycle_starts):  # fmt: skip
                expected.cycle_starts[token] = expected.messages
            if document["alarmText"] in listed:
                expected.notifications += 1
        expected.messages += 1
        expected.cycles = len(expected.cycle_starts)
        yield alarm


def _stream(
    lines: list[str], count: int, run_tag: str, rng: random.Random
) -> Iterator[tuple[Alarm, dict[str, Any]]]:
    schema = schemas.load(schemas.ALARM_EVENT)
    recent: list[tuple[Alarm, dict[str, Any]]] = []
    produced = 0
    round_number = 0
    while produced < count:
        for line in lines:
            if produced >= count:
                return
            if recent and rng.random() < DUPLICATE_SHARE:
                copy, document = rng.choice(recent)
                yield Alarm(copy.key, copy.value, repeat=True), document
                produced += 1
                if produced >= count:
                    return
            document = _fresh_tokens(json.loads(line), f"{run_tag}{round_number}")
            alarm = Alarm(
                key=document["iactoken"].encode("utf-8"),
                value=single_object(schema, json_to_event(document)),
                repeat=False,
            )
            recent = [*recent[-(DUPLICATE_WINDOW - 1) :], (alarm, document)]
            yield alarm, document
            produced += 1
        round_number += 1


def _fresh_tokens(document: dict[str, Any], suffix: str) -> dict[str, Any]:
    document["iactoken"] = f"{document['iactoken']}-{suffix}"
    if document.get("ParentId"):
        document["ParentId"] = f"{document['ParentId']}-{suffix}"
    return document
