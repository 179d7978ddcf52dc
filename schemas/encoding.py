"""Writes records in the framings `schemas.decoding` reads.

Used by `alarmd produce` for the input topic and by the daemon for the
downstream topics, which are always single-object encoded with our schemas.
"""

from __future__ import annotations

import io
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

    text = fastavro.schema.to_parsing_canonical_form(schema.parsed)
    return int(registry.register_schema(subject, RegistrySchema(text, "AVRO")))
