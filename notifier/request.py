"""Notification requests as the daemon writes them: Avro single-object encoded
with `schemas/notification_request.avsc`, decoded once into a frozen value."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fastavro

import schemas
from notifier.errors import FailureReason, PermanentFailure

# Fields a grouping key may name, as they are spelt in the schema.
GROUPABLE_FIELDS = ("customer", "alarmText", "nodegroup", "nodeName", "iactoken")


@dataclass(frozen=True, slots=True)
class Coordinates:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class NotificationRequest:
    event_id: str
    alarm_event_id: str
    ticket_id: str
    alarm_text: str
    node_name: str
    iactoken: str
    event_time: datetime
    customer: str
    nodegroup: str
    requested_at: datetime

    def field(self, name: str) -> str:
        """A groupable field by its schema name, e.g. `field("alarmText")`."""
        return {
            "customer": self.customer,
            "alarmText": self.alarm_text,
            "nodegroup": self.nodegroup,
            "nodeName": self.node_name,
            "iactoken": self.iactoken,
        }[name]


@dataclass(frozen=True, slots=True)
class Received:
    """A decoded request with the Kafka message it came in."""

    request: NotificationRequest
    coordinates: Coordinates
    key: bytes | None
    payload: bytes
    headers: list[tuple[str, bytes]]


def decode(payload: bytes | None) -> NotificationRequest:
    """Decodes one `notification` value; raises PermanentFailure(invalid_request)."""
    schema = schemas.load(schemas.NOTIFICATION_REQUEST)
    if not payload or not payload.startswith(schema.header):
        raise PermanentFailure(
            FailureReason.INVALID_REQUEST,
            f"value of {len(payload or b'')} bytes does not start with the "
            "single-object header of NotificationRequest; is the producer alarmd?",
        )
    try:
        record: dict[str, Any] = fastavro.schemaless_reader(  # type: ignore[assignment]
            io.BytesIO(payload[len(schema.header) :]), schema.parsed, None
        )
    except Exception as exc:  # noqa: BLE001 - fastavro raises many kinds
        raise PermanentFailure(
            FailureReason.INVALID_REQUEST, f"Avro body does not decode: {exc}"
        ) from exc
    return NotificationRequest(
        event_id=record["eventId"],
        alarm_event_id=record["alarmEventId"],
        ticket_id=record["ticketId"],
        alarm_text=record["alarmText"],
        node_name=record["nodeName"],
        iactoken=record["iactoken"],
        event_time=record["eventTime"],
        customer=record["customer"],
        nodegroup=record["nodegroup"],
        requested_at=record["requestedAt"],
    )
