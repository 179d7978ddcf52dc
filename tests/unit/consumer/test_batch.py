"""consumer/batch.py: the content identity of an event, and decoding a consumed
batch into events to store and messages to reject."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from alarmd.errors import DeadLetterReason
from consumer.batch import Coordinates, decode_batch, event_id
from schemas.decoding import ConfluentDecoder, SchemalessDecoder, SingleObjectDecoder
from schemas.encoding import schemaless, single_object
from schemas.mapping import json_to_event
from tests import poison
from tests.avro_wire import schema_json
from tests.unit.conftest import FakeMessage
from tests.unit.schemas.avro_strategies import records


@pytest.fixture
def decode_line():
    """A sample line as the daemon sees it: mapped, single-object encoded, decoded."""
    schema = schemas.load(schemas.ALARM_EVENT)
    decode = SingleObjectDecoder()
    return lambda line: decode(single_object(schema, json_to_event(json.loads(line))))


def test_event_id_equal_for_byte_identical_sample_lines(sample_lines, decode_line):
    """Every repeat of a line, wherever it is in the file, has the first one's id."""
    ids_by_line = defaultdict(set)
    for _, line in sample_lines:
        ids_by_line[line].add(event_id(decode_line(line)))

    assert len(ids_by_line) < len(sample_lines), "the sample has no repeated line"
    assert {line: ids for line, ids in ids_by_line.items() if len(ids) > 1} == {}


def test_distinct_event_ids_over_the_sample_equal_distinct_lines(
    sample_lines, decode_line
):
    """The number of distinct ids is the number of distinct JSON documents."""
    distinct_documents = {
        json.dumps(json.loads(line), sort_keys=True) for _, line in sample_lines
    }

    ids = {event_id(decode_line(line)) for _, line in sample_lines}

    assert len(ids) == len(distinct_documents)


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, dict):
        return {**value, "severity": "minor"}
    return value + timedelta(microseconds=1)


@pytest.mark.parametrize(
    "field",
    [
        "iactoken",
        "alarmText",
        "eventTime",
        "scope",
        "final",
        "TicketID",
        "additionalInfo",
        "bcfID",
        "nodeName",
        "customer",
        "vendorType",
        "status",
        "nodeType",
        "alarmNumber",
        "iacalarmid",
        "parentalarm",
        "ParentId",
        "executionmode",
        "nodegroup",
        "robotUID",
        "attributes",
    ],
)
def test_event_id_differs_when_any_field_differs(alarm_event, field):
    """A change to any one field, eventTime by a microsecond, gives a new id."""
    record = alarm_event()

    changed = alarm_event(**{field: _changed(record[field])})

    assert event_id(changed) != event_id(record)


def test_parametrized_fields_are_every_schema_field(alarm_event, raw_schema):
    """The field list above covers the whole schema, so none is left untested."""
    names = [f["name"] for f in raw_schema("alarm_event")["fields"]]

    assert sorted(names) == sorted(alarm_event())


def _canonical_json_id(record):
    """The content id by its definition, with the standard library's encoder."""

    def micros(value):
        return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    text = json.dumps(record, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), default=micros)  # fmt: skip
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@given(
    texts=st.dictionaries(st.sampled_from(["iactoken", "alarmText", "ParentId"]),
                          st.text(), min_size=3, max_size=3),
    flags=st.tuples(st.booleans(), st.booleans()),
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1),
                        timezones=st.just(UTC)),
    attributes=st.dictionaries(st.text(), st.text(), max_size=6),
)  # fmt: skip
# alarm_event is a factory without state, so sharing it across examples is safe.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_event_id_is_the_canonical_json_of_the_standard_library(
    alarm_event, texts, flags, moment, attributes
):
    """Any text (control characters, quotes, backslashes, every plane) and any
    attribute keys give the id the json module's canonical form gives."""
    record = alarm_event(**texts, final=flags[0], parentalarm=flags[1],
                         eventTime=moment, attributes=attributes)  # fmt: skip

    assert event_id(record) == _canonical_json_id(record)


