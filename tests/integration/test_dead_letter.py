"""Messages that can never be processed go to the dead-letter topic with their
original bytes and the reason, while the good events around them are stored."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from itertools import zip_longest

import schemas

from .avro_framing import alarm_event_json, single_object, to_record
from .polling import wait_until
from .sample import expect
from .stack import RUN_TIMEOUT_S

COLLECTOR_HEADER = ("collector", b"robot-integration")
INVALID_UTF8_PLACEHOLDER = "@@not-utf8@@"
GOOD_EVENTS_PER_PHASE = 12


@dataclass(frozen=True)
class BadInput:
    kind: str
    value: bytes | None
    reason: str

    @property
    def key(self) -> bytes:
        return f"bad-{self.kind}".encode()


def bad_inputs(document: dict) -> list[BadInput]:
    """One message per permanent error kind, built from a good sample event."""
    schema = schemas.load(schemas.ALARM_EVENT)
    reader = alarm_event_json()

    def encoded(**changes) -> bytes:
        return single_object(schema, to_record({**document, **changes}, reader))

    good = encoded()
    body = good[len(schema.header) :]
    rng = random.Random(20240311)
    noise = rng.randbytes(64)
    assert noise[:2] != schemas.SINGLE_OBJECT_MAGIC
    stranger = rng.randbytes(len(schema.fingerprint))
    assert stranger not in schemas.known_writers()
    with_placeholder = encoded(nodeName=INVALID_UTF8_PLACEHOLDER)
    placeholder = INVALID_UTF8_PLACEHOLDER.encode()
    not_utf8 = with_placeholder.replace(
        placeholder, b"\xff\xfe" + placeholder[2:]
    )  # same length, so the Avro string length still matches
    return [
        BadInput("random-bytes", noise, "bad_framing"),
        BadInput("empty-value", b"", "empty_value"),
        BadInput("tombstone", None, "empty_value"),
        BadInput("truncated", good[: len(good) // 2], "malformed_record"),
        BadInput("trailing-garbage", good + b"\x06extra", "malformed_record"),
        BadInput("wrong-magic", b"\xc3\x02" + good[2:], "bad_framing"),
        BadInput(
            "unknown-fingerprint",
            schemas.SINGLE_OBJECT_MAGIC + stranger + body,
            "unknown_schema",
        ),
        BadInput(
            "nul-in-alarm-text", encoded(alarmText="BCF\x00FAULTY"), "unstorable_value"
        ),
        BadInput("invalid-utf8", not_utf8, "invalid_utf8"),
        BadInput("empty-iactoken", encoded(iactoken=""), "invalid_field"),
    ]


def good_messages(lines: list[str]) -> list[tuple[bytes, bytes, list]]:
    schema = schemas.load(schemas.ALARM_EVENT)
    reader = alarm_event_json()
    messages = []
    for line in lines:
        document = json.loads(line)
        value = single_object(schema, to_record(document, reader))
        messages.append((document["iactoken"].encode(), value, [COLLECTOR_HEADER]))
    return messages


def test_every_permanent_error_is_dead_lettered_and_the_daemon_goes_on(
    stack, sample_lines
):
    """Each bad message lands on the dead-letter topic with its key, value,
    headers and reason, gets an error row, and the daemon keeps storing good
    events after them until it exits idle with 0."""
    first_lines = sample_lines[:GOOD_EVENTS_PER_PHASE]
    later_lines = sample_lines[GOOD_EVENTS_PER_PHASE : 2 * GOOD_EVENTS_PER_PHASE]
    bad = bad_inputs(json.loads(sample_lines[0]))
    bad_messages = [(b.key, b.value, [COLLECTOR_HEADER]) for b in bad]
    mixed = [
        message
        for pair in zip_longest(good_messages(first_lines), bad_messages)
        for message in pair
        if message is not None
    ]
    placed = dict(zip([m[0] for m in mixed], stack.produce_raw(mixed), strict=True))

    daemon = stack.start_daemon()
    first = expect(first_lines)

    def mixed_messages_processed() -> bool:
        counts = stack.counts()
        return (counts["processing_errors"], counts["alarm_events"]) == (
            len(bad),
            first.events,
        )

    wait_until(
        mixed_messages_processed,
        RUN_TIMEOUT_S,
        lambda: (
            f"the mixed messages were not processed: {stack.counts()}\n{daemon.tail()}"
        ),
    )
    assert daemon.running()
    stack.produce_raw(good_messages(later_lines))
    exit_code = daemon.wait(RUN_TIMEOUT_S)

    assert exit_code == 0, daemon.tail()
    assert daemon.events("idle_exit")
    both = expect(first_lines + later_lines)
    counts = stack.counts()
    assert counts["alarm_events"] == both.events
    assert counts["processing_errors"] == len(bad)
    assert counts["outbox_pending"] == 0

    errors = stack.query(
        "SELECT source_topic, source_partition, source_offset, stage, reason "
        "FROM processing_errors"
    )
    assert sorted(errors) == sorted(
        (stack.topics.input, *placed[b.key], "decode", b.reason) for b in bad
    )

    dead = stack.records(stack.topics.dead_letter)
    by_source = {
        (int(r.text_header("alarmd-source-partition")),
         int(r.text_header("alarmd-source-offset"))): r
        for r in dead
    }  # fmt: skip
    assert len(dead) == len(by_source) == len(bad)
    for wrong in bad:
        record = by_source[placed[wrong.key]]
        assert (record.key, record.value) == (wrong.key, wrong.value), wrong.kind
        assert record.headers[0] == COLLECTOR_HEADER, wrong.kind
        assert record.text_header("alarmd-source-topic") == stack.topics.input
        assert record.text_header("alarmd-error-stage") == "decode", wrong.kind
        assert record.text_header("alarmd-error-reason") == wrong.reason, wrong.kind
