"""Values at the edges of what Kafka and PostgreSQL hold: an alarm near the
daemon's size limit is carried downstream, and a row PostgreSQL refuses
for its size is dead-lettered while the daemon goes on."""

from __future__ import annotations

import base64
import json
import random
import string

from confluent_kafka import Producer

import schemas
from alarmd.settings import DEFAULT_MAX_EVENT_BYTES

from .avro_framing import alarm_event_json, single_object, to_record
from .sample import expect
from .stack import RUN_TIMEOUT_S

# Just under ALARMD_MAX_EVENT_BYTES (the rest of the event is well under 1,500
# bytes), so the alarm is stored, and the downstream messages, which carry it and
# a little more, are over the broker's default max.message.bytes (1 MiB + 12).
NEAR_LIMIT_ADDITIONAL_INFO_BYTES = DEFAULT_MAX_EVENT_BYTES - 1_500
# PostgreSQL's btree index rows end at 2704 bytes; the iactoken is indexed.
OVERLONG_IACTOKEN_CHARS = 4000


def _encoded(document: dict) -> bytes:
    schema = schemas.load(schemas.ALARM_EVENT)
    return single_object(schema, to_record(document, alarm_event_json()))


def test_an_alarm_near_the_size_limit_reaches_every_downstream_topic(
    stack, sample_lines
):
    """A ~1 MB in-scope final alarm, just under ALARMD_MAX_EVENT_BYTES, is stored;
    its predictive request and iAC1 document, a little larger, are delivered too."""
    big = json.loads(next(line for line in sample_lines if '"final": true' in line))
    big["scope"], big["final"] = "In", True
    big["iactoken"] = "near-limit-1"
    # Incompressible text, so compression cannot hide the size from the broker.
    noise = random.Random(7).randbytes(NEAR_LIMIT_ADDITIONAL_INFO_BYTES)
    big["additionalInfo"] = base64.b64encode(noise).decode()[
        :NEAR_LIMIT_ADDITIONAL_INFO_BYTES
    ]
    producer = Producer(
        {
            "bootstrap.servers": stack.services.kafka_bootstrap_servers,
            "message.max.bytes": 2_000_000,
        }
    )
    producer.produce(stack.topics.input, key=b"near-limit-1", value=_encoded(big))
    assert producer.flush(30) == 0

    stack.run_daemon_until_idle()

    counts = stack.counts()
    assert (counts["alarm_events"], counts["alarm_cycles"]) == (1, 1)
    assert counts["outbox_pending"] == 0
    for topic in (stack.topics.predictive, stack.topics.iac1):
        (record,) = stack.records(topic)
        assert len(record.value) > NEAR_LIMIT_ADDITIONAL_INFO_BYTES


def test_a_row_postgresql_refuses_is_dead_lettered_and_the_rest_is_stored(
    stack, sample_lines
):
    """An iactoken too long for its index is refused by PostgreSQL (SQLSTATE
    54000); that one message goes to the dead-letter topic as
    rejected_by_database, and the good events around it are stored."""
    good = sample_lines[:10]
    overlong = json.loads(good[0])
    # Random, so PostgreSQL cannot compress the index entry below its limit.
    overlong["iactoken"] = "".join(
        random.Random(11).choices(string.ascii_letters, k=OVERLONG_IACTOKEN_CHARS)
    )
    messages = [(None, _encoded(json.loads(line)), []) for line in good]
    messages.insert(5, (b"overlong", _encoded(overlong), []))
    placed = stack.produce_raw(messages)

    daemon = stack.start_daemon()
    assert daemon.wait(RUN_TIMEOUT_S) == 0, daemon.tail()

    counts = stack.counts()
    assert counts["alarm_events"] == expect(good).events
    assert counts["processing_errors"] == 1
    assert counts["outbox_pending"] == 0
    (dead,) = stack.records(stack.topics.dead_letter)
    assert dead.key == b"overlong"
    assert dead.text_header("alarmd-error-reason") == "rejected_by_database"
    assert dead.text_header("alarmd-error-stage") == "database"
    partition, offset = placed[5]
    assert int(dead.text_header("alarmd-source-offset")) == offset
    assert int(dead.text_header("alarmd-source-partition")) == partition
