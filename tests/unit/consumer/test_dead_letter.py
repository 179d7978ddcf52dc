"""consumer/dead_letter.py: a rejected message becomes a dead-letter message
with its original key, value and headers, plus headers saying why."""

from __future__ import annotations

import uuid

import pytest

from alarmd.errors import DeadLetterReason
from consumer.batch import Coordinates, Rejected
from consumer.dead_letter import MAX_DETAIL_HEADER_BYTES, dead_letter_message
from db.outbox import EVENT_ID_HEADER

ORIGINAL_HEADERS = [("traceparent", b"00-4bf92f35-01"), ("robot", b"robot-01")]


@pytest.fixture
def rejected():
    """A rejected message at alarms[4]@1234, with changes."""

    def make(**changes) -> Rejected:
        fields = {
            "coordinates": Coordinates("alarms", 4, 1234),
            "key": b"3100012",
            "value": b"\xc3\x02\x00\x01garbage",
            "headers": list(ORIGINAL_HEADERS),
            "stage": "decode",
            "reason": DeadLetterReason.BAD_FRAMING,
            "detail": "payload starts with c302, not the single-object marker c301",
        }
        return Rejected(**{**fields, **changes})

    return make


def _added_headers(message) -> dict[str, bytes]:
    return {
        name: value for name, value in message.headers if name.startswith("alarmd-")
    }


def test_headers_name_source_stage_reason_and_detail(rejected):
    """The added headers carry where the message was and why it was rejected."""
    message = dead_letter_message(rejected(), "alarms.dlq")

    headers = _added_headers(message)

    assert {k: v for k, v in headers.items() if k != EVENT_ID_HEADER} == {
        "alarmd-source-topic": b"alarms",
        "alarmd-source-partition": b"4",
        "alarmd-source-offset": b"1234",
        "alarmd-error-stage": b"decode",
        "alarmd-error-reason": b"bad_framing",
        "alarmd-error-detail": (
            b"payload starts with c302, not the single-object marker c301"
        ),
    }


def test_original_key_value_and_headers_are_preserved(rejected):
    """The dead letter is the original message, bytes intact, on the DLQ topic."""
    original = rejected()

    message = dead_letter_message(original, "alarms.dlq")

    assert (message.topic, message.key, message.payload) == (
        "alarms.dlq",
        b"3100012",
        b"\xc3\x02\x00\x01garbage",
    )
    assert message.headers[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS


def test_tombstone_stays_a_tombstone(rejected):
    """A message without key or value is dead-lettered without key or value."""
    message = dead_letter_message(
        rejected(key=None, value=None, reason=DeadLetterReason.EMPTY_VALUE),
        "alarms.dlq",
    )

    assert (message.key, message.payload) == (None, None)
    assert _added_headers(message)["alarmd-error-reason"] == b"empty_value"


def test_event_id_header_is_the_message_event_id(rejected):
    """The alarmd-event-id header and the outbox event id are one value, a UUID."""
    message = dead_letter_message(rejected(), "alarms.dlq")

    header = _added_headers(message)[EVENT_ID_HEADER].decode("ascii")

    assert header == message.event_id
    assert uuid.UUID(header).version == 5


def test_event_id_is_stable_per_source_coordinates(rejected):
    """The same source message always gets the same id; another offset another."""
    first = dead_letter_message(rejected(), "alarms.dlq")
    again = dead_letter_message(rejected(detail="another text"), "alarms.dlq")
    other = dead_letter_message(
        rejected(coordinates=Coordinates("alarms", 4, 1235)), "alarms.dlq"
    )

    assert first.event_id == again.event_id != other.event_id


def test_long_detail_header_is_cut_to_its_limit(rejected):
    """A long detail is cut in the header; processing_errors keeps the rest."""
    message = dead_letter_message(rejected(detail="x" * 5000), "alarms.dlq")

    detail = _added_headers(message)["alarmd-error-detail"]

    assert detail == b"x" * MAX_DETAIL_HEADER_BYTES


def test_cut_detail_header_is_still_valid_utf8(rejected):
    """Cutting never splits a character, so the header reads as UTF-8 text."""
    text = "x" + "Mất liên lạc " * 200
    message = dead_letter_message(rejected(detail=text), "alarms.dlq")

    detail = _added_headers(message)["alarmd-error-detail"].decode("utf-8")

    assert len(detail.encode("utf-8")) <= MAX_DETAIL_HEADER_BYTES
    assert text.startswith(detail)
