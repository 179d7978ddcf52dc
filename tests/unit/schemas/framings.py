"""Each input framing of the unit tier's property tests: how a producer frames an
Avro body written with one of our writer schemas, and the decoder that reads it.
The Confluent one registers the writer in confluent-kafka's in-memory registry."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient

import schemas
from schemas.decoding import ConfluentDecoder, SchemalessDecoder, SingleObjectDecoder
from tests.avro_wire import body, confluent_frame, schema_json, single_object_header

ENCODINGS = ["single-object", "confluent", "schemaless"]


class Wire:
    """One encoding: how a producer frames a body, and the decoder that reads it."""

    def __init__(self, encoding_name: str, writer_name: str) -> None:
        self.writer = schema_json(writer_name)
        if encoding_name == "single-object":
            self.decode = SingleObjectDecoder()
            self.header = single_object_header(self.writer)
        elif encoding_name == "schemaless":
            self.decode = SchemalessDecoder(schemas.parse(self.writer))
            self.header = b""
        else:
            registry = SchemaRegistryClient.new_client({"url": "mock://"})
            text = RegistrySchema(json.dumps(self.writer), "AVRO")
            self.schema_id = registry.register_schema("alarms-value", text)
            self.decode = ConfluentDecoder(registry)
            self.header = confluent_frame(self.schema_id, b"")

    def frame(self, record: dict[str, Any]) -> bytes:
        return self.header + body(self.writer, record)


@cache
def wire(encoding_name: str, writer_name: str = "alarm_event") -> Wire:
    return Wire(encoding_name, writer_name)
