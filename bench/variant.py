"""What every variant gets and what it hands back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.data import Alarm, Expected
from bench.database import Database
from bench.meter import Reading
from bench.topics import Broker

# A variant that makes no progress for this long has failed.
STALL_LIMIT_S = 120.0
POLL_INTERVAL_S = 0.1


@dataclass
class Context:
    broker: Broker
    database: Database
    alarms: list[Alarm]
    expected: Expected
    email_alarm_types: list[str]
    batch_max_messages: int
    root: Path
    work_dir: Path


@dataclass
class Outcome:
    variant: str
    alarms: int
    window: Reading
    failures: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def alarms_per_s(self) -> float:
        return self.alarms / self.window.wall_s


class GroupProgress:
    """Reads a consumer group's committed offsets without joining it: a worker
    commits only what it has stored (and published), so committed offsets at
    the end of every partition mean the work is done."""

    def __init__(self, bootstrap_servers: str, group: str, topic: str) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap_servers,
                                   "group.id": group, "enable.auto.commit": "false"})  # fmt: skip
        metadata = self._consumer.list_topics(topic, timeout=30)
        self._partitions = [
            TopicPartition(topic, p) for p in metadata.topics[topic].partitions
        ]
        self._ends = {
            p.partition: self._consumer.get_watermark_offsets(p, timeout=30)[1]
            for p in self._partitions
        }  # fmt: skip

    def committed(self) -> int:
        """Messages committed so far, over all partitions."""
        return sum(
            max(p.offset, 0)
            for p in self._consumer.committed(self._partitions, timeout=30)
        )

    def wait_done(self, on_tick: Callable[[], str | None] = lambda: None) -> str | None:
        """Blocks until every partition is committed to its end; returns None, or
        a sentence when the worker stalled or `on_tick` reports a failure."""
        total = sum(self._ends.values())
        last, last_change = -1, time.monotonic()
        while True:
            problem = on_tick()
            if problem:
                return problem
            done = self.committed()
            if done >= total:
                return None
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > STALL_LIMIT_S:
                return (f"stalled at {done} of {total} committed messages for "
                        f"{STALL_LIMIT_S:.0f} s")  # fmt: skip
            time.sleep(POLL_INTERVAL_S)

    def close(self) -> None:
        self._consumer.close()


def store_gates(
    database: Database,
    expected: Expected,
    outbox: str = "published",
    schema: str = "public",
) -> list[str]:
    """The correctness gates: one row per distinct event, one cycle and task per
    expected cycle, and, by `outbox`, one outbox row per downstream message
    ("written"), none pending and no error row ("published"), or no outbox at
    all ("none")."""  # fmt: skip
    counts = database.counts(schema)
    wanted = {
        "alarm_events": expected.distinct_events,
        "alarm_cycles": expected.cycles,
        "cycle_tasks": expected.cycles,
    }
    if outbox != "none":
        wanted["outbox"] = expected.outbox_rows
    if outbox == "published":
        wanted["outbox_pending"] = 0
        wanted["processing_errors"] = 0
    return [
        f"{table}: {counts[table]} rows, expected {rows}"
        for table, rows in wanted.items()
        if counts[table] != rows
    ]
