"""Replaying dead letters to the input topic, each at most once.

For each chunk of dead letters, in this order:

1. claim them in PostgreSQL: insert one `dead_letter_replays` row each, keyed
   by its dead-letter coordinate, in a transaction left open. A letter another
   run has claimed is skipped; one a concurrent run is claiming now waits
   until that run commits (skipped) or rolls back (claimed here);
2. produce the claimed letters to the input topic in one Kafka transaction
   and commit it: the daemon reads `read_committed`, so it sees all of the
   chunk or none of it;
3. record where each replay landed and commit the PostgreSQL transaction.

A crash before step 2 commits leaves nothing behind: PostgreSQL rolls the
claims back when the connection drops, and the next run's producer, with the
same transactional id, aborts the open Kafka transaction. The one window is a
crash between the Kafka commit and the PostgreSQL commit: the chunk is on the
input topic but not recorded, so the next run replays it again. The daemon
identifies an event by its content, so a replayed event is stored once even
then; only a replay that fails again would be dead-lettered again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer
from psycopg2.extras import execute_values
from sqlalchemy import Engine

from alarmd import logs
from alarmd.dead_letters import DeadLetter
from alarmd.errors import AlarmdError, TransientError
from alarmd.settings import Settings
from consumer.dead_letter import ADDED_HEADER_PREFIXES
from consumer.downstream import downstream_event_id
from db.connection import translated_connection
from db.outbox import EVENT_ID_HEADER
from producers.publisher import PRODUCER_DEFAULTS

log = logs.get(__name__)

REPLAY_OF_HEADER = "alarmd-replay-of"
CHUNK_LETTERS = 500
TRANSACTION_TIMEOUT_S = 60.0
# A newer producer with the same transactional id took over.
FENCED_ERRORS = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                 KafkaError.INVALID_PRODUCER_EPOCH}  # fmt: skip


class ReplayTakenOver(AlarmdError):
    """Another replay of the same dead-letter topic started and fenced this one;
    the chunk in hand was rolled back in Kafka and PostgreSQL."""


@dataclass(frozen=True)
class Replayed:
    letter: DeadLetter
    partition: int
    offset: int


def replay_headers(letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    """The original message's headers, without the ones dead-lettering added
    (and a previous replay's), plus one naming this dead letter."""
    added_id = None
    if letter.source_topic is not None:
        source = (
            f"{letter.source_topic}/{letter.source_partition}/{letter.source_offset}"
        )
        added_id = downstream_event_id("dead-letter", source).encode()
    kept: list[tuple[str, str | bytes | None]] = [
        (name, value or b"")
        for name, value in letter.record.headers
        if not name.startswith(ADDED_HEADER_PREFIXES)
        and name != REPLAY_OF_HEADER
        and not (name == EVENT_ID_HEADER and value == added_id)
    ]
    return [*kept, (REPLAY_OF_HEADER, letter.coordinate.encode())]


def already_replayed(engine: Engine, dlq_topic: str) -> set[tuple[int, int]]:
    """(partition, offset) of every dead letter of the topic replayed so far."""
    with translated_connection(engine) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT dlq_partition, dlq_offset FROM dead_letter_replays "
            "WHERE dlq_topic = %s",
            (dlq_topic,),
        )
        done = {(p, o) for p, o in cur.fetchall()}
        conn.rollback()
    return done