def test_event_id_of_every_sample_line_is_its_canonical_json(sample_lines, decode_line):
    """The real events, long additionalInfo and non-ASCII text included, keep the
    id the canonical JSON definition gives."""
    for _, line in sample_lines:
        record = decode_line(line)
        assert event_id(record) == _canonical_json_id(record)


def test_event_id_ignores_key_order(alarm_event):
    """The same content in another key order is the same event."""
    record = alarm_event(attributes={"a": "1", "b": "2"})
    reordered = dict(reversed(list(record.items())))
    reordered["attributes"] = {"b": "2", "a": "1"}

    assert event_id(reordered) == event_id(record)


def test_event_id_is_the_same_whatever_the_framing(alarm_event):
    """One event sent single-object and schemaless decodes to one id."""
    schema = schemas.load(schemas.ALARM_EVENT)
    record = alarm_event()

    framed = SingleObjectDecoder()(single_object(schema, record))
    bare = SchemalessDecoder()(schemaless(schema, record))

    assert event_id(framed) == event_id(bare) == event_id(record)


def test_decode_batch_drops_duplicates_and_rejects_bad_messages(
    alarm_event, kafka_message
):
    """Good messages become events in order, a repeat within the batch is counted
    and dropped, and a bad one becomes a Rejected with its coordinates and bytes."""
    schema = schemas.load(schemas.ALARM_EVENT)
    first = single_object(schema, alarm_event())
    second = single_object(schema, alarm_event(status="Cleared"))
    headers = [("traceparent", b"00-abc-01")]
    messages = [
        kafka_message(first, partition=3, offset=10),
        kafka_message(b"not avro", partition=3, offset=11, key=b"k", headers=headers),
        kafka_message(first, partition=3, offset=12),
        kafka_message(second, partition=3, offset=13),
        kafka_message(None, partition=3, offset=14, key=b"gone"),
    ]

    batch = decode_batch(messages, SingleObjectDecoder())

    assert [e.coordinates.offset for e in batch.events] == [10, 13]
    assert [e.record["status"] for e in batch.events] == ["Active", "Cleared"]
    assert batch.duplicates_in_batch == 1
    assert [(r.coordinates, r.reason) for r in batch.rejected] == [
        (Coordinates("alarms", 3, 11), DeadLetterReason.BAD_FRAMING),
        (Coordinates("alarms", 3, 14), DeadLetterReason.TOMBSTONE),
    ]
    bad = batch.rejected[0]
    assert (bad.key, bad.value, bad.headers, bad.stage) == (
        b"k",
        b"not avro",
        headers,
        "decode",
    )
    assert "InvalidMessage" in bad.traceback


def test_decoded_event_keeps_its_id_and_message(alarm_event, kafka_message):
    """Each event carries its content id and the message it came from."""
    record = alarm_event()
    message = kafka_message(single_object(schemas.load(schemas.ALARM_EVENT), record))

    (event,) = decode_batch([message], SingleObjectDecoder()).events

    assert event.event_id == event_id(record)
    assert event.message is message


def test_rejected_message_without_headers_has_an_empty_list(kafka_message):
    """A message with no headers (None from confluent-kafka) rejects with []."""
    batch = decode_batch([kafka_message(b"\x00", headers=None)], SingleObjectDecoder())

    assert batch.rejected[0].headers == []


class UnreadableHeaders(FakeMessage):
    """confluent-kafka's behaviour for a header name that is not UTF-8."""

    def headers(self):
        raise SystemError("<method 'headers'> returned a result with an exception set")


def test_a_bad_message_whose_headers_cannot_be_read_is_still_rejected():
    """A header name the Kafka client cannot decode does not stop the batch: the
    message is rejected without its headers, and the detail says they are gone."""
    batch = decode_batch([UnreadableHeaders(b"\x00\x01")], SingleObjectDecoder())

    (rejected,) = batch.rejected
    assert rejected.reason == DeadLetterReason.BAD_FRAMING
    assert rejected.headers == []
    assert "header name is not UTF-8" in rejected.detail


