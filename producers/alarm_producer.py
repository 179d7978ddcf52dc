"""`alarmd produce`: publishes a JSON-lines file of alarm events to `alarms`.

Each line is mapped onto the AlarmEvent schema (extras into `attributes`),
framed in the chosen encoding and keyed by iactoken. A line that cannot be
mapped is reported with its line number and skipped; the exit code says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from tqdm import tqdm

import schemas
from alarmd.broker_refusal import RefusalWatch
from alarmd.logs import librdkafka_logger
from schemas import encoding
from schemas.mapping import MappingError, json_to_event

PRODUCE_DEFAULTS = {"enable.idempotence": "true", "acks": "all", "linger.ms": "20"}
FLUSH_TIMEOUT_S = 60.0
FLUSH_POLL_S = 0.5


@dataclass
class ProduceReport:
    produced: int = 0
    rejected: int = 0
    failed: int = 0


def read_events(path: Path) -> Iterator[tuple[int, dict[str, Any] | MappingError]]:
    """(line number, record or the reason it cannot be one) per non-blank line."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, json_to_event(json.loads(line))
            except json.JSONDecodeError as exc:
                yield number, MappingError(f"not JSON: {exc}")
            except MappingError as exc:
                yield number, exc


class Framer:
    """Encodes records in one of the input framings."""

    def __init__(
        self, encoding_name: str, registry: Any = None, subject: str = ""
    ) -> None:
        self._schema = schemas.load(schemas.ALARM_EVENT)
        self._name = encoding_name
        self._schema_id = (
            encoding.register(registry, subject, self._schema)
            if encoding_name == "confluent"
            else 0
        )

    def __call__(self, record: dict[str, Any]) -> bytes:
        if self._name == "single-object":
            return encoding.single_object(self._schema, record)
        if self._name == "schemaless":
            return encoding.schemaless(self._schema, record)
        return encoding.confluent(self._schema_id, self._schema, record)


def produce_file(
    path: Path,
    topic: str,
    kafka_config: dict[str, str],
    frame: Framer,
    progress: bool = True,
) -> tuple[ProduceReport, list[str]]:
    """Produces every mappable line; returns the counts and one sentence per
    problem (line number and reason). Raises ConfigurationError as soon as the
    broker refuses the credentials or the certificate."""
    total = sum(1 for line in path.open(encoding="utf-8") if line.strip())
    refusal = RefusalWatch()
    producer = Producer(
        {
            **PRODUCE_DEFAULTS,
            **kafka_config,
            "logger": librdkafka_logger(),
            "error_cb": refusal.notice,
        }  # fmt: skip
    )
    report = ProduceReport()
    problems: list[str] = []

    def delivered(err, _msg) -> None:
        if err is None:
            report.produced += 1
        else:
            report.failed += 1
            if len(problems) < 20:
                problems.append(f"delivery failed: {err.str()}")

    with tqdm(total=total, unit="event", disable=not progress, desc=topic) as bar:
        for number, item in read_events(path):
            bar.update(1)
            if isinstance(item, MappingError):
                report.rejected += 1
                problems.append(f"{path}:{number}: {item}")
                continue
            value = frame(item)
            while True:
                try:
                    producer.produce(topic, value=value, key=item["iactoken"].encode(),
                                     on_delivery=delivered)  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.5)
            producer.poll(0)
            refusal.raise_if_refused()
    deadline = time.monotonic() + FLUSH_TIMEOUT_S
    while len(producer) and time.monotonic() < deadline:
        producer.flush(FLUSH_POLL_S)
        refusal.raise_if_refused()
    left = len(producer)
    if left:
        report.failed += left
        problems.append(f"{left} messages still queued after {FLUSH_TIMEOUT_S:.0f} s")
    return report, problems
