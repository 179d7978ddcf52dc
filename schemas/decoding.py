"""Turns the bytes of a message on `alarms` into an alarm event record.

Three framings, chosen by ALARMD_INPUT_ENCODING:

- `single-object`: Avro single-object encoding, C3 01 + 8-byte CRC-64-AVRO
  fingerprint + body; the writer schema is looked up by fingerprint among ours.
- `confluent`: magic byte 00 + 4-byte big-endian schema id + body; the writer
  schema comes from a Schema Registry through confluent-kafka's client.
- `schemaless`: the bare body, written with one configured writer schema.

Whatever the framing, the writer schema is resolved against our reader schema
(`schemas/alarm_event.avsc`), so older and newer producers both decode. Every
decoder raises `InvalidMessage` for bytes that can never decode and
`TransientError` when the registry cannot be reached.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import fastavro
from fastavro.read import SchemaResolutionError

import schemas
from alarmd.errors import DeadLetterReason, InvalidMessage, TransientError
from alarmd.settings import DEFAULT_MAX_EVENT_BYTES

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_BYTES = 5
SINGLE_OBJECT_HEADER_BYTES = 10
REQUIRED_TEXT_FIELDS = ("iactoken", "alarmText")
# How much of a string that is not UTF-8 the detail shows, so the field can be told.
UTF8_PREVIEW_BYTES = 32


class Decoder(Protocol):
    def __call__(self, value: bytes | None) -> dict[str, Any]:
        """Decodes one message value into a validated alarm event record.

        Does not block, except `ConfluentDecoder` on its first sight of a schema
        id, when it asks the registry. Raises InvalidMessage or TransientError.
        """
        ...


def _resolve(body: bytes, writer: Any, reader: Any) -> dict[str, Any]:
    """Reads one Avro body with writer->reader resolution, mapping every failure
    onto the dead-letter reason a person fixing the producer needs. A writer
    schema that is the reader's own needs no resolution: it is read as it is,
    which is a third faster."""
    buffer = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(
            buffer, writer, None if writer is reader else reader
        )
    except SchemaResolutionError as exc:
        missing = _missing_required(writer, reader)
        if missing:
            raise InvalidMessage(
                DeadLetterReason.MISSING_FIELD,
                f"writer schema has no field {', '.join(missing)}, which alarmd's "
                "AlarmEvent requires (no default); the producer must send it",
            ) from exc
        raise InvalidMessage(
            DeadLetterReason.INCOMPATIBLE_SCHEMA,
            f"writer schema does not resolve against alarmd's AlarmEvent: {exc}",
        ) from exc
    except UnicodeDecodeError as exc:
        start = exc.object[:UTF8_PREVIEW_BYTES].decode("utf-8", "backslashreplace")
        raise InvalidMessage(
            DeadLetterReason.INVALID_UTF8,
            f"a string field is not valid UTF-8 ({exc.reason} at byte {exc.start} "
            f"of a {len(exc.object)}-byte string starting {start!r})",
        ) from exc
    except EOFError as exc:
        raise InvalidMessage(
            DeadLetterReason.MALFORMED_RECORD,
            f"record is truncated: {len(body)} bytes end before the last field",
        ) from exc
    except (OverflowError, ValueError) as exc:
        # fastavro says "date value out of range" for a timestamp past year 9999.
        text = str(exc)
        if "year" in text or "date value" in text or "timestamp" in text.lower():
            raise InvalidMessage(
                DeadLetterReason.INVALID_FIELD,
                f"eventTime is out of range ({exc}); a timestamp must fall in the "
                "years 1 to 9999",
            ) from exc
        raise InvalidMessage(
            DeadLetterReason.MALFORMED_RECORD, f"body is not an Avro AlarmEvent: {exc}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any other failure on these bytes is theirs
        raise InvalidMessage(
            DeadLetterReason.MALFORMED_RECORD,
            f"body is not an Avro AlarmEvent ({type(exc).__name__}: {exc})",
        ) from exc
    if buffer.tell() != len(body):
        raise InvalidMessage(
            DeadLetterReason.MALFORMED_RECORD,
            f"{len(body) - buffer.tell()} bytes of trailing garbage after a "
            f"{buffer.tell()}-byte record",
        )
    if not isinstance(record, dict):
        raise InvalidMessage(
            DeadLetterReason.INCOMPATIBLE_SCHEMA, "writer schema is not a record"
        )
    return validate(record)


def validate(record: dict[str, Any]) -> dict[str, Any]:
    """Checks what Avro cannot: required text present, values PostgreSQL can hold.

    The rule for values PostgreSQL cannot store is one and the same everywhere:
    a string with a NUL character (U+0000), in any field or attribute, makes the
    message permanently invalid and it is dead-lettered with its bytes intact.
    (Invalid UTF-8 never gets this far: the Avro reader rejects it.)
    """
    for name in REQUIRED_TEXT_FIELDS:
        if not record.get(name, "").strip():
            raise InvalidMessage(
                DeadLetterReason.INVALID_FIELD, f"required field {name} is empty"
            )
    if not isinstance(record.get("eventTime"), datetime):
        raise InvalidMessage(
            DeadLetterReason.INVALID_FIELD, "eventTime is not a timestamp"
        )
    for name, value in record.items():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidMessage(
                DeadLetterReason.UNSTORABLE_VALUE,
                f"field {name} holds a NUL character (U+0000), which PostgreSQL "
                "text cannot store",
            )
    for key, value in record.get("attributes", {}).items():
        if "\x00" in key or "\x00" in value:
            raise InvalidMessage(
                DeadLetterReason.UNSTORABLE_VALUE,
                f"attribute {key!r} holds a NUL character (U+0000), which "
                "PostgreSQL text cannot store",
            )
    return record


def _missing_required(writer: Any, reader: Any) -> list[str]:
    """The reader's fields without a default that the writer record lacks."""
    if not isinstance(writer, dict) or not isinstance(writer.get("fields"), list):
        return []
    written = {f["name"] for f in writer["fields"]}
    return [
        f["name"]
        for f in reader["fields"]
        if "default" not in f and f["name"] not in written
    ]


