"""Avro bytes as a collector writes them, from the schema files and the Avro
specification, with fastavro and nothing of alarmd's encoder.

Every tier builds its input with these, so a decoding test cannot pass merely
because alarmd's encoder and decoder agree with each other.
"""

from __future__ import annotations

import copy
import io
import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO_ROOT / "schemas"

# CRC-64-AVRO as the Avro specification defines it ("Schema Fingerprints").
CRC64_AVRO_EMPTY = 0xC15D213AA4D7A795
SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


def _crc64_table() -> list[int]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    fp = CRC64_AVRO_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def schema_json(name: str = "alarm_event") -> dict[str, Any]:
    """A fresh, mutable copy of one schema file, e.g. "history/alarm_event-v1"."""
    path = SCHEMA_DIR / f"{name}.avsc"
    return copy.deepcopy(json.loads(path.read_text(encoding="utf-8")))


def single_object_header(
    schema: dict[str, Any], named_schemas: dict | None = None
) -> bytes:
    """C3 01 + the 8-byte little-endian CRC-64-AVRO of the schema's canonical form."""
    parsed = fastavro.parse_schema(schema, named_schemas=named_schemas)
    canonical = to_parsing_canonical_form(parsed)
    fingerprint = crc64_avro(canonical.encode()).to_bytes(8, "little")
    return SINGLE_OBJECT_MARKER + fingerprint


def body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """The bare Avro body of a record, written by fastavro with the given schema."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def confluent_frame(schema_id: int, avro_body: bytes) -> bytes:
    """Confluent wire format: magic 00, the big-endian 4-byte schema id, the body."""
    return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + avro_body


def to_record(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The record a collector writing `schema` sends for a JSON event: the
    schema's fields from the document, every other field in `attributes` when the
    schema has that map (strings as they are, the rest as JSON text), and dropped
    when it does not."""
    fields = {f["name"] for f in schema["fields"]}
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
