"""Alarm events as Avro bytes, built here from sample JSON with fastavro, so the
tests frame input the way a collector would and not through alarmd's producer."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro

import schemas
from tests.avro_wire import to_record

__all__ = ["alarm_event_json", "body", "good_messages", "single_object", "to_record"]


def body(schema: schemas.Schema, record: dict[str, Any]) -> bytes:
    """The bare Avro body (schemaless framing)."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def single_object(schema: schemas.Schema, record: dict[str, Any]) -> bytes:
    """Avro single-object encoding: C3 01, the schema's fingerprint, the body."""
    return schema.header + body(schema, record)


def alarm_event_json() -> dict[str, Any]:
    """alarmd's reader schema, as JSON."""
    return json.loads((schemas.SCHEMA_DIR / "alarm_event.avsc").read_text("utf-8"))


def good_messages(
    lines: list[str], headers: list[tuple[str, bytes]]
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """(key, value, headers) of each JSON line as a collector sends it: keyed by
    iactoken, single-object encoded with alarmd's current schema."""
    schema = schemas.load(schemas.ALARM_EVENT)
    reader = alarm_event_json()
    messages = []
    for line in lines:
        document = json.loads(line)
        value = single_object(schema, to_record(document, reader))
        messages.append((document["iactoken"].encode(), value, list(headers)))
    return messages
