"""Reading every record of a topic with a plain consumer, from each partition's
low watermark to its end, committing nothing (alarmd.topics does the reading)."""

from __future__ import annotations

import uuid

from alarmd.errors import TransientError
from alarmd.topics import TopicRecord, read_messages, reading_consumer

EVENT_ID_HEADER = "alarmd-event-id"
METADATA_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0


class Record(TopicRecord):
    @property
    def event_id(self) -> str | None:
        return self.text_header(EVENT_ID_HEADER)


def read_all(bootstrap_servers: str, topic: str) -> list[Record]:
    """Every record now on the topic, in partition and offset order.

    Blocks until each partition has been read to its end; raises AssertionError
    when the topic does not exist or reading it stalls for READ_TIMEOUT_S.
    """
    config = {"bootstrap.servers": bootstrap_servers}
    group = f"alarmd-tests-reader-{uuid.uuid4().hex}"
    with reading_consumer(config, group) as consumer:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        partitions = metadata.topics[topic]
        assert partitions.error is None, (
            f"topic {topic} cannot be read: {partitions.error}"
        )
        try:
            records = [
                Record.of(m) for m in read_messages(consumer, topic, READ_TIMEOUT_S)
            ]
        except TransientError as exc:
            raise AssertionError(exc.detail) from exc
    return sorted(records, key=lambda r: (r.partition, r.offset))
