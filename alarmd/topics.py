"""Creating alarmd's topics and counting what is in them."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from alarmd.broker_refusal import RefusalWatch
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


def create_topics(settings: Settings) -> dict[str, str]:
    """Creates the topics that do not exist; returns {topic: "created" | "exists"}.
    Raises ConfigurationError as soon as the broker refuses the credentials or
    the certificate."""
    refusal = RefusalWatch()
    admin = AdminClient(
        {
            **settings.kafka_common(),
            "logger": librdkafka_logger(),  # type: ignore[dict-item]
            "error_cb": refusal.notice,
        }  # fmt: skip
    )
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
    consumer = Consumer(
        {
            **settings.kafka_common(),
            "group.id": "alarmd-status",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "isolation.level": "read_committed",
            "logger": librdkafka_logger(),
        }
    )
    try:
        metadata = consumer.list_topics(timeout=ADMIN_TIMEOUT_S)
        counts: dict[str, int] = {}
        for topic in topics:
            if topic not in metadata.topics:
                counts[topic] = 0
                continue
            counts[topic] = _count_topic(
                consumer, topic, list(metadata.topics[topic].partitions)
            )
        return counts
    finally:
        consumer.close()


def _count_topic(consumer: Consumer, topic: str, partitions: list[int]) -> int:
    remaining: set[int] = set()
    assignment = []
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S
        )
        if high > low:
            remaining.add(partition)
            assignment.append(TopicPartition(topic, partition, low))
    if not assignment:
        return 0
    consumer.assign(assignment)
    count = 0
    while remaining:
        for message in consumer.consume(10_000, COUNT_POLL_S):
            error = message.error()
            if error is None:
                count += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())
            else:
                raise KafkaException(error)
    consumer.unassign()
    return count
