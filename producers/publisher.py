"""Publishes outbox rows with an idempotent producer and waits for the broker.

`send` hands rows to the producer and returns a `Delivery` at once, so the
caller can go on while librdkafka delivers them. `Delivery.wait` (and
`publish`, which sends and waits) returns only when every row is acknowledged,
or raises `PublishIncomplete` naming the rows that were, so the caller marks
exactly the rows the broker has and sends only the others again.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Producer

from alarmd import metrics
from alarmd.errors import TransientError
from db.outbox import OutboxRow

PRODUCER_DEFAULTS = {
    "enable.idempotence": "true",
    "acks": "all",
    "linger.ms": "5",
    "compression.type": "lz4",
    # A dead-lettered message may be as large as anything the input accepted.
    "message.max.bytes": "10485760",
}
FLUSH_SLICE_S = 0.5


class PublishIncomplete(TransientError):
    """Some rows were not delivered in time; `delivered` holds the ids that were."""

    def __init__(self, detail: str, delivered: list[int]) -> None:
        super().__init__("publish", detail)
        self.delivered = delivered


class Delivery:
    """The rows of one `OutboxPublisher.send`, on their way to the broker.

    librdkafka's own threads deliver them while the caller goes on; `wait`
    collects the acknowledgements. The rows may be sent from one thread and
    waited for from another, while a third batch's rows are being sent: the
    counts are kept under a lock, since acknowledgements are served on whichever
    thread polls the producer.
    """

    def __init__(self, producer: Producer, deadline: float, rows: int) -> None:
        self._producer = producer
        self._deadline = deadline
        self._lock = threading.Lock()
        self.pending = rows
        self._delivered: list[int] = []
        self._failures: list[KafkaError] = []
        self._per_topic: Counter[str] = Counter()

    def on_delivery(
        self, row_id: int, topic: str, err: KafkaError | None, _msg
    ) -> None:
        with self._lock:
            self.pending -= 1
            if err is None:
                self._delivered.append(row_id)
                self._per_topic[topic] += 1
            else:
                self._failures.append(err)

    @property
    def answered(self) -> bool:
        """True when the broker has answered for every row (callbacks served)."""
        return self.pending == 0

    def wait(self) -> list[int]:
        """Blocks until the broker has acknowledged every row; returns their ids.

        Raises PublishIncomplete when any was not delivered within the delivery
        timeout: those rows stay unpublished and may be sent again, and the
        exception lists the ids that were delivered.
        """
        # Polling serves acknowledgements as they come; flushing would also wait
        # for rows sent after these, by the next batch.
        while self.pending and (left := self._deadline - time.monotonic()) > 0:
            self._producer.poll(min(left, FLUSH_SLICE_S))
        if self.pending:
            # Waited for after its deadline (the caller was held up): answers
            # the broker sent meanwhile are queued, not yet served.
            self._producer.poll(0)
        for topic, count in self._per_topic.items():
            metrics.PUBLISHED.labels(topic=topic).inc(count)
        self._per_topic.clear()

        failures, pending, delivered = self._failures, self.pending, self._delivered
        if failures or pending:
            first = failures[0] if failures else None
            if first is not None and first.fatal():
                raise KafkaException(first)
            raise PublishIncomplete(
                f"{len(failures) + pending} of {len(delivered) + len(failures) + pending} "
                f"outbox messages not delivered"
                + (f": {first.str()}" if first is not None else " in time"),
                delivered,
            )
        return delivered


class OutboxPublisher:
    def __init__(self, config: dict[str, str], delivery_timeout_s: float) -> None:
        self._timeout_s = delivery_timeout_s
        self._producer = Producer(
            {
                **PRODUCER_DEFAULTS,
                "delivery.timeout.ms": str(int(delivery_timeout_s * 1000)),
                **config,
            }
        )

    def publish(self, rows: Iterable[OutboxRow]) -> list[int]:
        """Sends the rows and blocks until the broker has acknowledged all of them;
        `send(rows).wait()`."""
        return self.send(rows).wait()

    def send(self, rows: Iterable[OutboxRow]) -> Delivery:
        """Hands the rows to the producer and returns without waiting for the
        broker, unless the producer's local queue is full."""
        rows = list(rows)
        delivery = Delivery(
            self._producer,
            time.monotonic() + self._timeout_s + FLUSH_SLICE_S,
            len(rows),
        )
        for row in rows:
            message = row.message
            self._produce(
                topic=message.topic,
                key=message.key,
                value=message.payload,
                headers=message.headers,
                on_delivery=partial(delivery.on_delivery, row.id, message.topic),
            )
        return delivery

    def _produce(self, **kwargs) -> None:
        # A full local queue means the broker is slow: serve callbacks and retry.
        while True:
            try:
                self._producer.produce(**kwargs)
                return
            except BufferError:
                self._producer.poll(FLUSH_SLICE_S)

    def serve(self) -> None:
        """Serves the delivery callbacks due, without waiting."""
        self._producer.poll(0)

    def close(self, timeout_s: float) -> int:
        """Flushes what is queued; returns how many messages are still queued."""
        return self._producer.flush(timeout_s)
