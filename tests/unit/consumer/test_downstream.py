"""consumer/downstream.py: predictive requests, iAC1 documents and notification
requests, with event ids that never change and bytes our schemas decode."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import fastavro
import pytest

from consumer.downstream import DownstreamTopics, DownstreamWriter
from db.outbox import EVENT_ID_HEADER

TOPICS = DownstreamTopics(predictive="predictive", iac1="iac1", notification="mail")
EMAIL_TYPES = ["BCF FAULTY", "GSM Cell out of Service"]
STARTED_AT = datetime(2024, 3, 11, 0, 5, 0, 123456, tzinfo=UTC)
ALARM_EVENT_ID = "5f0c" * 16


@pytest.fixture
def reader(raw_schema, single_object_header):
    """Decodes a downstream payload with the schema file it claims, checking the
    single-object header first."""
    named: dict = {}
    fastavro.parse_schema(raw_schema("alarm_event"), named_schemas=named)

    def read(payload: bytes, name: str) -> dict:
        schema = raw_schema(name)
        assert payload[:10] == single_object_header(schema, dict(named))
        parsed = fastavro.parse_schema(schema, named_schemas=dict(named))
        return fastavro.schemaless_reader(io.BytesIO(payload[10:]), parsed)

    return read


def _cycle(record, cycle_id=17):
    writer = DownstreamWriter(TOPICS, EMAIL_TYPES)
    return writer.for_cycle(record, ALARM_EVENT_ID, cycle_id, STARTED_AT)


def test_cycle_messages_are_the_same_when_written_again(alarm_event):
    """A cycle's messages written again, as after a crash and by a new writer,
    have the same ids, keys, headers and bytes."""
    first = _cycle(alarm_event())

    again = _cycle(alarm_event())

    assert again == first


def test_cycle_yields_a_predictive_request_and_an_iac1_document(alarm_event):
    """One message per topic, keyed by iactoken, the event id in a header."""
    predictive, iac1 = _cycle(alarm_event())

    assert [(m.topic, m.key) for m in (predictive, iac1)] == [
        ("predictive", b"3100012"),
        ("iac1", b"3100012"),
    ]
    for message in (predictive, iac1):
        assert message.headers == [(EVENT_ID_HEADER, message.event_id.encode())]
        assert uuid.UUID(message.event_id).version == 5
    assert predictive.event_id != iac1.event_id


def test_cycle_message_ids_are_about_the_iactoken(alarm_event):
    """Ids come from the iactoken: another alarm gets other ids, while another
    cycle id or event of the same alarm does not change them."""
    ids = [m.event_id for m in _cycle(alarm_event())]

    other_alarm = [m.event_id for m in _cycle(alarm_event(iactoken="3100013"))]
    same_alarm = [m.event_id for m in _cycle(alarm_event(status="Ack"), cycle_id=18)]

    assert set(ids).isdisjoint(other_alarm)
    assert same_alarm == ids


def test_predictive_request_decodes_with_its_schema(alarm_event, reader):
    """The predictive request reads back with predictive_request.avsc."""
    record = alarm_event()
    predictive, _ = _cycle(record)

    request = reader(predictive.payload, "predictive_request")

    assert request == {
        "eventId": predictive.event_id,
        "iactoken": "3100012",
        "cycleId": 17,
        "task": "Alarm to Predictive Service",
        "alarm": record,
        "requestedAt": STARTED_AT,
    }


def test_iac1_document_decodes_with_its_schema(alarm_event, reader):
    """The iAC1 document reads back with iac1_alarm.avsc."""
    record = alarm_event()
    _, iac1 = _cycle(record)

    document = reader(iac1.payload, "iac1_alarm")

    assert document == {
        "eventId": iac1.event_id,
        "cycleId": 17,
        "cycleState": "Cycle Start",
        "cycleStartedAt": STARTED_AT,
        "alarmEventId": ALARM_EVENT_ID,
        "alarm": record,
    }


def test_notification_request_id_is_stable_and_decodes(alarm_event, reader):
    """A notification request keeps its id when written again and reads back with
    notification_request.avsc."""
    record = alarm_event()
    writer = DownstreamWriter(TOPICS, EMAIL_TYPES)

    first = writer.for_email(record, ALARM_EVENT_ID)
    again = DownstreamWriter(TOPICS, EMAIL_TYPES).for_email(record, ALARM_EVENT_ID)
    request = reader(first.payload, "notification_request")

    assert again.event_id == first.event_id
    assert (first.topic, first.key) == ("mail", b"3100012")
    assert {k: v for k, v in request.items() if k != "requestedAt"} == {
        "eventId": first.event_id,
        "alarmEventId": ALARM_EVENT_ID,
        "ticketId": "TT-0042",
        "alarmText": "BCF FAULTY",
        "nodeName": "site-n010",
        "iactoken": "3100012",
        "eventTime": record["eventTime"],
        "customer": "customer-a",
        "nodegroup": "RAN-2G",
    }


def test_notification_request_id_follows_the_alarm_event(alarm_event):
    """Another stored event gets another notification request id."""
    writer = DownstreamWriter(TOPICS, EMAIL_TYPES)

    first = writer.for_email(alarm_event(), ALARM_EVENT_ID)
    second = writer.for_email(alarm_event(), "7a1d" * 16)

    assert first.event_id != second.event_id


@pytest.mark.parametrize(
    ("alarm_text", "wanted"),
    [
        ("BCF FAULTY", True),
        ("GSM Cell out of Service", True),
        ("BCCH MISSING", False),
        ("bcf faulty", False),
    ],
)
def test_email_wanted_only_for_listed_alarm_texts(alarm_event, alarm_text, wanted):
    """Only an alarmText listed exactly in ALARMD_EMAIL_ALARM_TYPES asks for email."""
    writer = DownstreamWriter(TOPICS, EMAIL_TYPES)

    assert writer.wants_email(alarm_event(alarmText=alarm_text)) is wanted


@pytest.mark.parametrize(
    "subject", ["3100012", "", "Mất liên lạc/漢字", "x" * 500, "a/b/c@17"]
)
def test_event_ids_are_uuid5_of_kind_and_subject(subject):
    from consumer.downstream import EVENT_ID_NAMESPACE, downstream_event_id

    expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"predictive/{subject}"))

    assert downstream_event_id("predictive", subject) == expected