class Replayer:
    """Replays dead letters to `settings.input_topic`. One instance per run;
    `close` when done. Blocks on the broker and the database."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self.run_id = str(uuid.uuid4())
        self._producer = Producer(
            {
                **PRODUCER_DEFAULTS,
                **settings.kafka_common(),
                # One id per dead-letter topic: a new run fences a crashed one
                # and aborts its open transaction at once, instead of leaving
                # the daemon's read_committed fetches stuck behind it.
                "transactional.id": f"alarmd-dlq-replay-{settings.dead_letter_topic}",
                "transaction.timeout.ms": str(int(TRANSACTION_TIMEOUT_S * 1000)),
                "logger": logs.librdkafka_logger(),
            }  # type: ignore[dict-item]
        )
        self._producer.init_transactions(TRANSACTION_TIMEOUT_S)

    def replay(self, letters: list[DeadLetter]) -> list[Replayed]:
        """Replays the letters not claimed by any run yet; returns those this
        run replayed. Raises TransientError or KafkaException when a chunk fails;
        the chunks before it stay replayed and recorded."""
        replayed: list[Replayed] = []
        for start in range(0, len(letters), CHUNK_LETTERS):
            replayed += self._replay_chunk(letters[start : start + CHUNK_LETTERS])
        return replayed

    def close(self) -> None:
        self._producer.flush(TRANSACTION_TIMEOUT_S)

    def _replay_chunk(self, letters: list[DeadLetter]) -> list[Replayed]:
        placed: list[Replayed] = []
        try:
            with (
                translated_connection(self._engine, commit=True) as conn,
                conn.cursor() as cur,
            ):
                claimed = self._claim(cur, letters)
                if not claimed:
                    return []
                placed = self._produce(claimed)
                self._record(cur, placed)
        except TransientError as exc:
            if not placed:
                raise
            # The window: on the input topic, but not recorded.
            raise TransientError(
                exc.stage,
                f"{exc.detail}; the {len(placed)} dead letters from "
                f"{placed[0].letter.coordinate} to {placed[-1].letter.coordinate} "
                "were replayed but not recorded, so the next replay sends them again "
                "(the daemon stores each event once)",
            ) from exc
        log.info("dead_letters_replayed", count=len(placed),
                 first=placed[0].letter.coordinate, last=placed[-1].letter.coordinate,
                 topic=self._settings.input_topic, run_id=self.run_id)  # fmt: skip
        return placed

    def _claim(self, cur, letters: list[DeadLetter]) -> list[DeadLetter]:
        rows = [
            (d.record.topic, d.record.partition, d.record.offset, d.source_topic,
             d.source_partition, d.source_offset, d.reason,
             self._settings.input_topic, self.run_id)
            for d in letters
        ]  # fmt: skip
        claimed = execute_values(
            cur,
            "INSERT INTO dead_letter_replays (dlq_topic, dlq_partition, dlq_offset, "
            "source_topic, source_partition, source_offset, reason, replay_topic, "
            "run_id) VALUES %s ON CONFLICT DO NOTHING "
            "RETURNING dlq_partition, dlq_offset",
            rows,
            fetch=True,
            page_size=len(rows),
        )
        mine = {(p, o) for p, o in claimed}
        return [letter for letter in letters if letter.position in mine]

    def _produce(self, letters: list[DeadLetter]) -> list[Replayed]:
        placed: dict[int, tuple[int, int]] = {}
        failures: list[str] = []

        def delivered(index: int):
            def callback(error, message) -> None:
                if error is not None:
                    failures.append(error.str())
                else:
                    placed[index] = (message.partition(), message.offset())

            return callback

        self._producer.begin_transaction()
        try:
            for index, letter in enumerate(letters):
                self._producer.produce(
                    self._settings.input_topic,
                    key=letter.record.key,
                    value=letter.record.value,
                    headers=replay_headers(letter),
                    on_delivery=delivered(index),
                )
                self._producer.poll(0)
            self._producer.commit_transaction(TRANSACTION_TIMEOUT_S)
        except KafkaException as exc:
            self._abort()
            error = exc.args[0]
            if error.code() in FENCED_ERRORS:
                raise ReplayTakenOver(
                    "another `alarmd dlq replay` of this dead-letter topic took over; "
                    "this run's unfinished chunk was rolled back, and what it "
                    "finished is recorded; run it again once the other has ended"
                ) from exc
            if error.retriable() or error.txn_requires_abort():
                raise TransientError("replay", error.str()) from exc
            raise
        if failures or len(placed) != len(letters):
            # Cannot happen after a successful commit; refuse to record blindly.
            raise TransientError("replay", f"deliveries failed: {failures[:3]}")
        return [Replayed(letter, *placed[i]) for i, letter in enumerate(letters)]

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(TRANSACTION_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("replay_abort_failed", error=exc.args[0].str())

    def _record(self, cur, placed: list[Replayed]) -> None:
        execute_values(
            cur,
            "UPDATE dead_letter_replays AS r SET replay_partition = v.p, "
            "replay_offset = v.o FROM (VALUES %s) AS v (t, dp, dof, p, o) "
            "WHERE r.dlq_topic = v.t AND r.dlq_partition = v.dp "
            "AND r.dlq_offset = v.dof",
            [
                (
                    r.letter.record.topic,
                    r.letter.record.partition,
                    r.letter.record.offset,
                    r.partition,
                    r.offset,
                )
                for r in placed
            ],  # fmt: skip
            page_size=len(placed),
        )
