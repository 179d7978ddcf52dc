"""Dead-letter messages: the original key, value and headers, plus headers that
say where the message came from and why it was rejected.

They travel through the outbox like every other downstream message, so the
rejection, its error row and the offset commit stay in one unit.
"""

from __future__ import annotations

from consumer.batch import Rejected
from consumer.downstream import downstream_event_id
from db.outbox import EVENT_ID_HEADER, OutboxMessage

HEADER_PREFIX = "alarmd-"
# Detail headers are cut here; the full text is in processing_errors.detail.
MAX_DETAIL_HEADER_BYTES = 1024


def dead_letter_message(rejected: Rejected, topic: str) -> OutboxMessage:
    c = rejected.coordinates
    event_id = downstream_event_id("dead-letter", f"{c.topic}/{c.partition}/{c.offset}")
    added = [
        (EVENT_ID_HEADER, event_id),
        (f"{HEADER_PREFIX}source-topic", c.topic),
        (f"{HEADER_PREFIX}source-partition", str(c.partition)),
        (f"{HEADER_PREFIX}source-offset", str(c.offset)),
        (f"{HEADER_PREFIX}error-stage", rejected.stage),
        (f"{HEADER_PREFIX}error-reason", rejected.reason.value),
    ]
    # Cut on a character boundary, so the header still reads as UTF-8.
    cut = rejected.detail.encode("utf-8")[:MAX_DETAIL_HEADER_BYTES]
    detail = cut.decode("utf-8", "ignore").encode("utf-8")
    headers = [
        *rejected.headers,
        *((name, value.encode("utf-8")) for name, value in added),
        (f"{HEADER_PREFIX}error-detail", detail),
    ]
    return OutboxMessage(
        event_id=event_id,
        topic=topic,
        key=rejected.key,
        payload=rejected.value,
        headers=headers,
    )
