"""Variant D, the persistence limit: the rows the daemon writes per batch,
decoded and serialised beforehand, written through PostgreSQL's fastest path.

Per batch of the daemon's size, as the daemon commits them:

1. one transaction: COPY the events into a staging table, INSERT ... SELECT
   ... ON CONFLICT DO NOTHING into alarm_events; COPY the cycle candidates,
   start their cycles and tasks in one statement; COPY the outbox rows and
   insert them the same way, and mark the previous batch's outbox rows
   published; commit (durably: synchronous_commit stays on). The last batch's
   rows are marked in a transaction of their own. The daemon, too, marks a
   batch's rows in a later batch's transaction.

No Kafka: what is left is the database's own cost of the daemon's rows.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.meter import Meter
from bench.topics import TopicSet
from bench.variant import Context, Outcome, store_gates
from consumer.batch import event_id
from consumer.downstream import DownstreamTopics, DownstreamWriter
from db.events import PREDICTIVE_TASK
from db.outbox import MARK_PUBLISHED
from schemas.decoding import SingleObjectDecoder

SCOPE_IN = "In"
EVENT_COLUMNS = (
    "event_id", "iactoken", "ticket_id", "additional_info", "bcf_id", "node_name",
    "customer", "vendor_type", "status", "node_type", "alarm_number", "alarm_text",
    "event_time", "scope", "iac_alarm_id", "parent_alarm", "parent_id",
    "execution_mode", "node_group", "robot_uid", "final", "additional_fields",
    "source_topic", "source_partition", "source_offset",
)  # fmt: skip
RECORD_FIELDS = (
    "iactoken", "TicketID", "additionalInfo", "bcfID", "nodeName", "customer",
    "vendorType", "status", "nodeType", "alarmNumber", "alarmText", "eventTime",
    "scope", "iacalarmid", "parentalarm", "ParentId", "executionmode", "nodegroup",
    "robotUID", "final",
)  # fmt: skip
OUTBOX_COLUMNS = ("event_id", "topic", "message_key", "payload", "headers")
_EVENTS = ", ".join(EVENT_COLUMNS)
_OUTBOX = ", ".join(OUTBOX_COLUMNS)
SETUP = [
    f"CREATE TEMP TABLE stage_events ON COMMIT DELETE ROWS AS SELECT {_EVENTS} "
    "FROM alarm_events WITH NO DATA",
    "CREATE TEMP TABLE stage_cycles (iactoken text, event_id text) ON COMMIT DELETE ROWS",
    f"CREATE TEMP TABLE stage_outbox ON COMMIT DELETE ROWS AS SELECT {_OUTBOX} "
    "FROM outbox WITH NO DATA",
]
INSERT_EVENTS = (
    f"INSERT INTO alarm_events ({_EVENTS}) SELECT {_EVENTS} FROM stage_events "
    "ON CONFLICT (event_id) DO NOTHING"
)
START_CYCLES = (
    "WITH started AS (INSERT INTO alarm_cycles (iactoken, alarm_event_id) "
    "SELECT s.iactoken, e.id FROM stage_cycles s JOIN alarm_events e USING (event_id) "
    "ON CONFLICT (iactoken) DO NOTHING RETURNING id) "
    "INSERT INTO cycle_tasks (cycle_id, task) SELECT id, %s FROM started "
    "ON CONFLICT (cycle_id, task) DO NOTHING"
)
INSERT_OUTBOX = (
    f"INSERT INTO outbox ({_OUTBOX}) SELECT {_OUTBOX} FROM stage_outbox "
    "ON CONFLICT (event_id) DO NOTHING RETURNING id"
)


@dataclass(frozen=True, slots=True)
class StagedBatch:
    """One batch as COPY text: events, cycle candidates, outbox rows."""

    events: str
    cycles: str
    outbox: str


def stage(ctx: Context, topics: TopicSet) -> list[StagedBatch]:
    """Decodes every alarm and serialises each batch's rows, before any timing.

    Batches are the daemon's: `batch_max_messages` messages in order, repeats
    inside a batch dropped. Outbox rows are those the daemon would write: a
    predictive request and an iAC1 document for the event that starts each
    cycle, and a notification request per first delivery of a listed event.
    """
    decode = SingleObjectDecoder()
    downstream = DownstreamWriter(
        DownstreamTopics(topics.predictive, topics.iac1, topics.notification),
        ctx.email_alarm_types,
    )
    starts = set(ctx.expected.cycle_starts.values())
    now = datetime.now(UTC)
    size = ctx.batch_max_messages
    batches = []
    for first in range(0, len(ctx.alarms), size):
        events, cycles, outbox = _csv(), _csv(), _csv()
        seen: set[str] = set()
        candidates: set[str] = set()
        for index in range(first, min(first + size, len(ctx.alarms))):
            alarm = ctx.alarms[index]
            record = decode(alarm.value)
            identity = event_id(record)
            if identity in seen:
                continue
            seen.add(identity)
            events.writerow(_event_row(identity, record, topics.alarms, index))
            token = record["iactoken"]
            if (
                record["scope"] == SCOPE_IN
                and record["final"]
                and token not in candidates
            ):
                candidates.add(token)
                cycles.writerow((token, identity))
            messages = []
            if index in starts:
                messages += downstream.for_cycle(record, identity, len(batches), now)
            if not alarm.repeat and downstream.wants_email(record):
                messages.append(downstream.for_email(record, identity))
            for m in messages:
                outbox.writerow(_outbox_row(m))
        batches.append(StagedBatch(*(w.text() for w in (events, cycles, outbox))))
    return batches


def run(ctx: Context, topics: TopicSet, group: str) -> Outcome:
    batches = stage(ctx, topics)
    conn = ctx.database.connect()
    with conn.cursor() as cur:
        for statement in SETUP:
            cur.execute(statement)
    conn.commit()
    meter = Meter(os.getpid())
    start = meter.read()
    to_mark: list[int] = []
    for batch in batches:
        with conn.cursor() as cur:
            if to_mark:
                cur.execute(MARK_PUBLISHED, (to_mark,))
            cur.copy_expert(f"COPY stage_events ({_EVENTS}) FROM STDIN (FORMAT csv)",
                            io.StringIO(batch.events))  # fmt: skip
            cur.execute(INSERT_EVENTS)
            cur.copy_expert(
                "COPY stage_cycles FROM STDIN (FORMAT csv)", io.StringIO(batch.cycles)
            )
            cur.execute(START_CYCLES, (PREDICTIVE_TASK,))
            cur.copy_expert(f"COPY stage_outbox ({_OUTBOX}) FROM STDIN (FORMAT csv)",
                            io.StringIO(batch.outbox))  # fmt: skip
            cur.execute(INSERT_OUTBOX)
            to_mark = [row[0] for row in cur.fetchall()]
            conn.commit()
    with conn.cursor() as cur:
        cur.execute(MARK_PUBLISHED, (to_mark,))
    conn.commit()
    end = meter.read()
    conn.close()
    failures = store_gates(ctx.database, ctx.expected, outbox="published")
    return Outcome("D", ctx.expected.messages, end - start, failures)


class _csv:
    def __init__(self) -> None:
        self._buffer = io.StringIO()
        # Quoted strings keep "" an empty string; COPY reads a bare empty field as NULL.
        self._writer = csv.writer(self._buffer, quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, row) -> None:
        self._writer.writerow(row)

    def text(self) -> str:
        return self._buffer.getvalue()


def _event_row(identity: str, record: dict, topic: str, offset: int) -> tuple:
    values = [record[f] for f in RECORD_FIELDS]
    values[RECORD_FIELDS.index("eventTime")] = record["eventTime"].isoformat()
    return (identity, *values, json.dumps(record["attributes"], ensure_ascii=False),
            topic, 0, offset)  # fmt: skip


def _outbox_row(message) -> tuple:
    headers = [
        [name, base64.b64encode(value).decode("ascii")]
        for name, value in message.headers
    ]
    return (message.event_id, message.topic, "\\x" + message.key.hex(),
            "\\x" + message.payload.hex(), json.dumps(headers))  # fmt: skip
