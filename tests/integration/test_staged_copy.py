"""db/staging.py against the real PostgreSQL: every value the hot path COPYs
comes back from the tables exactly as it went in, whatever characters or bytes
it holds, and a value PostgreSQL cannot hold is refused, never rewritten."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg2
import pytest

import schemas
from consumer.batch import Coordinates, DecodedEvent, event_id
from db import events, outbox
from db.engine import is_row_refusal
from db.outbox import OutboxMessage
from schemas.decoding import SingleObjectDecoder

from .avro_framing import alarm_event_json, single_object, to_record

# Each is a value COPY's text format must escape, or might be tempted to read as
# one of its own markers.
AWKWARD_TEXTS = {
    "tab": "a\tb",
    "newline": "line one\nline two",
    "carriage_return": "a\rb\r\n",
    "backslash": "C:\\alarms\\n is not a newline",
    "null_marker": "\\N",
    "end_marker": "\\.",
    "quotes": "say \"hi\" and 'bye'",
    "unicode": "Mất liên lạc · 基站 · 48 °C · 📡",
    "control": "\x01\x1f\x7f",
    "empty": "",
    "long": "x\ty\\" * 20_000,
}


@pytest.fixture
def alarm_event(sample_lines):
    """A record of the sample's first event, as the decoder returns it, with
    changes."""
    schema = schemas.load(schemas.ALARM_EVENT)
    document = to_record(json.loads(sample_lines[0]), alarm_event_json())
    base = SingleObjectDecoder()(single_object(schema, document))

    def make(**changes):
        return {**base, **changes}

    return make


def _event(alarm_event, text: str, offset: int) -> DecodedEvent:
    record = alarm_event(
        iactoken=f"token-{offset}",
        additionalInfo=text,
        nodeName=text,
        attributes={text or "empty-key": text, "plain": "1"},
    )
    return DecodedEvent(
        Coordinates("alarms", 0, offset), event_id(record), record, None
    )


@pytest.fixture
def cursor(stack):
    conn = stack.services.connect(stack.database)
    try:
        with conn.cursor() as cur:
            yield cur
        conn.rollback()
    finally:
        conn.close()


def test_events_with_awkward_text_come_back_unchanged(cursor, alarm_event):
    """Tabs, newlines, backslashes, COPY's own markers, quotes, non-ASCII and
    control characters survive the staged COPY in text, JSONB keys and values."""
    batch = [
        _event(alarm_event, text, n) for n, text in enumerate(AWKWARD_TEXTS.values())
    ]

    stored = events.insert_events(cursor, batch)

    assert set(stored) == {e.event_id for e in batch}
    cursor.execute(
        "SELECT event_id, additional_info, node_name, additional_fields, event_time, "
        "final, source_offset FROM alarm_events"
    )
    back = {row[0]: row[1:] for row in cursor.fetchall()}
    for event in batch:
        r = event.record
        assert back[event.event_id] == (
            r["additionalInfo"], r["nodeName"], r["attributes"], r["eventTime"],
            r["final"], event.coordinates.offset,
        )  # fmt: skip


def test_events_already_stored_are_skipped_by_the_staged_insert(cursor, alarm_event):
    """The second COPY of the same events inserts nothing and returns nothing,
    and the staging table is empty again after each insert."""
    batch = [_event(alarm_event, text, n) for n, text in enumerate(["a", "b\tc"])]
    new = _event(alarm_event, "new", 9)
    first = events.insert_events(cursor, batch)

    again = events.insert_events(cursor, [*batch, new])

    assert len(first) == 2
    assert list(again) == [new.event_id]
    cursor.execute("SELECT count(*) FROM alarm_events_staging")
    assert cursor.fetchone()[0] == 0


def test_outbox_rows_keep_every_byte_of_key_payload_and_headers(cursor):
    """Keys, payloads and header values holding every byte value, an empty
    payload and a missing key come back byte for byte, in insertion order."""
    every_byte = bytes(range(256))
    messages = [
        OutboxMessage("e-1", "predictive", every_byte, every_byte[::-1],
                      [("h\t1", every_byte), ("h2", b"")]),
        OutboxMessage("e-2", "alarms.dlq", None, b"", [("\\N", b"\\.")]),
        OutboxMessage("e-3", "iac1", b"k", None, []),
    ]  # fmt: skip

    rows = outbox.insert(cursor, messages)

    assert [row.message for row in rows] == messages
    assert [row.id for row in rows] == sorted(row.id for row in rows)
    cursor.execute(
        "SELECT event_id, topic, message_key, payload FROM outbox ORDER BY id"
    )
    assert [
        (eid, topic, _bytes(key), _bytes(payload))
        for eid, topic, key, payload in cursor.fetchall()
    ] == [(m.event_id, m.topic, m.key, m.payload) for m in messages]


def test_a_nul_character_is_refused_as_a_row_error_not_stored(cursor, alarm_event):
    """A NUL, which the decoder already refuses, would make PostgreSQL refuse the
    COPY with a data error (class 22), which the batch writer dead-letters."""
    cursor.execute("SAVEPOINT before_nul")

    with pytest.raises(psycopg2.Error) as refused:
        events.insert_events(cursor, [_event(alarm_event, "a\x00b", 1)])

    assert is_row_refusal(refused.value), refused.value.pgcode
    cursor.execute("ROLLBACK TO SAVEPOINT before_nul")
    cursor.execute("SELECT count(*) FROM alarm_events")
    assert cursor.fetchone()[0] == 0


def test_event_time_keeps_its_microseconds(cursor, alarm_event):
    """A timestamp with microseconds is stored to the microsecond."""
    moment = datetime(2024, 3, 11, 23, 59, 59, 999_999, tzinfo=UTC)
    record = alarm_event(eventTime=moment)
    event = DecodedEvent(Coordinates("alarms", 2, 7), event_id(record), record, None)

    events.insert_events(cursor, [event])

    cursor.execute("SELECT event_time FROM alarm_events")
    assert cursor.fetchone()[0] == moment


def _bytes(value):
    return None if value is None else bytes(value)
