"""alarmd/dead_letters.py: reading a dead letter's headers, choosing dead
letters by reason, time and coordinate, and parsing the command's arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alarmd.dead_letters import (
    DeadLetter,
    Selection,
    parse_coordinate,
    parse_reasons,
    parse_since,
)
from alarmd.errors import ConfigurationError, DeadLetterReason
from alarmd.topics import TopicRecord
from consumer.batch import Coordinates, Rejected
from consumer.dead_letter import dead_letter_message

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def dead_letter(
    reason: DeadLetterReason = DeadLetterReason.BAD_FRAMING,
    *,
    partition: int = 1,
    offset: int = 7,
    at: datetime = NOW,
    value: bytes | None = b"\x00\x01garbage",
    headers: list | None = None,
) -> DeadLetter:
    """A dead letter as the daemon writes it (through dead_letter_message), read
    back as a record of alarms.dlq."""
    rejected = Rejected(
        coordinates=Coordinates("alarms", 3, 1207), key=b"3100012", value=value,
        headers=headers or [("collector", b"robot-7")], stage="decode", reason=reason,
        detail="payload is 3 bytes",
    )  # fmt: skip
    message = dead_letter_message(rejected, "alarms.dlq")
    record = TopicRecord(
        "alarms.dlq", partition, offset, int(at.timestamp() * 1000),
        message.key, message.payload, tuple(message.headers),
    )  # fmt: skip
    return DeadLetter.of(record)


def test_a_dead_letter_reads_its_origin_and_reason_from_its_headers():
    """The source coordinates, stage, reason and detail the daemon wrote come
    back as they went in; the summary shows the coordinate and an escaped
    preview."""
    letter = dead_letter(DeadLetterReason.MALFORMED_RECORD)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "alarms", 3, 1207
    )  # fmt: skip
    assert (letter.stage, letter.reason, letter.detail) == (
        "decode", "malformed_record", "payload is 3 bytes"
    )  # fmt: skip
    summary = letter.summary()
    assert summary["dlq"] == {"topic": "alarms.dlq", "partition": 1, "offset": 7}
    assert summary["time"] == NOW.isoformat()
    assert summary["preview"] == "\\x00\\x01garbage"
    assert summary["value_bytes"] == len(b"\x00\x01garbage")
    assert letter.coordinate == "alarms.dlq/1/7"


def test_a_record_without_alarmd_headers_reads_as_unknown_origin():
    """A record something else wrote to the topic has no source or reason."""
    letter = DeadLetter.of(TopicRecord("alarms.dlq", 0, 0, None, None, b"x", ()))
    assert (letter.source_topic, letter.reason, letter.time) == (None, None, None)
    assert letter not in Selection(reasons=frozenset(DeadLetterReason))


@pytest.mark.parametrize(
    ("selection", "taken"),
    [
        pytest.param(Selection(), True, id="everything"),
        pytest.param(
            Selection(reasons=frozenset({DeadLetterReason.BAD_FRAMING})),
            True,
            id="its-reason",
        ),  # fmt: skip
        pytest.param(
            Selection(reasons=frozenset({DeadLetterReason.EMPTY_VALUE})),
            False,
            id="another-reason",
        ),  # fmt: skip
        pytest.param(Selection(since=NOW), True, id="since-its-time"),
        pytest.param(
            Selection(since=NOW + timedelta(seconds=1)), False, id="since-later"
        ),
        pytest.param(Selection(coordinates=frozenset({(1, 7)})), True, id="at-it"),
        pytest.param(
            Selection(coordinates=frozenset({(1, 8)})), False, id="at-another"
        ),
        pytest.param(
            Selection(since=NOW, coordinates=frozenset({(1, 8)})),
            False,
            id="all-conditions-must-hold",
        ),  # fmt: skip
    ],
)
def test_selection_takes_a_dead_letter_only_when_every_condition_holds(
    selection, taken
):
    """Reason, time and coordinate filters combine with AND; none means all."""
    assert (dead_letter() in selection) is taken


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2h", NOW - timedelta(hours=2), id="hours"),
        pytest.param("1d 6h", NOW - timedelta(days=1, hours=6), id="days-and-hours"),
        pytest.param("90 minutes", NOW - timedelta(minutes=90), id="words"),
        pytest.param("PT30M", NOW - timedelta(minutes=30), id="iso-duration"),
        pytest.param(
            "2026-12-04T08:00:00Z", datetime(2026, 12, 4, 8, tzinfo=UTC), id="iso-utc"
        ),  # fmt: skip
        pytest.param(
            "2026-12-04T09:00:00+01:00",
            datetime(2026, 12, 4, 8, tzinfo=UTC),
            id="iso-offset",
        ),  # fmt: skip
        pytest.param(
            "2026-12-04T08:00",
            datetime(2026, 12, 4, 8, tzinfo=UTC),
            id="iso-naive-is-utc",
        ),  # fmt: skip
    ],
)
def test_since_takes_iso_times_and_durations_back_from_now(text, expected):
    """--since T: an ISO 8601 time, or a duration subtracted from now."""
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday-ish", "2026-13-40", "P"])
def test_since_refuses_anything_else_with_examples(text):
    """An unreadable --since names the value and shows both accepted forms."""
    with pytest.raises(ConfigurationError, match="ISO 8601.*duration") as error:
        parse_since(text, NOW)
    assert repr(text) in str(error.value)


def test_reasons_are_checked_against_the_closed_set():
    """Known reasons parse; an unknown one is refused with the list of valid ones."""
    assert parse_reasons(["bad_framing", "empty_value"]) == {
        DeadLetterReason.BAD_FRAMING, DeadLetterReason.EMPTY_VALUE
    }  # fmt: skip
    with pytest.raises(ConfigurationError) as error:
        parse_reasons(["bad_framing", "bad_vibes"])
    assert "'bad_vibes'" in str(error.value)
    assert all(r.value in str(error.value) for r in DeadLetterReason)


@pytest.mark.parametrize(
    ("text", "expected"), [("3:1207", (3, 1207)), ("3/1207", (3, 1207))]
)
def test_a_coordinate_is_partition_and_offset(text, expected):
    assert parse_coordinate(text) == expected


@pytest.mark.parametrize("text", ["1207", "a:b", "3:"])
def test_a_malformed_coordinate_is_refused_with_an_example(text):
    with pytest.raises(ConfigurationError, match="PARTITION:OFFSET"):
        parse_coordinate(text)


def test_a_huge_key_is_cut_in_the_summary_with_its_length():
    """A listing stays readable: a key of megabytes shows its start and size."""
    key = b"k" * 3_000_000
    letter = DeadLetter.of(TopicRecord("alarms.dlq", 0, 0, None, key, b"x", ()))

    shown = letter.summary()["key"]

    assert len(shown) < 400
    assert shown.startswith("kkkk") and f"({len(key)} bytes)" in shown


@pytest.mark.parametrize("text", ["10000000 days", "P9999999D"])
def test_since_further_back_than_the_calendar_is_refused(text):
    """A duration reaching before year 1 is a sentence, not an OverflowError."""
    with pytest.raises(ConfigurationError, match="before the year 1"):
        parse_since(text, NOW)
