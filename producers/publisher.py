"""Publishes outbox rows with an idempotent producer and waits for the broker.

`publish` returns only when every row is acknowledged, or raises
`PublishIncomplete` naming the rows that were, so the caller marks exactly the
rows the broker has and sends only the others again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

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
        """Sends the rows and blocks until the broker has acknowledged all of them.

        Returns their ids. Raises PublishIncomplete when any was not delivered
        within the delivery timeout: those rows stay unpublished and may be sent
        again, and the exception lists the ids that were delivered.
        """
        failures: list[KafkaError] = []
        delivered: list[int] = []
        pending = 0

        def on_delivery(row_id: int, topic: str):
            def callback(err: KafkaError | None, _msg) -> None:
                nonlocal pending
                pending -= 1
                if err is None:
                    delivered.append(row_id)
                    metrics.PUBLISHED.labels(topic=topic).inc()
                else:
                    failures.append(err)

            return callback

        for row in rows:
            message = row.message
            pending += 1
            self._produce(
                topic=message.topic,
                key=message.key,
                value=message.payload,
                headers=message.headers,
                on_delivery=on_delivery(row.id, message.topic),
            )

        deadline = time.monotonic() + self._timeout_s + FLUSH_SLICE_S
        while pending and time.monotonic() < deadline:
            self._producer.flush(FLUSH_SLICE_S)

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

    def _produce(self, **kwargs) -> None:
        # A full local queue means the broker is slow: serve callbacks and retry.
        while True:
            try:
                self._producer.produce(**kwargs)
                self._producer.poll(0)
                return
            except BufferError:
                self._producer.poll(FLUSH_SLICE_S)

    def close(self, timeout_s: float) -> int:
        """Flushes what is queued; returns how many messages are still queued."""
        return self._producer.flush(timeout_s)
