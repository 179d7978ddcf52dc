"""schemas/decoding.py: every framing, every permanent error kind with its
dead-letter reason, and writer schemas older and newer than the reader's."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

import schemas
from alarmd.errors import (
    ConfigurationError,
    DeadLetterReason,
    InvalidMessage,
    TransientError,
)
from schemas.decoding import (
    ConfluentDecoder,
    SchemalessDecoder,
    SingleObjectDecoder,
    build_decoder,
)

SUBJECT = "alarms-value"
# What can be wrong with the bytes after a valid header: never the framing.
BODY_REASONS = {
    DeadLetterReason.MALFORMED_RECORD,
    DeadLetterReason.INVALID_UTF8,
    DeadLetterReason.INVALID_FIELD,
    DeadLetterReason.UNSTORABLE_VALUE,
}


class Wire:
    """Builds input payloads from the schema files with fastavro, by hand."""

    def __init__(self, raw_schema, single_object_header, avro_body) -> None:
        self.raw_schema = raw_schema
        self.schema = raw_schema("alarm_event")
        self.header = single_object_header(self.schema)
        self.body = avro_body
        self._single_object_header = single_object_header

    def single_object(self, record: dict[str, Any]) -> bytes:
        return self.header + self.body(self.schema, record)

    def header_of(self, schema: dict[str, Any]) -> bytes:
        return self._single_object_header(schema)

    def changed(self, field: str, **changes: Any) -> dict[str, Any]:
        """Our schema with one field's definition changed (None drops a key)."""
        schema = self.raw_schema("alarm_event")
        for definition in schema["fields"]:
            if definition["name"] == field:
                definition.update(changes)
                for key in [k for k, v in definition.items() if v is None]:
                    del definition[key]
        return schema

    def with_extra_field(self, name: str, default: str) -> dict[str, Any]:
        schema = self.raw_schema("alarm_event")
        schema["fields"].append({"name": name, "type": "string", "default": default})
        return schema


@pytest.fixture
def wire(raw_schema, single_object_header, avro_body) -> Wire:
    return Wire(raw_schema, single_object_header, avro_body)


@pytest.fixture
def registry() -> Any:
    """confluent-kafka's own in-memory registry; each call gives an empty one."""
    return SchemaRegistryClient.new_client({"url": "mock://"})


def _register(registry: Any, schema: dict[str, Any]) -> int:
    return registry.register_schema(SUBJECT, RegistrySchema(json.dumps(schema), "AVRO"))


