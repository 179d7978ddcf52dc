"""What a stored batch yields downstream: predictive requests, iAC1 documents and
notification requests, as outbox messages.

Every message is keyed by iactoken and single-object encoded with our schemas.
Its event id is derived from what it is about, never from when it was made, so a
message written again after a crash has the id it had the first time.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import schemas
from db.events import PREDICTIVE_TASK
from db.outbox import EVENT_ID_HEADER, OutboxMessage
from schemas.encoding import AroundField, schemaless, single_object

# Namespace of alarmd's downstream event ids (uuid5 over what the event is about).
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1c1e-4d2a-5b7e-9a53-a1a4d0000001")
CYCLE_STATE_STARTED = "Cycle Start"


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
# RFC 9562, section 5.5: a name-based UUID is the first 16 bytes of SHA-1 over
# namespace and name, with its version (5) and variant (10) bits set.
_VERSION_BITS = (0xF000 << 64) | (0xC000 << 48)
_VERSION_5 = (0x5000 << 64) | (0x8000 << 48)


def downstream_event_id(kind: str, subject: str) -> str:
    """`str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{kind}/{subject}"))`, the same
    text, made without a UUID object: uuid.uuid5 builds one for every call,
    which costs twice the hashing, and this runs for every downstream message
    (the tests hold it to uuid.uuid5)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{kind}/{subject}".encode()).digest()
    text = f"{int.from_bytes(digest[:16]) & ~_VERSION_BITS | _VERSION_5:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class CyclePrelude:
    """What a cycle's two messages share, known before the cycle's id is: their
    event ids and the alarm, encoded once."""

    predictive_id: str
    iac1_id: str
    alarm: bytes


@dataclass(frozen=True)
class DownstreamTopics:
    predictive: str
    iac1: str
    notification: str


class DownstreamWriter:
    """Builds the downstream messages for new cycles and new events."""

    def __init__(self, topics: DownstreamTopics, email_alarm_types: list[str]) -> None:
        self._topics = topics
        self._email_types = frozenset(email_alarm_types)
        # A cycle's two messages carry the same alarm: it is encoded once.
        self._alarm = schemas.load(schemas.ALARM_EVENT)
        self._predictive = AroundField(schemas.PREDICTIVE_REQUEST, "alarm")
        self._iac1 = AroundField(schemas.IAC1_ALARM, "alarm")
        self._notification = schemas.load(schemas.NOTIFICATION_REQUEST)

    def wants_email(self, record: dict[str, Any]) -> bool:
        return record["alarmText"] in self._email_types

    def cycle_prelude(
        self, record: dict[str, Any], encoded: bytes | None = None
    ) -> CyclePrelude:
        """`encoded` is the record's Avro body under our AlarmEvent schema,
        when the message brought it (`schemas.decoding.own_body`)."""
        token = record["iactoken"]
        return CyclePrelude(
            downstream_event_id("predictive", token),
            downstream_event_id("iac1", token),
            encoded if encoded is not None else schemaless(self._alarm, record),
        )

    def for_cycle(
        self,
        record: dict[str, Any],
        alarm_event_id: str,
        cycle_id: int,
        started_at: datetime,
        prelude: CyclePrelude | None = None,
    ) -> list[OutboxMessage]:
        """The predictive request and the iAC1 document of a cycle just started;
        `prelude` is `cycle_prelude(record)`, when it was made beforehand."""
        token = record["iactoken"]
        prelude = prelude or self.cycle_prelude(record)
        predictive_id, iac1_id, alarm = (
            prelude.predictive_id, prelude.iac1_id, prelude.alarm
        )  # fmt: skip
        predictive = {
            "eventId": predictive_id,
            "iactoken": token,
            "cycleId": cycle_id,
            "task": PREDICTIVE_TASK,
            "alarm": record,
            "requestedAt": started_at,
        }
        iac1 = {
            "eventId": iac1_id,
            "cycleId": cycle_id,
            "cycleState": CYCLE_STATE_STARTED,
            "cycleStartedAt": started_at,
            "alarmEventId": alarm_event_id,
            "alarm": record,
        }
        return [
            _message(self._topics.predictive, predictive_id, token, self._predictive(predictive, alarm)),
            _message(self._topics.iac1, iac1_id, token, self._iac1(iac1, alarm)),
        ]  # fmt: skip

    def for_email(self, record: dict[str, Any], alarm_event_id: str) -> OutboxMessage:
        """The notification request of a new event whose alarmText is listed."""
        request_id = downstream_event_id("notification", alarm_event_id)
        request = {
            "eventId": request_id,
            "alarmEventId": alarm_event_id,
            "ticketId": record["TicketID"],
            "alarmText": record["alarmText"],
            "nodeName": record["nodeName"],
            "iactoken": record["iactoken"],
            "eventTime": record["eventTime"],
            "customer": record["customer"],
            "nodegroup": record["nodegroup"],
            "requestedAt": datetime.now(UTC),
        }
        return _message(
            self._topics.notification,
            request_id,
            record["iactoken"],
            single_object(self._notification, request),
        )


def _message(topic: str, event_id: str, key: str, payload: bytes) -> OutboxMessage:
    return OutboxMessage(
        event_id=event_id,
        topic=topic,
        key=key.encode("utf-8"),
        payload=payload,
        headers=[(EVENT_ID_HEADER, event_id.encode("ascii"))],
    )