def _require_value(value: bytes | None, max_bytes: int) -> bytes:
    """The value itself, or InvalidMessage when there is no event to decode in it."""
    if value is None:
        raise InvalidMessage(
            DeadLetterReason.TOMBSTONE,
            "message value is null (a tombstone); alarm events are never deleted, "
            "so the producer sent a key without an event",
        )
    if not value:
        raise InvalidMessage(
            DeadLetterReason.EMPTY_VALUE,
            "message value is empty (0 bytes); an alarm event needs one",
        )
    if len(value) > max_bytes:
        raise InvalidMessage(
            DeadLetterReason.OVERSIZED_VALUE,
            f"value is {len(value):,} bytes, over the {max_bytes:,}-byte limit for "
            "one alarm event (ALARMD_MAX_EVENT_BYTES); a field such as "
            "additionalInfo is likely carrying far more than alarm text",
        )
    return value


_OWN_HEADER = schemas.load(schemas.ALARM_EVENT).header


def own_body(value: bytes | None) -> bytes | None:
    """The Avro body of a value single-object encoded with alarmd's current
    AlarmEvent schema, or None for any other framing or writer schema.

    Once such a value has decoded (`SingleObjectDecoder` reads it without
    resolution, to its last byte), its body is the record's encoding under our
    schema, so a downstream message can carry it as its alarm field without
    encoding the record again."""
    if value is not None and value[:SINGLE_OBJECT_HEADER_BYTES] == _OWN_HEADER:
        return value[SINGLE_OBJECT_HEADER_BYTES:]
    return None


