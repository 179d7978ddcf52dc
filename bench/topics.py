"""Each variant's own copy of the input topic (and of the downstream topics),
created, filled with the same pre-encoded alarms, and deleted afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from alarmd.topics import OUTPUT_MAX_MESSAGE_BYTES
from bench.data import Alarm
from producers.alarm_producer import PRODUCE_DEFAULTS

PARTITIONS = 6
ADMIN_TIMEOUT_S = 30.0
FLUSH_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class TopicSet:
    """The topics of one variant run, named after it."""

    base: str

    @property
    def alarms(self) -> str:
        return f"{self.base}.alarms"

    @property
    def predictive(self) -> str:
        return f"{self.base}.predictive"

    @property
    def iac1(self) -> str:
        return f"{self.base}.iac1"

    @property
    def notification(self) -> str:
        return f"{self.base}.notification"

    @property
    def dead_letter(self) -> str:
        return f"{self.base}.alarms.dlq"

    def all(self) -> list[str]:
        return [self.alarms, self.predictive, self.iac1, self.notification,
                self.dead_letter]  # fmt: skip


class Broker:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._admin = AdminClient({"bootstrap.servers": bootstrap_servers})

    def create(self, topics: TopicSet) -> None:
        wanted = [
            NewTopic(name, num_partitions=PARTITIONS, replication_factor=1,
                     config={} if name == topics.alarms
                     else {"max.message.bytes": OUTPUT_MAX_MESSAGE_BYTES})
            for name in topics.all()
        ]  # fmt: skip
        for future in self._admin.create_topics(wanted).values():
            future.result(timeout=ADMIN_TIMEOUT_S)

    def delete(self, topics: TopicSet) -> None:
        for future in self._admin.delete_topics(topics.all()).values():
            with contextlib.suppress(KafkaException):  # already gone
                future.result(timeout=ADMIN_TIMEOUT_S)

    def produce(
        self,
        topic: str,
        alarms: Iterable[Alarm],
        on_delivery: Callable | None = None,
        pace: Callable[[int], None] | None = None,
    ) -> int:
        """Produces the alarms keyed by iactoken, as collectors do; returns how
        many. `pace(i)` is called before the i-th one, to hold a rate."""
        producer = Producer(
            {**PRODUCE_DEFAULTS, "bootstrap.servers": self.bootstrap_servers}
        )
        count = 0
        for count, alarm in enumerate(alarms, start=1):
            if pace is not None:
                pace(count - 1)
            while True:
                try:
                    producer.produce(
                        topic, alarm.value, alarm.key, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    producer.poll(0.2)
            producer.poll(0)
        left = producer.flush(FLUSH_TIMEOUT_S)
        if left:
            raise RuntimeError(f"{left} alarms still queued for {topic} after "
                               f"{FLUSH_TIMEOUT_S:.0f} s; is the broker up?")  # fmt: skip
        return count
