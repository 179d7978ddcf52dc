"""The poison corpus (tests/poison.py) through the real daemon: every case goes
to the dead-letter topic once, with its original bytes and its reason, while the
good events around it are stored and the daemon goes on; the hostile but valid
event is stored byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import zip_longest

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient

from tests import poison

from .avro_framing import good_messages
from .polling import wait_until
from .sample import expect
from .schema_registry import LocalSchemaRegistry
from .stack import RUN_TIMEOUT_S

GOOD_EVENTS_PER_PHASE = 12
SUBJECT = "alarms-value"
# alarm_events columns and the record fields they hold, as text.
TEXT_COLUMNS = {
    "iactoken": "iactoken",
    "alarm_text": "alarmText",
    "additional_info": "additionalInfo",
    "node_name": "nodeName",
    "customer": "customer",
    "ticket_id": "TicketID",
}


@pytest.fixture
def schema_registry() -> Iterator[LocalSchemaRegistry]:
    registry = LocalSchemaRegistry()
    try:
        yield registry
    finally:
        registry.close()


def _framing(name: str, registry: LocalSchemaRegistry):
    """The framing a producer uses, and the daemon settings that read it."""
    if name == "single-object":
        return poison.SingleObjectFraming(), {}
    client = SchemaRegistryClient({"url": registry.url})

    def register(schema: dict) -> int:
        return client.register_schema(
            SUBJECT, RegistrySchema(json.dumps(schema), "AVRO")
        )

    settings = {
        "ALARMD_INPUT_ENCODING": "confluent",
        "ALARMD_SCHEMA_REGISTRY_URL": registry.url,
    }
    return poison.ConfluentFraming(register), settings


@pytest.mark.parametrize("framing_name", ["single-object", "confluent"])
def test_every_poison_case_is_dead_lettered_once_and_the_daemon_goes_on(
    stack, sample_lines, schema_registry, framing_name
):
    """Each poison case lands on the dead-letter topic exactly once with its key,
    value, headers, reason and a readable detail, and gets an error row; the good
    events around the cases and after them are all stored, and the daemon keeps
    running until it exits idle with 0."""
    framing, daemon_env = _framing(framing_name, schema_registry)
    first_lines = sample_lines[:GOOD_EVENTS_PER_PHASE]
    later_lines = sample_lines[GOOD_EVENTS_PER_PHASE : 2 * GOOD_EVENTS_PER_PHASE]
    cases = poison.corpus(json.loads(sample_lines[0]), framing)
    bad = poison.poison(cases)

    poisoned = [(c.message.key, c.message.value, c.message.headers) for c in cases]
    mixed = [
        message
        for pair in zip_longest(good_messages(first_lines, framing), poisoned)
        for message in pair
        if message is not None
    ]
    placed = dict(zip(map(id, mixed), stack.produce_raw(mixed), strict=True))
    where = {case.name: placed[id(m)] for case, m in zip(cases, poisoned, strict=True)}

    daemon = stack.start_daemon(extra_env=daemon_env)
    first = expect(first_lines).events + len(poison.verbatim(cases))

    def mixed_messages_processed() -> bool:
        counts = stack.counts()
        return (counts["processing_errors"], counts["alarm_events"]) == (
            len(bad),
            first,
        )

    wait_until(
        mixed_messages_processed,
        RUN_TIMEOUT_S,
        lambda: (
            f"the mixed messages were not processed: {stack.counts()}\n{daemon.tail()}"
        ),
    )
    assert daemon.running()
    stack.produce_raw(good_messages(later_lines, framing))
    exit_code = daemon.wait(RUN_TIMEOUT_S)

    assert exit_code == 0, daemon.tail()
    counts = stack.counts()
    assert counts["alarm_events"] == (
        expect(first_lines + later_lines).events + len(poison.verbatim(cases))
    )
    assert counts["processing_errors"] == len(bad)
    assert counts["outbox_pending"] == 0

    errors = {
        (partition, offset): (topic, stage, reason, detail)
        for topic, partition, offset, stage, reason, detail in stack.query(
            "SELECT source_topic, source_partition, source_offset, stage, reason, "
            "detail FROM processing_errors"
        )
    }
    dead = stack.records(stack.topics.dead_letter)
    by_source = {
        (int(r.text_header("alarmd-source-partition")),
         int(r.text_header("alarmd-source-offset"))): r
        for r in dead
    }  # fmt: skip
    assert len(dead) == len(by_source) == len(bad)
    for case in bad:
        source = where[case.name]
        topic, stage, reason, detail = errors[source]
        assert (topic, stage, reason) == (stack.topics.input, "decode", case.reason)
        assert case.detail in detail, case.name

        record = by_source[source]
        assert (record.key, record.value) == (case.message.key, case.message.value)
        original = record.headers[: len(case.message.headers)]
        assert list(original) == case.message.headers, case.name
        assert record.text_header("alarmd-source-topic") == stack.topics.input
        assert record.text_header("alarmd-error-stage") == "decode", case.name
        assert record.text_header("alarmd-error-reason") == case.reason, case.name
        assert case.detail in record.text_header("alarmd-error-detail"), case.name


def test_hostile_text_is_stored_byte_for_byte(stack, sample_lines):
    """SQL, HTML, template and format-string text in fields and attributes is
    not an error: the stored row holds exactly the bytes that were sent."""
    cases = poison.corpus(json.loads(sample_lines[0]), poison.SingleObjectFraming())
    (hostile,) = poison.verbatim(cases)
    stack.produce_raw(
        [(hostile.message.key, hostile.message.value, hostile.message.headers)]
    )

    stack.run_daemon_until_idle()

    columns = ", ".join(f"convert_to({c}, 'UTF8')" for c in TEXT_COLUMNS)
    rows = stack.query(
        f"SELECT {columns}, additional_fields::text FROM alarm_events "
        "WHERE iactoken = %s",
        (hostile.stored["iactoken"],),
    )
    assert len(rows) == 1, rows
    *texts, attributes = rows[0]
    sent = hostile.stored
    assert [bytes(t) for t in texts] == [
        sent[name].encode("utf-8") for name in TEXT_COLUMNS.values()
    ]
    assert json.loads(attributes) == sent["attributes"]
    assert stack.counts()["processing_errors"] == 0
