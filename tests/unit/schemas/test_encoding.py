"""schemas/encoding.py and the schema headers of schemas/__init__.py, checked
against the Avro specification and confluent-kafka's mock registry."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

import schemas
from schemas import encoding
from schemas.decoding import ConfluentDecoder, SingleObjectDecoder, own_body
from schemas.mapping import json_to_event


@pytest.mark.parametrize(
    "name",
    [
        schemas.ALARM_EVENT,
        schemas.PREDICTIVE_REQUEST,
        schemas.IAC1_ALARM,
        schemas.NOTIFICATION_REQUEST,
    ],
)
def test_single_object_header_is_marker_and_little_endian_crc64(
    name, raw_schema, single_object_header
):
    """The header is C3 01 and the CRC-64-AVRO fingerprint in little-endian order,
    as Java and other single-object writers put it on the wire."""
    named: dict = {}
    if name != schemas.ALARM_EVENT:
        fastavro.parse_schema(raw_schema(schemas.ALARM_EVENT), named_schemas=named)

    expected = single_object_header(raw_schema(name), named)

    assert schemas.load(name).header == expected


def test_history_writers_are_recognised_by_fingerprint(
    raw_schema, single_object_header
):
    """Every schema in schemas/history/ is a known writer, beside the current one."""
    v1 = single_object_header(raw_schema("history/alarm_event-v1"))
    current = single_object_header(raw_schema(schemas.ALARM_EVENT))

    assert set(schemas.known_writers()) == {v1[2:], current[2:]}


def test_single_object_is_header_then_fastavro_body(alarm_event, avro_body, raw_schema):
    """single_object() writes our header and exactly the body fastavro writes."""
    schema = schemas.load(schemas.ALARM_EVENT)
    record = alarm_event()

    payload = encoding.single_object(schema, record)

    assert payload == schema.header + avro_body(raw_schema("alarm_event"), record)


def test_confluent_framing_is_zero_then_big_endian_schema_id(alarm_event):
    """confluent() writes magic 00, the 4-byte big-endian id, then the bare body."""
    schema = schemas.load(schemas.ALARM_EVENT)
    record = alarm_event()

    payload = encoding.confluent(258, schema, record)

    assert payload[:5] == b"\x00\x00\x00\x01\x02"
    assert payload[5:] == encoding.schemaless(schema, record)


def test_schemaless_body_reads_back_with_fastavro(alarm_event):
    """A schemaless body is a plain Avro body of the record."""
    schema = schemas.load(schemas.ALARM_EVENT)
    record = alarm_event()

    body = encoding.schemaless(schema, record)

    assert fastavro.schemaless_reader(io.BytesIO(body), schema.parsed) == record


def test_register_is_idempotent():
    """Registering the same schema twice under one subject gives one id."""
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    schema = schemas.load(schemas.ALARM_EVENT)

    first = encoding.register(registry, "alarms-value", schema)

    assert encoding.register(registry, "alarms-value", schema) == first


def test_schema_registered_by_register_decodes_with_event_time_as_timestamp(
    alarm_event,
):
    """What `alarmd produce --encoding confluent` registers and writes decodes to
    the same record, eventTime still a timestamp."""
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    schema = schemas.load(schemas.ALARM_EVENT)
    record = alarm_event()

    schema_id = encoding.register(registry, "alarms-value", schema)
    decoded = ConfluentDecoder(registry)(encoding.confluent(schema_id, schema, record))

    assert decoded == record


def test_single_object_round_trip_through_the_decoder(alarm_event):
    """single_object() output is what SingleObjectDecoder reads."""
    record = alarm_event()
    schema = schemas.load(schemas.ALARM_EVENT)

    assert SingleObjectDecoder()(encoding.single_object(schema, record)) == record


@pytest.mark.parametrize(
    ("name", "wrapper"),
    [
        (schemas.PREDICTIVE_REQUEST,
         {"eventId": "p-1", "iactoken": "3100012", "cycleId": 2**40, "task": "T"}),
        (schemas.IAC1_ALARM,
         {"eventId": "i-1", "cycleId": 7, "cycleState": "Cycle Start",
          "alarmEventId": "ab" * 32}),
    ],
)  # fmt: skip
def test_a_message_around_an_alarm_encoded_once_is_its_whole_encoding(
    name, wrapper, sample_lines
):
    """For every sample event, the message built around the alarm's own bytes is
    byte for byte what fastavro writes for the whole record."""
    alarm_schema = schemas.load(schemas.ALARM_EVENT)
    around = encoding.AroundField(name, "alarm")
    moment = datetime(2024, 3, 11, 1, 2, 3, 456789, tzinfo=UTC)
    for _, line in sample_lines:
        alarm = json_to_event(json.loads(line))
        record = {**wrapper, "alarm": alarm, "requestedAt": moment,
                  "cycleStartedAt": moment}  # fmt: skip

        spliced = around(record, encoding.schemaless(alarm_schema, alarm))

        assert spliced == encoding.single_object(schemas.load(name), record)


def test_the_body_of_a_message_in_our_schema_is_the_alarm_encoded_again(sample_lines):
    """For every sample event sent single-object in our current schema, the
    body `own_body` hands downstream is byte for byte what encoding the decoded
    record again writes, so a cycle's messages may carry it as it came."""
    schema = schemas.load(schemas.ALARM_EVENT)
    decode = SingleObjectDecoder()
    for number, line in sample_lines:
        value = encoding.single_object(schema, json_to_event(json.loads(line)))

        body = own_body(value)

        assert body == encoding.schemaless(schema, decode(value)), f"line {number}"


def test_a_message_in_an_older_schema_or_another_framing_has_no_own_body(
    alarm_event, raw_schema
):
    """Its body is in another schema's encoding: the alarm is encoded again."""
    record = alarm_event()
    older = schemas.parse(raw_schema("history/alarm_event-v1"))
    written = {f["name"]: record[f["name"]] for f in older.parsed["fields"]}
    current = schemas.load(schemas.ALARM_EVENT)

    assert own_body(encoding.single_object(older, written)) is None
    assert own_body(encoding.schemaless(current, record)) is None
    assert own_body(None) is None
