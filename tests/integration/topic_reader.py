"""Reading every record of a topic with a plain consumer, from each partition's
low watermark to its end, committing nothing."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

EVENT_ID_HEADER = "alarmd-event-id"
METADATA_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0
CONSUME_POLL_S = 0.5


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    def header(self, name: str) -> bytes | None:
        """The last value of the named header, or None when absent."""
        values = [value for key, value in self.headers if key == name]
        return values[-1] if values else None

    def text_header(self, name: str) -> str | None:
        value = self.header(name)
        return value.decode("utf-8") if value is not None else None

    @property
    def event_id(self) -> str | None:
        return self.text_header(EVENT_ID_HEADER)


def read_all(bootstrap_servers: str, topic: str) -> list[Record]:
    """Every record now on the topic, in partition and offset order.

    Blocks until each partition has been read to its end; raises AssertionError
    when the topic does not exist or cannot be read within READ_TIMEOUT_S.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"alarmd-tests-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        partitions = metadata.topics[topic]
        assert partitions.error is None, (
            f"topic {topic} cannot be read: {partitions.error}"
        )
        return _read(consumer, topic, sorted(partitions.partitions))
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, partitions: list[int]) -> list[Record]:
    assignment = []
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S
        )
        if high > low:
            assignment.append(TopicPartition(topic, partition, low))
    remaining = {tp.partition for tp in assignment}
    if not remaining:
        return []

    consumer.assign(assignment)
    records: list[Record] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while remaining:
        assert time.monotonic() < deadline, (
            f"reading {topic} did not reach the end of partitions {sorted(remaining)} "
            f"within {READ_TIMEOUT_S:.0f} s"
        )
        for message in consumer.consume(1000, CONSUME_POLL_S):
            error = message.error()
            if error is None:
                records.append(
                    Record(
                        message.partition(),
                        message.offset(),
                        message.key(),
                        message.value(),
                        tuple(message.headers() or ()),
                    )
                )
            elif error.code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())
            else:
                raise KafkaException(error)
    return sorted(records, key=lambda r: (r.partition, r.offset))
