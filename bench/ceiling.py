"""Variant A, the ceiling: consume in batches and decode, with the parsed
schema reused; no database, no produce. Nothing can carry alarms faster than
this on the same client and decoder."""

from __future__ import annotations

import os
import time

from confluent_kafka import Consumer

from bench.meter import Meter
from bench.topics import TopicSet
from bench.variant import STALL_LIMIT_S, Context, Outcome
from schemas.decoding import SingleObjectDecoder

CONSUME_TIMEOUT_S = 1.0


def run(ctx: Context, topics: TopicSet, group: str) -> Outcome:
    consumer = Consumer({"bootstrap.servers": ctx.broker.bootstrap_servers,
                         "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": "false"})  # fmt: skip
    consumer.subscribe([topics.alarms])
    decode = SingleObjectDecoder()
    meter = Meter(os.getpid())
    wanted = ctx.expected.messages
    start = None
    decoded = 0
    last_message = time.monotonic()
    failures: list[str] = []
    while decoded < wanted:
        messages = consumer.consume(ctx.batch_max_messages, CONSUME_TIMEOUT_S)
        if not messages:
            if time.monotonic() - last_message > STALL_LIMIT_S:
                failures.append(f"stalled after {decoded} of {wanted} messages")
                break
            continue
        if start is None:
            start = meter.read()
        last_message = time.monotonic()
        for message in messages:
            if message.error() is None:
                decode(message.value())
                decoded += 1
    end = meter.read()
    consumer.close()
    return Outcome("A", decoded, end - (start or end), failures)
