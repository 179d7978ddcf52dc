"""A consumed batch, decoded: the events to store and the messages to reject.

Decoding happens here, before any database work, so one bad message becomes a
`Rejected` entry and never aborts the rest of its batch.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from alarmd.errors import DeadLetterReason, InvalidMessage
from alarmd.headers import read_headers, with_headers_note
from schemas.decoding import Decoder

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Coordinates:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(slots=True)
class DecodedEvent:
    coordinates: Coordinates
    event_id: str
    record: dict[str, Any]
    message: Any  # the confluent_kafka.Message it came from, for dead-lettering
    # Made ahead of the transaction, on the thread that decodes (see
    # consumer.transaction.BatchWriter.prepare): its COPY line for alarm_events,
    # and, for an event that may start a cycle, what its downstream messages
    # share whatever the cycle's id.
    copy_line: str | None = None
    cycle_prelude: Any = None


@dataclass(slots=True)
class Rejected:
    """A message that goes to the dead-letter topic, with everything it carried."""

    coordinates: Coordinates
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    stage: str
    reason: DeadLetterReason
    detail: str
    traceback: str = ""


@dataclass(slots=True)
class Batch:
    events: list[DecodedEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    duplicates_in_batch: int = 0

    def coordinates(self) -> list[Coordinates]:
        return [e.coordinates for e in self.events] + [
            r.coordinates for r in self.rejected
        ]


def event_id(record: dict[str, Any]) -> str:
    """The content identity of an alarm event: SHA-256 of its canonical JSON.

    Canonical JSON is what `json.dumps(record, sort_keys=True, ensure_ascii=False,
    separators=(",", ":"))` writes, with timestamps as integer microseconds, in
    UTF-8. orjson writes the same bytes several times faster.

    Two deliveries of the same event, however they were framed, have the same id;
    any difference in any field or attribute gives a new one.
    """
    canonical = orjson.dumps(record, default=_micros, option=_CANONICAL)
    return hashlib.sha256(canonical).hexdigest()


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _micros(value: Any) -> Any:
    # Integer arithmetic: a float timestamp times 10**6 rounds, and after 2038 it
    # gives two instants a microsecond apart the same number, so the same id.
    if isinstance(value, datetime):
        return (value - EPOCH) // ONE_MICROSECOND
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


def decode_batch(messages: list[Any], decode: Decoder) -> Batch:
    """Decodes confluent-kafka messages; repeats within the batch are dropped."""
    batch = Batch()
    seen: set[str] = set()
    for message in messages:
        coordinates = Coordinates(
            message.topic(), message.partition(), message.offset()
        )
        try:
            record = decode(message.value())
        except InvalidMessage as exc:
            headers, readable = read_headers(message)
            batch.rejected.append(
                Rejected(
                    coordinates=coordinates,
                    key=message.key(),
                    value=message.value(),
                    headers=headers,
                    stage="decode",
                    reason=exc.reason,
                    detail=with_headers_note(exc.detail, readable),
                    traceback=traceback.format_exc(),
                )
            )
            continue
        identity = event_id(record)
        if identity in seen:
            batch.duplicates_in_batch += 1
            continue
        seen.add(identity)
        batch.events.append(DecodedEvent(coordinates, identity, record, message))
    return batch
