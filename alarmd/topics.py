"""Creating alarmd's topics, and reading back what is in them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from alarmd.broker_refusal import RefusalWatch
from alarmd.errors import TransientError
from alarmd.headers import read_headers
from alarmd.logs import librdkafka_logger
from alarmd.settings import INPUT_TOPIC_MAX_MESSAGE_BYTES, Settings

ADMIN_TIMEOUT_S = 30.0
# Every topic alarmd writes must accept anything the input topic accepted plus
# what alarmd adds (a downstream message carries the whole alarm; a dead letter
# carries the original bytes and its error headers): 2 MiB above the input
# topic's limit leaves ample room.
OUTPUT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
COUNT_POLL_S = 1.0
ADMIN_POLL_S = 0.5
# Longest wait for the next record while reading a topic to its end.
READ_TIMEOUT_S = 60.0


def create_topics(settings: Settings) -> dict[str, str]:
    """Creates the topics that do not exist; returns {topic: "created" | "exists"}."""
    wanted = [
        NewTopic(
            topic,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config={
                "max.message.bytes": str(
                    INPUT_TOPIC_MAX_MESSAGE_BYTES
                    if topic == settings.input_topic
                    else OUTPUT_MAX_MESSAGE_BYTES
                )
            },  # fmt: skip
        )
        for topic in [*settings.all_topics(), *settings.sidecar_topics()]
    ]
    return create_missing(
        {**settings.kafka_common(), "logger": librdkafka_logger()}, wanted
    )


def create_missing(config: dict[str, Any], wanted: list[NewTopic]) -> dict[str, str]:
    """Creates those of `wanted` that do not exist, with an admin client of
    `config`; returns {topic: "created" | "exists"}. Blocks for the broker, at
    most ADMIN_TIMEOUT_S a topic. Raises ConfigurationError as soon as the
    broker refuses the credentials or the certificate."""
    refusal = RefusalWatch()
    admin = AdminClient({**config, "error_cb": refusal.notice})
    outcome: dict[str, str] = {}
    for topic, future in admin.create_topics(
        wanted, operation_timeout=ADMIN_TIMEOUT_S
    ).items():
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while not future.done() and time.monotonic() < deadline:
            admin.poll(ADMIN_POLL_S)  # serves the error callback
            refusal.raise_if_refused()
        try:
            future.result(timeout=max(deadline - time.monotonic(), 0))
            outcome[topic] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[topic] = "exists"
    return outcome


def count_records(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Counts the records in each topic by reading it, not by subtracting offsets:
    transaction markers and compaction leave gaps that offsets would count.

    Reads with its own throw-away consumer and commits nothing.
    """
    with reading_consumer(settings.kafka_common(), "alarmd-status") as consumer:
        return {
            topic: sum(1 for _ in read_messages(consumer, topic)) for topic in topics
        }


@dataclass(frozen=True)
class TopicRecord:
    """One record read back from a topic, with everything it carried."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    @classmethod
    def of(cls, message: Any) -> TopicRecord:
        kind, timestamp = message.timestamp()
        return cls(
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
            headers=tuple(read_headers(message)[0]),
            topic=message.topic(),
            timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
        )

    def header(self, name: str) -> bytes | None:
        """The last value of the named header, or None when absent."""
        values = [value for key, value in self.headers if key == name]
        return values[-1] if values else None

    def text_header(self, name: str) -> str | None:
        value = self.header(name)
        return value.decode("utf-8", "replace") if value is not None else None


@contextlib.contextmanager
def reading_consumer(config: dict[str, Any], group_id: str) -> Iterator[Consumer]:
    """A consumer that only reads committed records to each partition's end and
    never commits; closed on leaving the block."""
    consumer = Consumer(
        {
            **config,
            "group.id": group_id,
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "isolation.level": "read_committed",
            "logger": librdkafka_logger(),
        }
    )
    try:
        yield consumer
    finally:
        consumer.close()


def read_messages(
    consumer: Consumer, topic: str, timeout_s: float = READ_TIMEOUT_S
) -> Iterator[Any]:
    """Yields each message of the topic, from every partition's low watermark to
    its end as it is when reading starts; nothing when the topic does not exist.
    Raises TransientError when `timeout_s` passes without a message while the end
    is not reached, and KafkaException for any other consume error."""
    metadata = consumer.list_topics(topic, timeout=ADMIN_TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return
    assignment = []
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S
        )
        if high > low:
            assignment.append(TopicPartition(topic, partition, low))
    remaining = {tp.partition for tp in assignment}
    if not remaining:
        return

    consumer.assign(assignment)
    deadline = time.monotonic() + timeout_s
    while remaining:
        if time.monotonic() > deadline:
            raise TransientError(
                "read",
                f"reading {topic} stalled for {timeout_s:.0f} s before the end of "
                f"partitions {sorted(remaining)}",
            )
        for message in consumer.consume(10_000, COUNT_POLL_S):
            deadline = time.monotonic() + timeout_s
            error = message.error()
            if error is None:
                yield message
            elif error.code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())
            else:
                raise KafkaException(error)
    consumer.unassign()
