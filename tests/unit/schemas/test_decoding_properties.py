"""schemas/decoding.py, by property: no bytes crash any decoder, and every record
any of our writer schemas can hold comes back field for field.

Records are drawn from the schema files themselves (`avro_strategies.py`), so a
field added to a schema, or a writer version added to `schemas/history/`, is
covered without a change here. Bytes are built with fastavro and the Avro
specification (`tests/avro_wire.py`); one property checks alarmd's own encoder
against the decoders as well.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import given
from hypothesis import strategies as st

import schemas
from alarmd.errors import DeadLetterReason, InvalidMessage
from schemas import encoding
from schemas.decoding import ConfluentDecoder, SchemalessDecoder, SingleObjectDecoder
from tests.avro_wire import (
    SCHEMA_DIR,
    schema_json,
)

from .avro_strategies import fields, records
from .framings import ENCODINGS, wire

WRITERS = ["alarm_event"] + sorted(
    f"history/{path.stem}" for path in (SCHEMA_DIR / "history").glob("*.avsc")
)
READER = schema_json()
READER_FIELDS = fields(READER)
# What a valid header can be followed by and still be wrong: never the framing.
BODY_REASONS = {
    DeadLetterReason.MALFORMED_RECORD,
    DeadLetterReason.INVALID_UTF8,
    DeadLetterReason.INVALID_FIELD,
    DeadLetterReason.UNSTORABLE_VALUE,
}
MAX_FUZZ_BYTES = 600


def as_decoded(written: dict[str, Any]) -> dict[str, Any]:
    """What the reader makes of a record: its fields, the reader's defaults for
    those the writer did not have, and nothing the reader does not know."""
    return {
        name: written[name] if name in written else field["default"]
        for name, field in READER_FIELDS.items()
    }


def decoded_or_rejected(decode: Callable, value: bytes | None):
    """Decodes, or returns the InvalidMessage: any other exception fails the test.
    A decoded record is checked for what the database relies on."""
    try:
        record = decode(value)
    except InvalidMessage as exc:
        assert exc.reason in set(DeadLetterReason)
        assert exc.detail.strip()
        return exc
    assert set(record) == set(READER_FIELDS)
    assert record["iactoken"].strip() and record["alarmText"].strip()
    assert isinstance(record["eventTime"], datetime)
    assert record["eventTime"].utcoffset() is not None
    texts = [v for v in record.values() if isinstance(v, str)]
    texts += [t for pair in record["attributes"].items() for t in pair]
    assert not any("\x00" in text for text in texts)
    return record


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """A valid payload with a few bytes flipped, cut out, inserted or cut off."""
    value = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        at = draw(st.integers(0, max(len(value) - 1, 0)))
        if kind == "flip" and value:
            value[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del value[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            value[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del value[at:]
    return bytes(value)


@pytest.mark.parametrize("encoding_name", ENCODINGS)
@given(value=st.binary(max_size=MAX_FUZZ_BYTES))
def test_arbitrary_bytes_decode_or_raise_invalid_message(encoding_name, value):
    """Any bytes at all give a record or InvalidMessage with a reason and a
    detail, never another exception that would stop the daemon."""
    decoded_or_rejected(wire(encoding_name).decode, value)


@pytest.mark.parametrize("encoding_name", ENCODINGS)
@given(value=st.binary(min_size=1, max_size=MAX_FUZZ_BYTES))
def test_arbitrary_bytes_after_a_valid_header_are_a_body_problem(encoding_name, value):
    """Whatever follows a valid header, a rejection is about the body, never the
    framing or the schema."""
    outcome = decoded_or_rejected(
        wire(encoding_name).decode, wire(encoding_name).header + value
    )

    if isinstance(outcome, InvalidMessage):
        assert outcome.reason in BODY_REASONS, outcome


@pytest.mark.parametrize("encoding_name", ENCODINGS)
@given(data=st.data())
def test_damaged_valid_messages_decode_or_raise_invalid_message(encoding_name, data):
    """A valid message with bytes flipped, removed, added or cut off gives a
    record or InvalidMessage, never a crash."""
    valid = wire(encoding_name).frame(data.draw(records(READER)))

    decoded_or_rejected(wire(encoding_name).decode, data.draw(mutated(valid)))


@pytest.mark.parametrize("writer_name", WRITERS)
@pytest.mark.parametrize("encoding_name", ENCODINGS)
@given(data=st.data())
def test_every_writer_record_decodes_field_for_field(encoding_name, writer_name, data):
    """A record of any of our writer schemas, in any framing, decodes to exactly
    its fields, with the reader's defaults for fields that writer lacks."""
    chosen = wire(encoding_name, writer_name)
    record = data.draw(records(chosen.writer))

    assert chosen.decode(chosen.frame(record)) == as_decoded(record)


@given(record=records(READER), schema_id=st.integers(1, 2**31 - 1))
def test_alarmd_encoder_and_decoders_agree(record, schema_id):
    """What schemas.encoding writes in each framing, the matching decoder reads
    back unchanged."""
    schema = schemas.load(schemas.ALARM_EVENT)
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    registered = encoding.register(registry, "alarms-value", schema)

    assert SingleObjectDecoder()(encoding.single_object(schema, record)) == record
    assert SchemalessDecoder()(encoding.schemaless(schema, record)) == record
    assert (
        ConfluentDecoder(registry)(encoding.confluent(registered, schema, record))
        == record
    )
    assert encoding.confluent(schema_id, schema, record)[1:5] == schema_id.to_bytes(
        4, "big"
    )


@given(data=st.data())
def test_a_nul_character_anywhere_is_unstorable_and_named(data):
    """A NUL in any text field, attribute name or attribute value is
    unstorable_value, and the detail names where it is."""
    record = data.draw(records(READER))
    texts = [n for n, f in READER_FIELDS.items() if f["type"] == "string"]
    where = data.draw(st.sampled_from([*texts, "attribute name", "attribute value"]))
    if where in texts:
        record[where] = record[where] + "\x00"
        named = f"field {where}"
    else:
        name = data.draw(st.text(max_size=5).filter(lambda t: "\x00" not in t))
        broken = (name + "\x00", "v") if where == "attribute name" else (name, "\x00")
        record["attributes"] = {**record["attributes"], broken[0]: broken[1]}
        named = "attribute"

    rejection = decoded_or_rejected(
        wire("single-object").decode, wire("single-object").frame(record)
    )

    assert isinstance(rejection, InvalidMessage)
    assert rejection.reason == DeadLetterReason.UNSTORABLE_VALUE
    assert named in rejection.detail
