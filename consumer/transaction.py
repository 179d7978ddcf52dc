"""The database half of a batch, in one transaction:

1. insert the alarm events not stored yet;
2. start a cycle for each iactoken whose first in-scope final event this is,
   and record its "Alarm to Predictive Service" task;
3. store an error row for each rejected message;
4. write the outbox rows: a predictive request and an iAC1 document per cycle
   started, a notification request per new listed event, a dead-letter message
   per new error row.

Nothing here publishes or commits offsets: the caller commits the transaction,
then publishes exactly the outbox rows returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg2

from alarmd.errors import DeadLetterReason
from alarmd.headers import read_headers, with_headers_note
from consumer.batch import Batch, DecodedEvent, Rejected
from consumer.dead_letter import dead_letter_message
from consumer.downstream import DownstreamWriter
from db import events, outbox
from db.engine import is_row_refusal
from db.outbox import OutboxMessage, OutboxRow
from schemas.decoding import own_body

SCOPE_IN = "In"


@dataclass
class WriteResult:
    events_stored: int = 0
    duplicates: int = 0
    cycles_started: int = 0
    dead_lettered: list[Rejected] = field(default_factory=list)
    outbox_rows: list[OutboxRow] = field(default_factory=list)

    def add(self, other: WriteResult) -> None:
        """Counts `other` in: another part of the same batch."""
        self.events_stored += other.events_stored
        self.duplicates += other.duplicates
        self.cycles_started += other.cycles_started
        self.dead_lettered += other.dead_lettered
        self.outbox_rows += other.outbox_rows


class BatchWriter:
    def __init__(self, downstream: DownstreamWriter, dead_letter_topic: str) -> None:
        self._downstream = downstream
        self._dead_letter_topic = dead_letter_topic

    def prepare(self, batch: Batch) -> None:
        """Does ahead what `write` needs of each event and can know before the
        database answers: its COPY line, and for the first in-scope final event
        of each iactoken, what its cycle's messages share (the alarm's encoding
        taken from the message itself, when it carries our current schema).
        Saves `write` (and the transaction it runs in) that time; `write` makes
        what is missing."""
        candidates: set[str] = set()
        for event in batch.events:
            event.copy_line = events.copy_line(event)
            record = event.record
            if _may_start_cycle(record) and record["iactoken"] not in candidates:
                candidates.add(record["iactoken"])
                event.cycle_prelude = self._downstream.cycle_prelude(
                    record, own_body(event.message.value())
                )

    def write(
        self,
        conn: psycopg2.extensions.connection,
        batch: Batch,
        published: list[int] | None = None,
    ) -> WriteResult:
        """Writes the batch in the caller's open transaction, after marking the
        outbox rows `published` (of earlier batches) published.

        A row the database itself refuses (SQLSTATE class 22, 23 or 54) would
        abort the whole statement; then each event is written again under its own
        savepoint, and the refused ones become rejected messages, so one bad
        event never costs the rest of its batch.
        """
        with conn.cursor() as cur:
            if published:  # in the same round trip as the savepoint
                cur.execute(f"{outbox.MARK_PUBLISHED}; SAVEPOINT batch", (published,))
            else:
                cur.execute("SAVEPOINT batch")
            try:
                result = self._write(cur, batch.events, batch.rejected)
            except psycopg2.Error as exc:
                if not is_row_refusal(exc):
                    raise
                cur.execute("ROLLBACK TO SAVEPOINT batch")
                result = self._write_isolating(cur, batch)
            result.duplicates += batch.duplicates_in_batch
            return result

    def _write_isolating(self, cur, batch: Batch) -> WriteResult:
        total = WriteResult()
        refused: list[Rejected] = []
        for event in batch.events:
            cur.execute("SAVEPOINT one_event")
            try:
                one = self._write(cur, [event], [])
            except psycopg2.Error as exc:
                if not is_row_refusal(exc):
                    raise
                cur.execute("ROLLBACK TO SAVEPOINT one_event")
                refused.append(_refused(event, exc))
                continue
            total.add(one)
        total.add(self._write(cur, [], [*batch.rejected, *refused]))
        return total

    def _write(
        self, cur, decoded: list[DecodedEvent], rejected: list[Rejected]
    ) -> WriteResult:
        stored = events.insert_events(cur, decoded)
        new_events = [e for e in decoded if e.event_id in stored]

        first_final: dict[str, DecodedEvent] = {}
        for event in new_events:
            if _may_start_cycle(event.record):
                first_final.setdefault(event.record["iactoken"], event)
        started = events.start_cycles(
            cur,
            [(token, stored[e.event_id]) for token, e in first_final.items()],
            events.PREDICTIVE_TASK,
        )

        new_errors = events.insert_errors(cur, rejected)

        messages: list[OutboxMessage] = []
        for token, (cycle_id, started_at) in started.items():
            event = first_final[token]
            messages += self._downstream.for_cycle(
                event.record, event.event_id, cycle_id, started_at, event.cycle_prelude
            )
        for event in new_events:
            if self._downstream.wants_email(event.record):
                messages.append(
                    self._downstream.for_email(event.record, event.event_id)
                )
        messages += [
            dead_letter_message(r, self._dead_letter_topic) for r in new_errors
        ]

        return WriteResult(
            events_stored=len(new_events),
            duplicates=len(decoded) - len(new_events),
            cycles_started=len(started),
            dead_lettered=new_errors,
            outbox_rows=outbox.insert(cur, messages),
        )  # fmt: skip


def _may_start_cycle(record: dict) -> bool:
    """In scope and final: the first such event of an iactoken starts its cycle."""
    return record["scope"] == SCOPE_IN and record["final"]


def _refused(event: DecodedEvent, exc: psycopg2.Error) -> Rejected:
    message = event.message
    headers, readable = read_headers(message)
    detail = f"PostgreSQL refused the event: {(exc.pgerror or str(exc)).strip()}"
    return Rejected(
        coordinates=event.coordinates,
        key=message.key(),
        value=message.value(),
        headers=headers,
        stage="database",
        reason=DeadLetterReason.REJECTED_BY_DATABASE,
        detail=with_headers_note(detail, readable),
    )
