"""db/events.py and db/outbox.py: the COPY line of a stored row. Most rows take
a shorter path than db/staging.copy_line's; every row, plain or not, must be
the line staging.copy_line writes for the same values in the same columns."""

from __future__ import annotations

import json

import pytest

from consumer.batch import Coordinates, DecodedEvent
from db import events, outbox, staging
from db.outbox import OutboxMessage

# Where each alarm_events column's value comes from, written out here rather
# than taken from db/events.py, so a column paired with the wrong value fails.
COLUMN_VALUES = {
    "event_id": lambda e: e.event_id,
    "iactoken": lambda e: e.record["iactoken"],
    "ticket_id": lambda e: e.record["TicketID"],
    "additional_info": lambda e: e.record["additionalInfo"],
    "bcf_id": lambda e: e.record["bcfID"],
    "node_name": lambda e: e.record["nodeName"],
    "customer": lambda e: e.record["customer"],
    "vendor_type": lambda e: e.record["vendorType"],
    "status": lambda e: e.record["status"],
    "node_type": lambda e: e.record["nodeType"],
    "alarm_number": lambda e: e.record["alarmNumber"],
    "alarm_text": lambda e: e.record["alarmText"],
    "event_time": lambda e: e.record["eventTime"],
    "scope": lambda e: e.record["scope"],
    "iac_alarm_id": lambda e: e.record["iacalarmid"],
    "parent_alarm": lambda e: e.record["parentalarm"],
    "parent_id": lambda e: e.record["ParentId"],
    "execution_mode": lambda e: e.record["executionmode"],
    "node_group": lambda e: e.record["nodegroup"],
    "robot_uid": lambda e: e.record["robotUID"],
    "final": lambda e: e.record["final"],
    "additional_fields": lambda e: json.dumps(
        e.record["attributes"], ensure_ascii=False, separators=(",", ":")
    ),
    "source_topic": lambda e: e.coordinates.topic,
    "source_partition": lambda e: e.coordinates.partition,
    "source_offset": lambda e: e.coordinates.offset,
}


def _event(record) -> DecodedEvent:
    return DecodedEvent(Coordinates("alarms", 3, 1207), "ab" * 32, record, None)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"additionalInfo": "line one\nline two\tend"},
        {"nodeName": "back\\slash"},
        {"attributes": {"quote": 'say "hi"', "path": "C:\\x"}},
        {"TicketID": "carriage\rreturn", "final": False, "parentalarm": False},
    ],
    ids=["plain", "newline and tab", "backslash", "escaped json", "cr and false"],
)
def test_an_event_line_is_its_columns_values_as_copy_text(alarm_event, changes):
    event = _event(alarm_event(**changes))
    columns = [name.strip() for name in events._EVENT_COLUMNS.split(",")]
    assert sorted(columns) == sorted(COLUMN_VALUES)

    expected = staging.copy_line([COLUMN_VALUES[c](event) for c in columns])

    assert events.copy_line(event) == expected


@pytest.mark.parametrize(
    ("key", "payload", "topic"),
    [
        (b"3100012", b"\xc3\x01\x00\xff", "predictive"),
        (None, b"\x00", "iac1"),
        (b"k", None, "mail"),
        (b"k", b"v", "odd\\topic"),
    ],
    ids=["plain", "no key", "no payload", "backslash in topic"],
)
def test_an_outbox_line_is_its_columns_values_as_copy_text(key, payload, topic):
    message = OutboxMessage("e-1", topic, key, payload, [("alarmd-event-id", b"e-1")])
    headers = json.dumps(outbox._encode_headers(message.headers), separators=(",", ":"))
    values = {"event_id": "e-1", "topic": topic, "message_key": key,
              "payload": payload, "headers": headers}  # fmt: skip
    columns = [name.strip() for name in outbox._COLUMNS.split(",")]

    expected = staging.copy_line([values[c] for c in columns])

    assert outbox._copy_line(message) == expected