def _confluent(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


def _rejection(decode: Callable[[bytes | None], Any], value: bytes | None):
    with pytest.raises(InvalidMessage) as caught:
        decode(value)
    return caught.value


def test_current_writer_decodes_to_the_record_it_wrote(wire, alarm_event):
    """A single-object payload written with alarm_event.avsc decodes field for field."""
    record = alarm_event()

    assert SingleObjectDecoder()(wire.single_object(record)) == record


# Every case of the poison corpus (tests/poison.py) is checked in
# tests/unit/consumer/test_batch.py; these are the finer points around them.
PERMANENT_ERRORS = [
    pytest.param(
        lambda w, e: b"\xc3\x01\x72\x46",
        DeadLetterReason.BAD_FRAMING,
        "payload is 4 bytes",
        id="too-short",
    ),
    pytest.param(
        lambda w, e: w.single_object(e(attributes={"dn": "BSC-1\x00"})),
        DeadLetterReason.UNSTORABLE_VALUE,
        "attribute 'dn'",
        id="nul-in-attribute-value",
    ),
    pytest.param(
        lambda w, e: w.single_object(e(attributes={"d\x00n": "BSC-1"})),
        DeadLetterReason.UNSTORABLE_VALUE,
        "attribute",
        id="nul-in-attribute-key",
    ),
    pytest.param(
        lambda w, e: w.single_object(e(alarmText="   ")),
        DeadLetterReason.INVALID_FIELD,
        "alarmText",
        id="blank-alarm-text",
    ),
    pytest.param(
        lambda w, e: w.single_object(e(nodeName="x" * 2048)),
        DeadLetterReason.OVERSIZED_VALUE,
        "over the 1,024-byte limit",
        id="over-a-configured-limit",
    ),
]


@pytest.mark.parametrize(("build", "reason", "detail"), PERMANENT_ERRORS)
def test_permanent_error_is_rejected_with_its_reason(
    wire, alarm_event, build, reason, detail
):
    """Each kind of undecodable value raises InvalidMessage with its own reason."""
    rejection = _rejection(SingleObjectDecoder(1024), build(wire, alarm_event))

    assert rejection.reason == reason
    assert detail in rejection.detail


def test_every_cut_of_a_record_is_malformed(wire, alarm_event):
    """Cutting a record anywhere after its header is reported as truncated."""
    payload = wire.single_object(alarm_event())
    decode = SingleObjectDecoder()

    reasons = {
        cut: _rejection(decode, payload[:cut]).reason
        for cut in range(len(wire.header), len(payload))
    }

    assert set(reasons.values()) == {DeadLetterReason.MALFORMED_RECORD}


@pytest.mark.parametrize(
    ("field", "definition", "value"),
    [
        pytest.param(
            "final", {"type": "string", "default": "no"}, "yes", id="bool-as-string"
        ),
        pytest.param("nodeName", {"type": "int", "default": 0}, 10, id="string-as-int"),
    ],
)
def test_writer_schema_that_does_not_resolve_is_incompatible(
    wire, alarm_event, field, definition, value
):
    """A writer whose field types cannot be read as ours is incompatible_schema."""
    writer = wire.changed(field, **definition)
    decode = SchemalessDecoder(schemas.parse(writer))

    rejection = _rejection(decode, wire.body(writer, alarm_event(**{field: value})))

    assert rejection.reason == DeadLetterReason.INCOMPATIBLE_SCHEMA
    assert "does not resolve" in rejection.detail


def test_writer_without_a_required_field_names_the_missing_field(wire, alarm_event):
    """A writer that lacks alarmText, which has no default, is missing_field and
    the detail names alarmText."""
    writer = wire.raw_schema("alarm_event")
    writer["fields"] = [f for f in writer["fields"] if f["name"] != "alarmText"]
    record = alarm_event()
    del record["alarmText"]

    rejection = _rejection(
        SchemalessDecoder(schemas.parse(writer)), wire.body(writer, record)
    )

    assert rejection.reason == DeadLetterReason.MISSING_FIELD
    assert "alarmText" in rejection.detail


def test_older_writer_decodes_by_fingerprint_with_defaults_filled_in(wire, alarm_event):
    """A v1 event (no iacalarmid, no attributes) decodes; the reader's defaults
    fill the fields v1 did not have."""
    v1 = wire.raw_schema("history/alarm_event-v1")
    v1_fields = {f["name"] for f in v1["fields"]}
    written = {k: v for k, v in alarm_event().items() if k in v1_fields}

    decoded = SingleObjectDecoder()(wire.header_of(v1) + wire.body(v1, written))

    assert decoded == {**written, "iacalarmid": "", "attributes": {}}


def test_newer_writer_with_an_extra_field_decodes_schemaless(wire, alarm_event):
    """A writer that added a field (with a default) decodes; the extra is dropped."""
    newer = wire.with_extra_field("severity", default="")
    record = alarm_event()

    decoded = SchemalessDecoder(schemas.parse(newer))(
        wire.body(newer, {**record, "severity": "critical"})
    )

    assert decoded == record


def test_newer_writer_with_an_extra_field_decodes_from_the_registry(
    wire, alarm_event, registry
):
    """The same newer writer, registered in a schema registry, decodes in the
    Confluent framing."""
    newer = wire.with_extra_field("severity", default="")
    schema_id = _register(registry, newer)
    record = alarm_event()

    decoded = ConfluentDecoder(registry)(
        _confluent(schema_id, wire.body(newer, {**record, "severity": "major"}))
    )

    assert decoded == record


def test_confluent_message_decodes_with_the_registered_schema(
    wire, alarm_event, registry
):
    """Magic 00, the big-endian schema id, then the body: decoded field for field."""
    schema_id = _register(registry, wire.schema)
    record = alarm_event()

    decoded = ConfluentDecoder(registry)(
        _confluent(schema_id, wire.body(wire.schema, record))
    )

    assert decoded == record


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\x01\x00\x00\x00\x01\x0c3100012", id="wrong-magic"),
        pytest.param(b"\x00\x00\x01", id="shorter-than-header"),
    ],
)
def test_confluent_bad_framing(registry, value):
    """Anything that does not start with 00 and a 4-byte id is bad_framing."""
    rejection = _rejection(ConfluentDecoder(registry), value)

    assert rejection.reason == DeadLetterReason.BAD_FRAMING


