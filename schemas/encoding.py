"""Writes records in the framings `schemas.decoding` reads.

Used by `alarmd produce` for the input topic and by the daemon for the
downstream topics, which are always single-object encoded with our schemas.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro

import schemas
from schemas.decoding import CONFLUENT_MAGIC


def single_object(schema: schemas.Schema, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(schema.header)
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def schemaless(schema: schemas.Schema, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def confluent(schema_id: int, schema: schemas.Schema, record: dict[str, Any]) -> bytes:
    return struct.pack(">bI", CONFLUENT_MAGIC, schema_id) + schemaless(schema, record)


def register(registry: Any, subject: str, schema: schemas.Schema) -> int:
    """Registers a schema under a subject and returns its id (idempotent)."""
    from confluent_kafka.schema_registry import Schema as RegistrySchema

    # Not the parsing canonical form: it drops logicalType, and a reader resolving
    # against it would get eventTime as a bare long.
    text = json.dumps(
        {k: v for k, v in schema.parsed.items() if not k.startswith("__")}
    )
    return int(registry.register_schema(subject, RegistrySchema(text, "AVRO")))
