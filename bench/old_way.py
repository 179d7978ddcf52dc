"""Variant B, the old way: one message at a time. Decode it; insert each row
and commit it on its own; produce each downstream message and flush; commit
the message's offset synchronously."""

from __future__ import annotations

import os
import time

from confluent_kafka import Consumer, Producer

from bench.meter import Meter
from bench.topics import TopicSet
from bench.variant import STALL_LIMIT_S, Context, Outcome, store_gates
from consumer.batch import Coordinates, DecodedEvent, event_id
from consumer.downstream import DownstreamTopics, DownstreamWriter
from db import events
from schemas.decoding import SingleObjectDecoder

POLL_TIMEOUT_S = 1.0
SCOPE_IN = "In"


def run(ctx: Context, topics: TopicSet, group: str) -> Outcome:
    servers = ctx.broker.bootstrap_servers
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": "false"})  # fmt: skip
    producer = Producer({"bootstrap.servers": servers, "acks": "all"})
    consumer.subscribe([topics.alarms])
    decode = SingleObjectDecoder()
    downstream = DownstreamWriter(
        DownstreamTopics(topics.predictive, topics.iac1, topics.notification),
        ctx.email_alarm_types,
    )
    conn = ctx.database.connect()
    meter = Meter(os.getpid())
    delivered = 0

    def on_delivery(err, _msg) -> None:
        nonlocal delivered
        delivered += err is None

    def send(message) -> None:
        producer.produce(message.topic, message.payload, message.key,
                         headers=message.headers, on_delivery=on_delivery)  # fmt: skip
        producer.flush()

    start = None
    handled = 0
    last_message = time.monotonic()
    failures: list[str] = []
    while handled < ctx.expected.messages:
        message = consumer.poll(POLL_TIMEOUT_S)
        if message is None or message.error() is not None:
            if time.monotonic() - last_message > STALL_LIMIT_S:
                failures.append(f"stalled after {handled} messages")
                break
            continue
        if start is None:
            start = meter.read()
        last_message = time.monotonic()

        record = decode(message.value())
        identity = event_id(record)
        coordinates = Coordinates(
            message.topic(), message.partition(), message.offset()
        )
        with conn.cursor() as cur:
            stored = events.insert_events(
                cur, [DecodedEvent(coordinates, identity, record, message)]
            )
            conn.commit()
            if stored and record["scope"] == SCOPE_IN and record["final"]:
                # The old service's own statements, one row and one commit each.
                cur.execute(
                    "INSERT INTO alarm_cycles (iactoken, alarm_event_id) "
                    "VALUES (%s, %s) ON CONFLICT (iactoken) DO NOTHING "
                    "RETURNING id, started_at",
                    (record["iactoken"], stored[identity]),
                )
                started = cur.fetchone()
                conn.commit()
                if started:
                    cycle_id, started_at = started
                    cur.execute(
                        "INSERT INTO cycle_tasks (cycle_id, task) VALUES (%s, %s)",
                        (cycle_id, events.PREDICTIVE_TASK),
                    )
                    conn.commit()
                    for outgoing in downstream.for_cycle(
                        record, identity, cycle_id, started_at
                    ):
                        send(outgoing)
        if stored and downstream.wants_email(record):
            send(downstream.for_email(record, identity))

        consumer.commit(message=message, asynchronous=False)
        handled += 1
    end = meter.read()
    consumer.close()
    conn.close()

    failures += store_gates(ctx.database, ctx.expected, outbox="none")
    if delivered != ctx.expected.outbox_rows:
        failures.append(f"{delivered} downstream messages delivered, expected "
                        f"{ctx.expected.outbox_rows}")  # fmt: skip
    return Outcome("B", handled, end - (start or end), failures)
