"""`notification.dlq`: requests that can never be emailed, with where they came
from and why, in the same header shape as the daemon's `alarms.dlq`."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewTopic

from alarmd import logs
from alarmd.errors import TransientError
from alarmd.topics import create_missing
from consumer.dead_letter import HEADER_PREFIX, MAX_DETAIL_HEADER_BYTES
from db.outbox import EVENT_ID_HEADER
from notifier.records import Failed

log = logs.get(__name__)

FLUSH_SLICE_S = 0.5


class DeadLetterPublisher:
    def __init__(self, config: dict[str, Any], topic: str, timeout_s: float) -> None:
        self.topic = topic
        self._config = config
        self._timeout_s = timeout_s
        self._producer = Producer(
            {
                **config,
                "enable.idempotence": "true",
                "acks": "all",
                "delivery.timeout.ms": str(int(timeout_s * 1000)),
            }
        )

    def ensure_topic(self, partitions: int, replication_factor: int) -> None:
        """Creates the topic when it does not exist; blocks for the broker.
        Raises ConfigurationError when the broker refuses the connection."""
        wanted = [NewTopic(self.topic, partitions, replication_factor)]
        if create_missing(self._config, wanted)[self.topic] == "created":
            log.info("topic", topic=self.topic, outcome="created")

    def publish(self, failed: list[Failed]) -> None:
        """Sends the requests and blocks until the broker has all of them; raises
        TransientError("dead_letter") otherwise (they may be sent again)."""
        errors: list[KafkaError] = []
        pending = len(failed)

        def on_delivery(err: KafkaError | None, _msg) -> None:
            nonlocal pending
            pending -= 1
            if err is not None:
                errors.append(err)

        for f in failed:
            self._producer.produce(
                self.topic,
                key=f.key,
                value=f.payload,
                headers=_headers(f),
                on_delivery=on_delivery,
            )
        waited = 0.0
        while pending > 0 and waited < self._timeout_s:
            self._producer.flush(FLUSH_SLICE_S)
            waited += FLUSH_SLICE_S
        if errors or pending > 0:
            first = errors[0].str() if errors else "delivery timed out"
            raise TransientError(
                "dead_letter",
                f"{len(errors) + max(pending, 0)} of {len(failed)} dead letters not "
                f"delivered to {self.topic}: {first}",
            )

    def close(self, timeout_s: float) -> int:
        return self._producer.flush(timeout_s)


def _headers(f: Failed) -> list[tuple[str, str | bytes | None]]:
    c = f.coordinates
    own = [name for name, _ in f.headers]
    added = [
        (f"{HEADER_PREFIX}source-topic", c.topic),
        (f"{HEADER_PREFIX}source-partition", str(c.partition)),
        (f"{HEADER_PREFIX}source-offset", str(c.offset)),
        (f"{HEADER_PREFIX}error-stage", "notify"),
        (f"{HEADER_PREFIX}error-reason", f.reason),
    ]
    headers: list[tuple[str, str | bytes | None]] = list(f.headers)
    if EVENT_ID_HEADER not in own:
        headers.append((EVENT_ID_HEADER, f.event_id.encode("utf-8")))
    headers += [(name, value.encode("utf-8")) for name, value in added]
    detail = f.detail.encode("utf-8")[:MAX_DETAIL_HEADER_BYTES]
    headers.append((f"{HEADER_PREFIX}error-detail", detail))
    return headers
