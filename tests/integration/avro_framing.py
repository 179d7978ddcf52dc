"""Alarm events as Avro bytes, built here from sample JSON with fastavro, so the
tests frame input the way a collector would and not through alarmd's producer."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import fastavro

import schemas


def to_record(document: dict[str, Any], schema_json: dict[str, Any]) -> dict[str, Any]:
    """The record a collector writing `schema_json` sends for a JSON event: the
    schema's fields from the document, every other field in `attributes` when the
    schema has that map, and dropped when it does not."""
    fields = {f["name"] for f in schema_json["fields"]}
    record: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for name, value in document.items():
        if name == "eventTime":
            record[name] = datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif name in fields and name != "attributes":
            record[name] = value
        else:
            attributes[name] = value if isinstance(value, str) else json.dumps(value)
    if "attributes" in fields:
        record["attributes"] = attributes
    return record


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