def test_confluent_registered_schema_that_is_not_a_record_is_incompatible(
    wire, alarm_event, registry
):
    """A registered schema alarmd cannot read as a record is incompatible_schema."""
    schema_id = registry.register_schema(SUBJECT, RegistrySchema('"string"', "AVRO"))

    rejection = _rejection(
        ConfluentDecoder(registry),
        _confluent(schema_id, wire.body(wire.schema, alarm_event())),
    )

    assert rejection.reason == DeadLetterReason.INCOMPATIBLE_SCHEMA


class CountingRegistry:
    """Wraps a registry and counts the schema look-ups made through it."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self.lookups: list[int] = []

    def get_schema(self, schema_id: int) -> Any:
        self.lookups.append(schema_id)
        return self._registry.get_schema(schema_id)


def test_confluent_registry_asked_once_per_schema_id(wire, alarm_event, registry):
    """The writer schema of an id is fetched on first sight and then reused."""
    schema_id = _register(registry, wire.schema)
    counting = CountingRegistry(registry)
    decode = ConfluentDecoder(counting)
    payload = _confluent(schema_id, wire.body(wire.schema, alarm_event()))

    for _ in range(3):
        decode(payload)

    assert counting.lookups == [schema_id]


class UnreachableRegistry:
    """A registry whose every look-up fails with the given exception."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def get_schema(self, schema_id: int) -> Any:
        raise self._error


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConnectionRefusedError(111, "Connection refused"), id="refused"),
        pytest.param(
            SchemaRegistryError(503, 50300, "Service Unavailable"), id="http-503"
        ),
    ],
)
def test_unreachable_registry_is_transient(wire, alarm_event, error):
    """A registry that cannot answer now is a TransientError, not a dead letter."""
    payload = _confluent(7, wire.body(wire.schema, alarm_event()))

    with pytest.raises(TransientError) as caught:
        ConfluentDecoder(UnreachableRegistry(error))(payload)

    assert caught.value.stage == "schema_registry"


@pytest.mark.parametrize(
    ("encoding", "decoder_type"),
    [("single-object", SingleObjectDecoder), ("schemaless", SchemalessDecoder)],
)
def test_build_decoder_picks_the_framing(encoding, decoder_type):
    """ALARMD_INPUT_ENCODING names the decoder class."""
    assert isinstance(build_decoder(encoding), decoder_type)


def test_build_decoder_for_confluent_uses_the_registry_factory(registry):
    """The confluent decoder gets its registry from the factory it is given."""
    assert isinstance(
        build_decoder("confluent", None, lambda: registry), ConfluentDecoder
    )


def test_build_decoder_for_confluent_without_registry_is_a_configuration_error():
    """Without a registry URL the confluent framing cannot work."""
    with pytest.raises(ConfigurationError, match="SCHEMA_REGISTRY_URL"):
        build_decoder("confluent")


def test_build_decoder_rejects_an_unknown_encoding():
    """A framing alarmd does not know is refused at start-up."""
    with pytest.raises(ValueError, match="protobuf"):
        build_decoder("protobuf")
