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
SOURCE_TOPIC_HEADER = f"{HEADER_PREFIX}source-topic"
SOURCE_PARTITION_HEADER = f"{HEADER_PREFIX}source-partition"
SOURCE_OFFSET_HEADER = f"{HEADER_PREFIX}source-offset"
ERROR_STAGE_HEADER = f"{HEADER_PREFIX}error-stage"
ERROR_REASON_HEADER = f"{HEADER_PREFIX}error-reason"
ERROR_DETAIL_HEADER = f"{HEADER_PREFIX}error-detail"
# Headers a dead letter gains on top of the original's; a replay drops them.
ADDED_HEADER_PREFIXES = (f"{HEADER_PREFIX}source-", f"{HEADER_PREFIX}error-")
# Detail headers are cut here; the full text is in processing_errors.detail.
MAX_DETAIL_HEADER_BYTES = 1024


def dead_letter_message(rejected: Rejected, topic: str) -> OutboxMessage:
    c = rejected.coordinates
    event_id = downstream_event_id("dead-letter", f"{c.topic}/{c.partition}/{c.offset}")
    added = [
        (EVENT_ID_HEADER, event_id),
        (SOURCE_TOPIC_HEADER, c.topic),
        (SOURCE_PARTITION_HEADER, str(c.partition)),
        (SOURCE_OFFSET_HEADER, str(c.offset)),
        (ERROR_STAGE_HEADER, rejected.stage),
        (ERROR_REASON_HEADER, rejected.reason.value),
    ]
    # Cut on a character boundary, so the header still reads as UTF-8.
    cut = rejected.detail.encode("utf-8")[:MAX_DETAIL_HEADER_BYTES]
    detail = cut.decode("utf-8", "ignore").encode("utf-8")
    headers = [
        *rejected.headers,
        *((name, value.encode("utf-8")) for name, value in added),
        (ERROR_DETAIL_HEADER, detail),
    ]
    return OutboxMessage(
        event_id=event_id,
        topic=topic,
        key=rejected.key,
        payload=rejected.value,
        headers=headers,
    )
