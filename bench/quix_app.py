"""Variant E's application: what a Quix Streams user would write to persist
alarms as alarmd does, with the library's PostgreSQL sink.

Runs in its own virtual environment (.cache/bench-quix). It decodes with
alarmd's decoder and builds the same rows: the event, for an in-scope final
event its cycle, task and downstream messages, for a listed alarmText its
notification request. The sink writes them in batches per checkpoint, and
primary keys with ON CONFLICT DO NOTHING store a repeated event, cycle or
message once, as alarmd's unique keys do. The sink cannot return generated
ids, so a cycle refers to its event by event id, and the downstream messages
carry cycle id 0. It publishes nothing: persistence only.

Prints `first_message` when it handles its first message.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from quixstreams import Application, message_context
from quixstreams.sinks.community.postgresql import PostgreSQLSink

from consumer.batch import event_id
from consumer.downstream import CYCLE_STATE_STARTED, DownstreamTopics, DownstreamWriter
from db.events import PREDICTIVE_TASK
from schemas.decoding import SingleObjectDecoder

SCOPE_IN = "In"
# Quix commits (and its sink writes) every 5 s by default; 1 s keeps the tail
# of a run from waiting on the last checkpoint.
COMMIT_INTERVAL_S = 1.0
TABLE_KEYS = {
    "alarm_events": "event_id",
    "alarm_cycles": "iactoken",
    "cycle_tasks": ["iactoken", "task"],
    "outbox": "event_id",
}


class AlarmRows:
    """One message in, its rows out, each tagged by the columns it has."""

    def __init__(self, topic: str, downstream: DownstreamWriter) -> None:
        self._topic = topic
        self._decode = SingleObjectDecoder()
        self._downstream = downstream
        self._first = True

    def __call__(self, value: bytes) -> list[dict[str, Any]]:
        if self._first:
            print("first_message", flush=True)
            self._first = False
        where = message_context()
        r = self._decode(value)
        identity = event_id(r)
        rows: list[dict[str, Any]] = [{
            "event_id": identity, "iactoken": r["iactoken"], "ticket_id": r["TicketID"],
            "additional_info": r["additionalInfo"], "bcf_id": r["bcfID"],
            "node_name": r["nodeName"], "customer": r["customer"],
            "vendor_type": r["vendorType"], "status": r["status"],
            "node_type": r["nodeType"], "alarm_number": r["alarmNumber"],
            "alarm_text": r["alarmText"], "event_time": r["eventTime"],
            "scope": r["scope"], "iac_alarm_id": r["iacalarmid"],
            "parent_alarm": r["parentalarm"], "parent_id": r["ParentId"],
            "execution_mode": r["executionmode"], "node_group": r["nodegroup"],
            "robot_uid": r["robotUID"], "final": r["final"],
            "additional_fields": r["attributes"], "source_topic": self._topic,
            "source_partition": where.partition, "source_offset": where.offset,
        }]  # fmt: skip
        messages = []
        if r["scope"] == SCOPE_IN and r["final"]:
            now = datetime.now(UTC)
            rows.append({"iactoken": r["iactoken"], "alarm_event_id": identity,
                         "state": CYCLE_STATE_STARTED, "started_at": now})  # fmt: skip
            rows.append({"iactoken": r["iactoken"], "task": PREDICTIVE_TASK})
            messages += self._downstream.for_cycle(r, identity, 0, now)
        if self._downstream.wants_email(r):
            messages.append(self._downstream.for_email(r, identity))
        rows += [
            {"event_id": m.event_id, "topic": m.topic, "message_key": m.key,
             "payload": m.payload, "headers": [[k, v.decode()] for k, v in m.headers]}
            for m in messages
        ]  # fmt: skip
        return rows


def table_of(item) -> str:
    row = item.value
    if "alarm_text" in row:
        return "alarm_events"
    if "state" in row:
        return "alarm_cycles"
    if "task" in row:
        return "cycle_tasks"
    return "outbox"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    for name in (
        "--bootstrap",
        "--topic",
        "--group",
        "--host",
        "--port",
        "--dbname",
        "--user",
        "--schema",
        "--state-dir",
        "--downstream",
        "--email-types",
    ):
        parser.add_argument(name, required=True)  # fmt: skip
    args = parser.parse_args(argv)
    predictive, iac1, notification = args.downstream.split(",")
    downstream = DownstreamWriter(
        DownstreamTopics(predictive, iac1, notification), json.loads(args.email_types)
    )

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL_S,
        state_dir=args.state_dir,
        use_changelog_topics=False,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    sink = PostgreSQLSink(
        host=args.host, port=int(args.port), dbname=args.dbname, user=args.user,
        password="", table_name=table_of, schema_name=args.schema,
        primary_key_columns=lambda item: TABLE_KEYS[table_of(item)],
        on_conflict_do_nothing=True, include_metadata=False,
    )  # fmt: skip
    sdf = app.dataframe(topic).apply(AlarmRows(args.topic, downstream), expand=True)
    sdf.sink(sink)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