class SingleObjectDecoder:
    """Avro single-object encoding; writer schemas are ours, found by fingerprint."""

    def __init__(self, max_value_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._reader = schemas.load(schemas.ALARM_EVENT).parsed
        self._writers = {fp: s.parsed for fp, s in schemas.known_writers().items()}
        # Our own current schema is the reader itself (see _resolve).
        self._writers[schemas.load(schemas.ALARM_EVENT).fingerprint] = self._reader
        self._max_bytes = max_value_bytes

    def __call__(self, value: bytes | None) -> dict[str, Any]:
        value = _require_value(value, self._max_bytes)
        if len(value) < SINGLE_OBJECT_HEADER_BYTES:
            raise InvalidMessage(
                DeadLetterReason.BAD_FRAMING,
                f"payload is {len(value)} bytes; single-object encoding needs at "
                f"least {SINGLE_OBJECT_HEADER_BYTES}",
            )
        if value[:2] != schemas.SINGLE_OBJECT_MAGIC:
            raise InvalidMessage(
                DeadLetterReason.BAD_FRAMING,
                f"payload starts with {value[:2].hex()}, not the single-object "
                "marker c301; is the producer using another framing?",
            )
        fingerprint = value[2:SINGLE_OBJECT_HEADER_BYTES]
        writer = self._writers.get(fingerprint)
        if writer is None:
            raise InvalidMessage(
                DeadLetterReason.UNKNOWN_SCHEMA,
                f"writer schema fingerprint {fingerprint.hex()} is not among "
                "schemas/ or schemas/history/; add the producer's schema there",
            )
        return _resolve(value[SINGLE_OBJECT_HEADER_BYTES:], writer, self._reader)


class SchemalessDecoder:
    """Bare Avro bodies written with one configured writer schema."""

    def __init__(
        self,
        writer_schema: schemas.Schema | None = None,
        max_value_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._reader = schemas.load(schemas.ALARM_EVENT).parsed
        self._writer = writer_schema.parsed if writer_schema else self._reader
        self._max_bytes = max_value_bytes

    def __call__(self, value: bytes | None) -> dict[str, Any]:
        value = _require_value(value, self._max_bytes)
        return _resolve(value, self._writer, self._reader)


class ConfluentDecoder:
    """Confluent wire format; writer schemas fetched once per id from the registry.

    `registry` is a confluent_kafka.schema_registry.SchemaRegistryClient (the
    tests use its `mock://` client).
    """

    def __init__(
        self, registry: Any, max_value_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> None:
        self._registry = registry
        self._reader = schemas.load(schemas.ALARM_EVENT).parsed
        self._writers: dict[int, Any] = {}
        self._max_bytes = max_value_bytes

    def __call__(self, value: bytes | None) -> dict[str, Any]:
        value = _require_value(value, self._max_bytes)
        if len(value) < CONFLUENT_HEADER_BYTES or value[0] != CONFLUENT_MAGIC:
            raise InvalidMessage(
                DeadLetterReason.BAD_FRAMING,
                f"payload of {len(value)} bytes does not start with the Confluent "
                f"magic byte 00 and a 4-byte schema id (starts {value[:5].hex()})",
            )
        (schema_id,) = struct.unpack(">I", value[1:CONFLUENT_HEADER_BYTES])
        writer = self._writers.get(schema_id)
        if writer is None:
            writer = self._writers[schema_id] = self._fetch(schema_id)
        return _resolve(value[CONFLUENT_HEADER_BYTES:], writer, self._reader)

    def _fetch(self, schema_id: int) -> Any:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise InvalidMessage(
                    DeadLetterReason.UNKNOWN_SCHEMA,
                    f"schema id {schema_id} is not in the schema registry",
                ) from exc
            raise TransientError("schema_registry", str(exc)) from exc
        except (OSError, ConnectionError) as exc:
            raise TransientError("schema_registry", str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - the HTTP layer's own errors
            if "connect" in type(exc).__name__.lower() or "timeout" in str(exc).lower():
                raise TransientError("schema_registry", str(exc)) from exc
            raise
        try:
            return schemas.parse(registered.schema_str, f"registry-{schema_id}").parsed
        except Exception as exc:  # noqa: BLE001 - a registered schema we cannot read
            raise InvalidMessage(
                DeadLetterReason.INCOMPATIBLE_SCHEMA,
                f"schema id {schema_id} is not an Avro record alarmd can read: {exc}",
            ) from exc


def build_decoder(
    encoding: str,
    writer_schema: schemas.Schema | None = None,
    registry_factory: Callable[[], Any] | None = None,
    max_value_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Decoder:
    """The decoder for ALARMD_INPUT_ENCODING; values over `max_value_bytes`
    (ALARMD_MAX_EVENT_BYTES) are rejected before any decoding."""
    if encoding == "single-object":
        return SingleObjectDecoder(max_value_bytes)
    if encoding == "schemaless":
        return SchemalessDecoder(writer_schema, max_value_bytes)
    if encoding == "confluent":
        if registry_factory is None:
            from alarmd.errors import ConfigurationError

            raise ConfigurationError(
                "input_encoding=confluent needs ALARMD_SCHEMA_REGISTRY_URL"
            )
        return ConfluentDecoder(registry_factory(), max_value_bytes)
    raise ValueError(f"unknown input encoding {encoding!r}")