def test_batch_coordinates_list_events_then_rejected(alarm_event, kafka_message):
    """Batch.coordinates() names every message the batch accounted for."""
    payload = single_object(schemas.load(schemas.ALARM_EVENT), alarm_event())
    messages = [
        kafka_message(b"", partition=0, offset=5),
        kafka_message(payload, partition=1, offset=9),
    ]

    batch = decode_batch(messages, SingleObjectDecoder())

    assert batch.coordinates() == [
        Coordinates("alarms", 1, 9),
        Coordinates("alarms", 0, 5),
    ]


def test_coordinates_read_as_topic_partition_and_offset():
    """Coordinates print the way the logs and error texts name a message."""
    assert str(Coordinates("alarms", 2, 41)) == "alarms[2]@41"


def _framing_and_decoder(name: str):
    if name == "single-object":
        return poison.SingleObjectFraming(), SingleObjectDecoder()
    registry = SchemaRegistryClient.new_client({"url": "mock://"})

    def register(schema: dict) -> int:
        text = RegistrySchema(json.dumps(schema), "AVRO")
        return registry.register_schema("alarms-value", text)

    return poison.ConfluentFraming(register), ConfluentDecoder(registry)


@pytest.mark.parametrize("framing_name", ["single-object", "confluent"])
def test_every_poison_case_is_rejected_with_its_reason_and_the_rest_decodes(
    sample_lines, kafka_message, framing_name
):
    """Each case of the poison corpus, in one batch with good events, becomes a
    Rejected with its expected reason, a detail naming the problem and its key,
    value and headers intact; the hostile but valid event decodes verbatim."""
    framing, decoder = _framing_and_decoder(framing_name)
    document = json.loads(sample_lines[0][1])
    cases = poison.corpus(document, framing)
    good = poison.encode(json.loads(sample_lines[1][1]), framing)
    messages = [kafka_message(good, offset=0)] + [
        kafka_message(c.message.value, offset=n, key=c.message.key,
                      headers=c.message.headers)
        for n, c in enumerate(cases, 1)
    ]  # fmt: skip

    batch = decode_batch(messages, decoder)

    expected = {n: c for n, c in enumerate(cases, 1) if c.reason is not None}
    rejected = {r.coordinates.offset: r for r in batch.rejected}
    assert {n: r.reason for n, r in rejected.items()} == {
        n: c.reason for n, c in expected.items()
    }
    for offset, case in expected.items():
        got = rejected[offset]
        assert case.detail in got.detail, case.name
        assert (got.key, got.value, got.headers) == (
            case.message.key,
            case.message.value,
            case.message.headers,
        ), case.name
    stored = [e.record for e in batch.events]
    assert stored[1:] == [c.stored for c in poison.verbatim(cases)]


@given(record=records(schema_json()), step=st.sampled_from([-1, 1]))
def test_event_ids_of_events_a_microsecond_apart_differ(record, step):
    """Two events that differ only by one microsecond of eventTime, at any
    instant from year 1 to 9999, are two events with two ids."""
    later = {**record, "eventTime": record["eventTime"] + timedelta(microseconds=step)}

    assert event_id(later) != event_id(record)


@given(record=records(schema_json()))
def test_event_id_counts_eventtime_in_exact_microseconds(record):
    """The id is the SHA-256 of the record's canonical JSON, with eventTime as
    its whole number of microseconds since the epoch."""
    since_epoch = record["eventTime"] - datetime(1970, 1, 1, tzinfo=UTC)
    micros = since_epoch.days * 86_400_000_000 + since_epoch.seconds * 1_000_000
    canonical = json.dumps(
        {**record, "eventTime": micros + since_epoch.microseconds},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )

    assert event_id(record) == hashlib.sha256(canonical.encode()).hexdigest()
