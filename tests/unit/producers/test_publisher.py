"""producers/publisher.py: a delivery counts every acknowledgement the broker
sent, even when its wait starts after the delivery timeout."""

from __future__ import annotations

import time
from functools import partial

from producers.publisher import Delivery


class UnservedAcksProducer:
    """Has every message acknowledged, the callbacks queued until a poll serves
    them, as librdkafka does."""

    def __init__(self) -> None:
        self._queued: list = []

    def produce(self, on_delivery) -> None:
        self._queued.append(on_delivery)

    def poll(self, _timeout_s: float) -> int:
        served, self._queued = self._queued, []
        for on_delivery in served:
            on_delivery(None, None)
        return len(served)


def test_acknowledgements_not_yet_served_count_when_the_wait_starts_late():
    """The rows' batch waited longer than the delivery timeout before its turn
    (a database outage held the daemon): the broker's acknowledgements, queued
    all along, are served rather than the rows reported undelivered and sent
    again."""
    producer = UnservedAcksProducer()
    delivery = Delivery(producer, time.monotonic() - 1.0, 2)  # type: ignore[arg-type]
    for row_id in (1, 2):
        producer.produce(partial(delivery.on_delivery, row_id, "predictive"))

    assert delivery.wait() == [1, 2]
