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


class AroundField:
    """Single-object encodes records of `schema` with one record field given
    already encoded, so one alarm encoded once can go into several messages.

    Avro writes a record as its fields in declaration order, nothing between
    them, so the bytes are those of the fields before it, the given bytes, and
    those of the fields after it, each written by fastavro as a record of just
    those fields.
    """

    def __init__(self, name: str, field: str) -> None:
        raw = schemas._raw(name)
        names = [f["name"] for f in raw["fields"]]
        at = names.index(field)
        self._header = schemas.load(name).header
        self._before, self._after = (
            fastavro.parse_schema({"type": "record", "name": f"{raw['name']}{part}",
                                   "fields": fields})
            for part, fields in (("Before", raw["fields"][:at]),
                                 ("After", raw["fields"][at + 1 :]))
        )  # fmt: skip

    def __call__(self, record: dict[str, Any], encoded_field: bytes) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self._header)
        fastavro.schemaless_writer(buffer, self._before, record)
        buffer.write(encoded_field)
        if self._after["fields"]:  # a record of no fields is no bytes
            fastavro.schemaless_writer(buffer, self._after, record)
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
