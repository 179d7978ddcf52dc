"""Avro schemas of alarmd's topics, parsed once.

`alarm_event.avsc` is the reader schema every incoming event is resolved
against. `history/` keeps earlier writer versions of it, so single-object
encoded events from older collectors are still recognised by fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent
ALARM_EVENT = "alarm_event"
PREDICTIVE_REQUEST = "predictive_request"
IAC1_ALARM = "iac1_alarm"
NOTIFICATION_REQUEST = "notification_request"

SINGLE_OBJECT_MAGIC = b"\xc3\x01"


@dataclass(frozen=True)
class Schema:
    """A parsed schema and its single-object header (magic + fingerprint)."""

    name: str
    parsed: Any
    header: bytes

    @property
    def fingerprint(self) -> bytes:
        return self.header[len(SINGLE_OBJECT_MAGIC) :]


def parse(raw: dict[str, Any] | str, name: str = "") -> Schema:
    """Parses one schema. Downstream schemas refer to AlarmEvent by name, so the
    alarm event schema is always known to the parser."""
    if isinstance(raw, str):
        raw = json.loads(raw)
    assert isinstance(raw, dict), "an Avro schema here is a JSON object"
    named: dict[str, Any] = {}
    if raw.get("name") != "AlarmEvent":
        fastavro.parse_schema(_raw(ALARM_EVENT), named_schemas=named)
    parsed = fastavro.parse_schema(raw, named_schemas=named)
    canonical = to_parsing_canonical_form(parsed)
    # fastavro prints the CRC-64-AVRO fingerprint as its little-endian bytes,
    # which is the order single-object encoding puts on the wire.
    header = SINGLE_OBJECT_MAGIC + bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return Schema(name=name or raw.get("name", ""), parsed=parsed, header=header)


@cache
def _raw(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text(encoding="utf-8"))


@cache
def load(name: str) -> Schema:
    """One of our schemas by file stem, e.g. `load("alarm_event")`."""
    return parse(_raw(name), name)


@cache
def known_writers() -> dict[bytes, Schema]:
    """Every alarm event writer schema alarmd recognises, by fingerprint."""
    schemas = [load(ALARM_EVENT)]
    for path in sorted((SCHEMA_DIR / "history").glob("*.avsc")):
        schemas.append(parse(json.loads(path.read_text(encoding="utf-8")), path.stem))
    return {schema.fingerprint: schema for schema in schemas}
