"""What the run produces and what must come of it.

Real events from the shared sample are replayed in rounds, each round under
fresh iactokens (and ParentIds), until there are enough distinct events; about
5% of the messages then repeat an earlier event byte for byte, some time later.
Expectations are computed from these documents alone, never from alarmd's code:
a distinct event is a distinct JSON document, a cycle is an iactoken with an
in-scope final event, a notification is a distinct event with a listed
alarmText.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import schemas
from tests.integration.avro_framing import alarm_event_json, single_object, to_record
from tests.integration.sample import EMAIL_ALARM_TYPES, expect

DUPLICATE_SHARE = 0.05
# A repeat arrives up to this many messages after the event it repeats.
DUPLICATE_SPREAD = 5000
EMAIL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"  # how an email's table shows a time

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]
# (iactoken, alarmText, status, scope, final, event time in µs, additionalInfo digest)
StoredKey = tuple[str, str, str, str, bool, int, str]
# (iactoken, alarmText, event time as an email shows it)
EmailKey = tuple[str, str, str]


def event_time(value: str | datetime) -> datetime:
    moment = (
        value
        if isinstance(value, datetime)
        else datetime.fromisoformat(value.replace("Z", "+00:00"))
    )
    return moment.astimezone(UTC)


def stored_key(
    iactoken: str,
    alarm_text: str,
    status: str,
    scope: str,
    final: bool,
    moment: str | datetime,
    additional_info: str,
) -> StoredKey:
    """What identifies a stored event for the run's checks, from a document or a
    row alike."""
    micros = (event_time(moment) - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROSECOND
    digest = hashlib.sha256(additional_info.encode("utf-8")).hexdigest()
    return (iactoken, alarm_text, status, scope, bool(final), micros, digest)


def email_key(iactoken: str, alarm_text: str, moment: str | datetime) -> EmailKey:
    return (iactoken, alarm_text, event_time(moment).strftime(EMAIL_TIME_FORMAT))


@dataclass
class Workload:
    """The alarm messages in produce order, and what they must yield."""

    messages: list[Message]
    # How many distinct events the messages up to each index hold (exclusive).
    distinct_before: list[int]
    stored: Counter[StoredKey]
    cycle_tokens: frozenset[str]
    notifications: Counter[EmailKey]

    @property
    def events(self) -> int:
        return sum(self.stored.values())


def build(sample: Path, alarms: int, tag: str, seed: int) -> Workload:
    """`alarms` messages replayed from `sample`, tokens suffixed with `tag`."""
    rng = random.Random(seed)
    base = list(
        {
            json.dumps(d, sort_keys=True): d
            for d in (json.loads(line) for line in _lines(sample))
        }.values()
    )
    distinct_wanted = max(1, round(alarms * (1 - DUPLICATE_SHARE)))
    documents = [
        _replayed(base[i % len(base)], f"{tag}r{i // len(base)}")
        for i in range(distinct_wanted)
    ]

    order = list(range(distinct_wanted))
    for _ in range(alarms - distinct_wanted):
        # Near the original, usually after it; where it lands first, the
        # original is the repeat. Either way the bytes are the same.
        source = rng.randrange(distinct_wanted)
        order.insert(source + 1 + rng.randrange(DUPLICATE_SPREAD), source)

    schema = schemas.load(schemas.ALARM_EVENT)
    reader = alarm_event_json()
    values = [single_object(schema, to_record(d, reader)) for d in documents]
    messages: list[Message] = []
    distinct_before: list[int] = []
    seen: set[int] = set()
    for index in order:
        distinct_before.append(len(seen))
        seen.add(index)
        messages.append((documents[index]["iactoken"].encode(), values[index], []))

    expected = expect([json.dumps(d) for d in documents])
    assert expected.events == distinct_wanted, "replayed documents must be distinct"
    return Workload(
        messages=messages,
        distinct_before=distinct_before,
        stored=Counter(_stored_key_of(d) for d in documents),
        cycle_tokens=expected.cycle_tokens,
        notifications=Counter(
            email_key(d["iactoken"], d["alarmText"], d["eventTime"])
            for d in documents
            if d["alarmText"] in EMAIL_ALARM_TYPES
        ),
    )


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text("utf-8").splitlines() if line.strip()]


def _replayed(document: dict[str, Any], suffix: str) -> dict[str, Any]:
    copy = {**document, "iactoken": f"{document['iactoken']}-{suffix}"}
    if copy.get("ParentId"):
        copy["ParentId"] = f"{copy['ParentId']}-{suffix}"
    return copy


def _stored_key_of(d: dict[str, Any]) -> StoredKey:
    return stored_key(d["iactoken"], d["alarmText"], d["status"], d["scope"],
                      d["final"], d["eventTime"], d["additionalInfo"])  # fmt: skip


_MICROSECOND = datetime.resolution
