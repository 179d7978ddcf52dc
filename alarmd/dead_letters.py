"""What is on the dead-letter topic, and why: each record read back with the
coordinates of the message it came from, its reason and detail, and the
filters `alarmd dlq list` and `alarmd dlq replay` select by."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytimeparse2
from pydantic import TypeAdapter, ValidationError

from alarmd.errors import ConfigurationError, DeadLetterReason
from alarmd.settings import Settings
from alarmd.topics import TopicRecord, read_messages, reading_consumer
from consumer.dead_letter import (
    ERROR_DETAIL_HEADER,
    ERROR_REASON_HEADER,
    ERROR_STAGE_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)

PREVIEW_BYTES = 48
# Keys are short in practice; a huge one is cut so a listing stays readable.
KEY_SHOWN_BYTES = 256
READER_GROUP = "alarmd-dlq"  # never joined and never committed
_DATETIME = TypeAdapter(datetime)
_ISO_DURATION = TypeAdapter(timedelta)


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic. `source_*` are None when the record
    lacks alarmd's headers (something else wrote it)."""

    record: TopicRecord
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    stage: str | None
    reason: str | None
    detail: str | None

    @classmethod
    def of(cls, record: TopicRecord) -> DeadLetter:
        return cls(
            record=record,
            source_topic=record.text_header(SOURCE_TOPIC_HEADER),
            source_partition=_int(record.text_header(SOURCE_PARTITION_HEADER)),
            source_offset=_int(record.text_header(SOURCE_OFFSET_HEADER)),
            stage=record.text_header(ERROR_STAGE_HEADER),
            reason=record.text_header(ERROR_REASON_HEADER),
            detail=record.text_header(ERROR_DETAIL_HEADER),
        )

    @property
    def coordinate(self) -> str:
        """Where this dead letter is: topic/partition/offset."""
        r = self.record
        return f"{r.topic}/{r.partition}/{r.offset}"

    @property
    def position(self) -> tuple[int, int]:
        """(partition, offset) on the dead-letter topic."""
        return self.record.partition, self.record.offset

    @property
    def time(self) -> datetime | None:
        if self.record.timestamp_ms is None:
            return None
        return datetime.fromtimestamp(self.record.timestamp_ms / 1000, UTC)

    def summary(self) -> dict[str, object]:
        """The record as `alarmd dlq list --json` prints it."""
        r = self.record
        return {
            "dlq": {"topic": r.topic, "partition": r.partition, "offset": r.offset},
            "source": {
                "topic": self.source_topic,
                "partition": self.source_partition,
                "offset": self.source_offset,
            },
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "time": self.time.isoformat() if self.time else None,
            "key": _text(r.key, KEY_SHOWN_BYTES),
            "value_bytes": None if r.value is None else len(r.value),
            "preview": _preview(r.value),
        }


@dataclass(frozen=True)
class Selection:
    """Which dead letters to take: all of the given conditions hold. An empty
    set of reasons or coordinates means any."""

    reasons: frozenset[DeadLetterReason] = frozenset()
    since: datetime | None = None
    coordinates: frozenset[tuple[int, int]] = field(default_factory=frozenset)

    def __contains__(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.coordinates and letter.position not in self.coordinates:
            return False
        return self.since is None or (
            letter.time is not None and letter.time >= self.since
        )

    @property
    def everything(self) -> bool:
        return not (self.reasons or self.since or self.coordinates)


def read_dead_letters(settings: Settings, selection: Selection) -> list[DeadLetter]:
    """The dead letters now on ALARMD_DEAD_LETTER_TOPIC that the selection
    takes, in partition and offset order; only those are kept in memory.
    Blocks while reading the topic to its end."""
    with reading_consumer(settings.kafka_common(), READER_GROUP) as consumer:
        letters = (
            DeadLetter.of(TopicRecord.of(m))
            for m in read_messages(consumer, settings.dead_letter_topic)
        )
        taken = [letter for letter in letters if letter in selection]
    return sorted(taken, key=lambda letter: letter.position)


def parse_reasons(names: Iterable[str]) -> frozenset[DeadLetterReason]:
    """The reasons named, each checked against the closed set; raises
    ConfigurationError naming the valid ones."""
    reasons = set()
    for name in names:
        try:
            reasons.add(DeadLetterReason(name))
        except ValueError:
            valid = ", ".join(r.value for r in DeadLetterReason)
            raise ConfigurationError(
                f"--reason {name!r} is not a dead-letter reason; use one of {valid}"
            ) from None
    return frozenset(reasons)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A point in time from an ISO 8601 timestamp (UTC when it has no offset),
    or from a duration before `now`: "2h", "1d 6h", "90 minutes", "PT30M".
    Raises ConfigurationError for anything else."""
    now = now or datetime.now(UTC)
    try:
        seconds = pytimeparse2.parse(text)
        if seconds is not None:
            return now - timedelta(seconds=float(seconds))
        if text.startswith("P"):
            with contextlib.suppress(ValidationError):
                return now - _ISO_DURATION.validate_python(text)
    except (OverflowError, ValueError):
        raise ConfigurationError(
            f"--since {text!r} reaches back before the year 1; give a shorter "
            "duration or an ISO 8601 time"
        ) from None
    try:
        moment = _DATETIME.validate_python(text)
    except ValidationError:
        raise ConfigurationError(
            f"--since {text!r} is neither an ISO 8601 time such as "
            "2026-12-04T08:00:00Z nor a duration such as 2h, 1d or PT30M"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_coordinate(text: str) -> tuple[int, int]:
    """PARTITION:OFFSET (or PARTITION/OFFSET) of a dead letter."""
    partition, sep, offset = text.replace("/", ":").rpartition(":")
    try:
        if not sep:
            raise ValueError
        return int(partition), int(offset)
    except ValueError:
        raise ConfigurationError(
            f"--at {text!r} is not PARTITION:OFFSET of a dead letter, e.g. 3:1207"
        ) from None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _preview(value: bytes | None) -> str | None:
    """The value's first bytes, printable ASCII as it is and the rest escaped."""
    if value is None:
        return None
    return repr(value[:PREVIEW_BYTES])[2:-1]


def _text(value: bytes | None, limit: int) -> str | None:
    """Bytes as text for people: UTF-8 where it is, escapes where it is not, cut
    after `limit` bytes with the full length said."""
    if value is None:
        return None
    shown = value[:limit].decode("utf-8", "backslashreplace")
    return shown if len(value) <= limit else f"{shown}... ({len(value)} bytes)"
