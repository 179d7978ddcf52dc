"""Batched writes of alarm events, cycles, tasks and error rows.

Each function costs a fixed number of statements for the whole batch (events
go through a staged COPY, `db/staging.py`), and each skips what is already
stored, returning only what it inserted: that is what makes a redelivered batch
have no further effect.
"""

from __future__ import annotations

from datetime import datetime

import orjson
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import execute_values

from consumer.batch import DecodedEvent, Rejected
from db import staging

PREDICTIVE_TASK = "Alarm to Predictive Service"

# Text columns first: most events' COPY lines are these joined as they are
# (see copy_line).
_EVENT_TEXT_COLUMNS = (
    "event_id, iactoken, ticket_id, additional_info, bcf_id, node_name, customer, "
    "vendor_type, status, node_type, alarm_number, alarm_text, scope, "
    "iac_alarm_id, parent_id, execution_mode, node_group, robot_uid, "
    "additional_fields, source_topic"
)
_EVENT_TEXT_COUNT = _EVENT_TEXT_COLUMNS.count(",") + 1
_EVENT_COLUMNS = (
    f"{_EVENT_TEXT_COLUMNS}, event_time, parent_alarm, final, source_partition, "
    "source_offset"
)
_EVENT_STAGING = "alarm_events_staging"


def insert_events(cur: Cursor, events: list[DecodedEvent]) -> dict[str, int]:
    """Inserts the events not stored yet; returns {event_id: alarm_events.id} of
    those inserted. One COPY and one INSERT, whatever the batch's size."""
    if not events:
        return {}
    staging.create(cur, _EVENT_STAGING, "alarm_events", _EVENT_COLUMNS)
    staging.copy_lines(
        cur, _EVENT_STAGING, _EVENT_COLUMNS,
        [e.copy_line if e.copy_line is not None else copy_line(e) for e in events],
    )  # fmt: skip
    cur.execute(
        staging.insert_sql(
            _EVENT_STAGING, "alarm_events", _EVENT_COLUMNS,
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id, id",
        )
    )  # fmt: skip
    return dict(cur.fetchall())


def copy_line(event: DecodedEvent) -> str:
    """The event's row of alarm_events as one line of COPY text.

    Its text values are joined as they are when none holds anything COPY must
    escape, which is so for nearly every event; any other row is written value
    by value. (The record's types are the schema's, checked by the decoder.)"""
    r = event.record
    c = event.coordinates
    text = "\t".join(_event_texts(event))
    if not staging.is_plain(text, _EVENT_TEXT_COUNT):
        return staging.copy_line(_event_row(event))
    return (
        f"{text}\t{r['eventTime']}\t{r['parentalarm']}\t{r['final']}\t"
        f"{c.partition}\t{c.offset}\n"
    )


def _event_texts(event: DecodedEvent) -> tuple[str, ...]:
    r = event.record
    return (
        event.event_id, r["iactoken"], r["TicketID"], r["additionalInfo"],
        r["bcfID"], r["nodeName"], r["customer"], r["vendorType"],
        r["status"], r["nodeType"], r["alarmNumber"], r["alarmText"],
        r["scope"], r["iacalarmid"], r["ParentId"], r["executionmode"],
        r["nodegroup"], r["robotUID"], orjson.dumps(r["attributes"]).decode(),
        event.coordinates.topic,
    )  # fmt: skip


def _event_row(event: DecodedEvent) -> tuple:
    """The values of _EVENT_COLUMNS, in order."""
    r = event.record
    c = event.coordinates
    return (*_event_texts(event), r["eventTime"], r["parentalarm"], r["final"],
            c.partition, c.offset)  # fmt: skip


def start_cycles(
    cur: Cursor, starts: list[tuple[str, int]], task: str
) -> dict[str, tuple[int, datetime]]:
    """Starts a cycle for each (iactoken, alarm_events.id) that has none and
    records its first task, in one statement; returns {iactoken: (cycle id,
    started_at)} of the cycles started."""
    if not starts:
        return {}
    inserted = execute_values(
        cur,
        "WITH started AS (INSERT INTO alarm_cycles (iactoken, alarm_event_id) "
        "VALUES %s ON CONFLICT (iactoken) DO NOTHING "
        "RETURNING iactoken, id, started_at), "
        "tasks AS (INSERT INTO cycle_tasks (cycle_id, task) "
        f"SELECT id, {cur.mogrify('%s', (task,)).decode()} FROM started "
        "ON CONFLICT (cycle_id, task) DO NOTHING) "
        "SELECT iactoken, id, started_at FROM started",
        starts,
        page_size=len(starts),
        fetch=True,
    )
    return {token: (cycle_id, started) for token, cycle_id, started in inserted}


def insert_errors(cur: Cursor, rejected: list[Rejected]) -> list[Rejected]:
    """Stores an error row per rejected message not recorded before; returns the
    ones stored, which are the ones still to dead-letter."""
    if not rejected:
        return []
    by_coordinates = {
        (r.coordinates.topic, r.coordinates.partition, r.coordinates.offset, r.stage): r
        for r in rejected
    }
    inserted = execute_values(
        cur,
        "INSERT INTO processing_errors (source_topic, source_partition, source_offset, "
        "stage, reason, detail, traceback) VALUES %s ON CONFLICT DO NOTHING "
        "RETURNING source_topic, source_partition, source_offset, stage",
        [
            (
                r.coordinates.topic,
                r.coordinates.partition,
                r.coordinates.offset,
                r.stage,
                r.reason.value,
                r.detail,
                r.traceback,
            )
            for r in rejected
        ],  # fmt: skip
        page_size=len(rejected),
        fetch=True,
    )
    return [by_coordinates[tuple(row)] for row in inserted]
