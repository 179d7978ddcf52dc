"""The shared alarm sample and what alarmd must make of it.

The expectations are computed here from the file itself, independently of
alarmd's code: an event is a distinct JSON document, a cycle is an iactoken
with an in-scope final event, a notification is an event whose alarmText is
listed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_PATH = ROOT.parent / "shared" / "data" / "alarms-sample.jsonl"
EMAIL_ALARM_TYPES = (
    "BCF FAULTY",
    "WCDMA BASE STATION OUT OF USE",
    "Mains Input Out of Range",
    "GSM Cell out of Service",
)


@dataclass(frozen=True)
class SampleExpectation:
    lines: int
    events: int
    tokens: frozenset[str]
    cycle_tokens: frozenset[str]
    notifications: int

    @property
    def cycles(self) -> int:
        return len(self.cycle_tokens)


def expect(lines: list[str]) -> SampleExpectation:
    """What alarmd must store and publish for these JSON lines."""
    documents = [json.loads(line) for line in lines if line.strip()]
    distinct = {json.dumps(d, sort_keys=True): d for d in documents}
    return SampleExpectation(
        lines=len(documents),
        events=len(distinct),
        tokens=frozenset(d["iactoken"] for d in documents),
        cycle_tokens=frozenset(
            d["iactoken"]
            for d in documents
            if d["scope"] == "In" and d["final"] is True
        ),
        notifications=sum(
            1 for d in distinct.values() if d["alarmText"] in EMAIL_ALARM_TYPES
        ),
    )


def assert_sample_delivered(
    stack, expected: SampleExpectation, repeats_allowed: bool = False
) -> None:
    """Asserts that the stack's database and topics hold exactly what the sample
    yields: every event once, one cycle and two requests per cycle, one
    notification per listed event, nothing dead-lettered or left in the outbox.

    With `repeats_allowed` (after a crash) a downstream record may appear more
    than once, always under the same event id; without it, exactly once.
    """
    counts = stack.counts()
    assert counts == {
        "alarm_events": expected.events,
        "alarm_cycles": expected.cycles,
        "cycle_tasks": expected.cycles,
        "processing_errors": 0,
        "outbox": 2 * expected.cycles + expected.notifications,
        "outbox_pending": 0,
    }
    stored_tokens = {row[0] for row in stack.query("SELECT iactoken FROM alarm_events")}
    assert stored_tokens == expected.tokens
    cycle_tokens = {row[0] for row in stack.query("SELECT iactoken FROM alarm_cycles")}
    assert cycle_tokens == expected.cycle_tokens

    for topic in (stack.topics.predictive, stack.topics.iac1):
        records = stack.records(topic)
        keys = Counter(r.key.decode() for r in records)
        assert set(keys) == expected.cycle_tokens, topic
        assert repeats_allowed or keys == Counter(expected.cycle_tokens), topic
        assert_one_id_per_outbox_row(stack, topic, records, repeats_allowed)
    notifications = stack.records(stack.topics.notification)
    assert repeats_allowed or len(notifications) == expected.notifications
    assert_one_id_per_outbox_row(
        stack, stack.topics.notification, notifications, repeats_allowed
    )
    assert stack.records(stack.topics.dead_letter) == []


def assert_one_id_per_outbox_row(
    stack, topic: str, records, repeats_allowed: bool
) -> None:
    """The topic's event ids are exactly those of its outbox rows, each on one
    record unless repeats are allowed."""
    ids_on_topic = [r.event_id for r in records]
    assert repeats_allowed or len(ids_on_topic) == len(set(ids_on_topic)), (
        f"{topic} holds repeats"
    )
    outbox_ids = {
        row[0]
        for row in stack.query("SELECT event_id FROM outbox WHERE topic = %s", (topic,))
    }
    assert set(ids_on_topic) == outbox_ids, topic
