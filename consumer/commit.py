"""Offsets to commit after a batch: per partition, one past the last message."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import TopicPartition


def next_offsets(messages: Iterable) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        offsets[key] = max(offsets.get(key, -1), message.offset() + 1)
    return offsets


def to_commit(
    offsets: dict[tuple[str, int], int], assigned: set[tuple[str, int]]
) -> list[TopicPartition]:
    """The offsets of partitions this instance still owns: a revoked partition's
    offset is never committed, its new owner reprocesses (idempotently)."""
    return [
        TopicPartition(topic, partition, offset)
        for (topic, partition), offset in sorted(offsets.items())
        if (topic, partition) in assigned
    ]
