"""Fixtures of the unit tier: the sample file, alarm event records, fake Kafka
messages, and Avro written straight from the specification.

The Avro helpers (`tests/avro_wire.py`) build bytes with fastavro and the
single-object rules of the Avro specification, not with `schemas.encoding`, so a
decoding test does not pass merely because the encoder and the decoder agree
with each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests import avro_wire

# Property tests: about a hundred examples each keeps every one to a few seconds.
# CI runs a fixed sequence of examples, so a run is repeatable; elsewhere each run
# explores new ones. HYPOTHESIS_PROFILE=thorough digs deeper before a release.
settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "ci", parent=settings.get_profile("default"), derandomize=True
)
settings.register_profile("thorough", max_examples=5_000, deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_FILE = REPO_ROOT / ".." / "shared" / "data" / "alarms-sample.jsonl"


@pytest.fixture(scope="session")
def sample_lines() -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line of the shared sample file."""
    text = SAMPLE_FILE.read_text(encoding="utf-8")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    assert lines, f"{SAMPLE_FILE} has no alarm events"
    return lines


@pytest.fixture
def raw_schema() -> Callable[[str], dict[str, Any]]:
    """A fresh, mutable copy of one schema file's JSON, e.g. "alarm_event" or
    "history/alarm_event-v1"."""
    return avro_wire.schema_json


@pytest.fixture
def single_object_header() -> Callable[..., bytes]:
    """C3 01 + the 8-byte little-endian CRC-64-AVRO of the schema's canonical form;
    `named_schemas` holds the types it refers to by name."""
    return avro_wire.single_object_header


@pytest.fixture
def avro_body() -> Callable[[dict[str, Any], dict[str, Any]], bytes]:
    """The bare Avro body of a record, written by fastavro with the given schema."""
    return avro_wire.body


@pytest.fixture
def alarm_event() -> Callable[..., dict[str, Any]]:
    """A complete AlarmEvent record, as the decoder returns it, with changes."""

    def make(**changes: Any) -> dict[str, Any]:
        record = {
            "iactoken": "3100012",
            "alarmText": "BCF FAULTY",
            "eventTime": datetime(2024, 3, 11, 0, 0, 13, 250_001, tzinfo=UTC),
            "scope": "In",
            "final": True,
            "TicketID": "TT-0042",
            "additionalInfo": "Fault reason: BSS synchronisation; nocCategory: Mất liên lạc",
            "bcfID": "BCF-10",
            "nodeName": "site-n010",
            "customer": "customer-a",
            "vendorType": "NOKIA",
            "status": "Active",
            "nodeType": "BCF",
            "alarmNumber": "7600",
            "iacalarmid": "",
            "parentalarm": True,
            "ParentId": "",
            "executionmode": "auto",
            "nodegroup": "RAN-2G",
            "robotUID": "robot-01",
            "attributes": {"severity": "critical", "cellIndex": "3"},
        }
        record.update(changes)
        return record

    return make


class FakeMessage:
    """Stands in for a confluent_kafka.Message: the accessors decode_batch uses."""

    def __init__(
        self,
        value: bytes | None,
        *,
        topic: str = "alarms",
        partition: int = 0,
        offset: int = 0,
        key: bytes | None = b"3100012",
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._value, self._topic, self._partition = value, topic, partition
        self._offset, self._key, self._headers = offset, key, headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> None:
        return None


@pytest.fixture
def kafka_message() -> Callable[..., FakeMessage]:
    """Builds fake consumed messages: kafka_message(value, partition=1, offset=7)."""
    return FakeMessage
