"""producers/alarm_producer.py without a broker: reading a JSON-lines file and
framing its events the way each decoder reads them."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from producers.alarm_producer import Framer, read_events
from schemas.decoding import ConfluentDecoder, SchemalessDecoder, SingleObjectDecoder
from schemas.mapping import MappingError

GOOD = {
    "iactoken": "3100012",
    "alarmText": "BCF FAULTY",
    "eventTime": "2024-03-11T01:00:13+01:00",
    "final": True,
    "severity": "critical",
}


def test_read_events_numbers_lines_and_reports_bad_ones(tmp_path):
    """Each non-blank line yields its line number and a record or the reason it
    cannot be one; blank lines are skipped but still counted."""
    path = tmp_path / "alarms.jsonl"
    missing = {k: v for k, v in GOOD.items() if k != "alarmText"}
    path.write_text(
        "\n".join([json.dumps(GOOD), "", "{not json", json.dumps(missing)]) + "\n",
        encoding="utf-8",
    )

    events = list(read_events(path))

    assert [number for number, _ in events] == [1, 3, 4]
    assert events[0][1]["attributes"] == {"severity": "critical"}
    assert isinstance(events[1][1], MappingError)
    assert "not JSON" in str(events[1][1])
    assert "alarmText" in str(events[2][1])


@pytest.mark.parametrize(
    ("encoding", "decoder"),
    [
        ("single-object", SingleObjectDecoder),
        ("schemaless", SchemalessDecoder),
    ],
)
def test_framed_event_decodes_with_the_matching_decoder(tmp_path, encoding, decoder):
    """What the producer frames, the daemon's decoder for that framing reads."""
    path = tmp_path / "alarms.jsonl"
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    ((_, record),) = read_events(path)

    assert decoder()(Framer(encoding)(record)) == record


def test_confluent_framed_event_decodes_through_the_registry(tmp_path):
    """`alarmd produce --encoding confluent` registers the schema and frames with
    its id; the Confluent decoder reads the event back unchanged."""
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    path = tmp_path / "alarms.jsonl"
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    ((_, record),) = read_events(path)

    payload = Framer("confluent", registry, "alarms-value")(record)

    assert ConfluentDecoder(registry)(payload) == record
