"""The alarm daemon: consume `alarms` in batches and carry each batch through.

For every batch, in this order:

1. decode the messages (a bad one becomes a rejected message, not an error);
2. one transaction: new events, cycles, tasks, error rows and outbox rows;
3. publish the outbox rows the transaction wrote and wait for the broker;
4. mark them published;
5. commit the batch's offsets, for partitions still assigned.

A crash anywhere leaves the batch either uncommitted in PostgreSQL (redelivered,
written once) or committed with outbox rows still to publish (the sweep sends
them). Transient failures pause consumption and retry each step on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2
from confluent_kafka import Consumer, KafkaError, KafkaException
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from alarmd import logs, metrics
from alarmd.errors import TransientError
from alarmd.health import Health
from alarmd.settings import Settings
from consumer.batch import Batch, decode_batch
from consumer.commit import next_offsets, to_commit
from consumer.retry import PausingRetry
from consumer.transaction import BatchWriter, WriteResult
from db import outbox
from db.engine import is_transient
from producers.publisher import OutboxPublisher
from schemas.decoding import Decoder

log = logs.get(__name__)

SWEEP_BATCH_ROWS = 1000
# Past the shutdown deadline the process is ended outright, this much later.
WATCHDOG_GRACE_S = 5.0
# Commit errors that mean "no longer yours": the partitions were revoked.
REVOKED_COMMIT_ERRORS = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._NO_OFFSET,
}

CONSUMER_DEFAULTS = {
    "enable.auto.commit": "false",
    "enable.auto.offset.store": "false",
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "cooperative-sticky",
    "isolation.level": "read_committed",
    "session.timeout.ms": "45000",
    "max.poll.interval.ms": "300000",
}


class Daemon:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        decoder: Decoder,
        health: Health,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._decode = decoder
        self._health = health
        self._writer = BatchWriter(_downstream(settings), settings.dead_letter_topic)
        self._publisher = OutboxPublisher(
            {**settings.kafka_common(), "logger": logs.librdkafka_logger()},  # type: ignore[dict-item]
            settings.publish_timeout_s,
        )
        self._consumer = Consumer(
            {
                **CONSUMER_DEFAULTS,
                **settings.kafka_common(),
                "group.id": settings.group_id,
                "statistics.interval.ms": str(
                    int(settings.statistics_interval_s * 1000)
                ),
                "stats_cb": self._on_stats,
                "error_cb": self._on_kafka_error,
                "logger": logs.librdkafka_logger(),
            }
        )
        self._assigned: set[tuple[str, int]] = set()
        self._joined = False
        # Last message or assignment: idleness is measured from here.
        self._last_activity = time.monotonic()
        self._stash: list[Any] = []
        self._stopping = threading.Event()
        self._stop_deadline = float("inf")
        self._last_kafka_error = ""
        self._next_sweep = 0.0
        self._retry = PausingRetry(
            initial_s=settings.retry_initial_s,
            max_s=settings.retry_max_s,
            pause=lambda: self._set_paused(True),
            resume=lambda: self._set_paused(False),
            poll=self._poll_while_paused,
            give_up=lambda: (
                self._stopping.is_set() and time.monotonic() > self._stop_deadline
            ),
        )

    # --- lifecycle -------------------------------------------------------------

    def request_stop(self, signum: int | None = None, _frame: Any = None) -> None:
        """Asks the loop to finish the batch in hand and exit. Safe from a signal
        handler; a second request changes nothing."""
        if self._stopping.is_set():
            return
        self._stop_deadline = time.monotonic() + self._settings.shutdown_deadline_s
        self._stopping.set()
        log.info("stop_requested", signal=signal.Signals(signum).name if signum else None,
                 deadline_s=self._settings.shutdown_deadline_s)  # fmt: skip
        watchdog = threading.Timer(
            self._settings.shutdown_deadline_s + WATCHDOG_GRACE_S, self._overrun
        )
        watchdog.daemon = True
        watchdog.start()

    def run(self, exit_when_idle_s: float | None = None) -> int:
        """Consumes until stopped (or idle for `exit_when_idle_s`); returns the
        process exit code."""
        self._consumer.subscribe(
            [self._settings.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info("started", topic=self._settings.input_topic, group=self._settings.group_id,
                 encoding=self._settings.input_encoding)  # fmt: skip
        self._last_activity = time.monotonic()
        exit_code = 0
        try:
            while not self._stopping.is_set():
                messages = self._take_stash() + self._consumer.consume(
                    self._settings.batch_max_messages, self._settings.batch_timeout_s
                )
                self._health.beat()
                messages = [m for m in messages if self._usable(m)]
                if messages:
                    self._process(messages)
                    self._last_activity = time.monotonic()
                self._sweep_when_due()
                if exit_when_idle_s is not None and self._idle_for(
                    time.monotonic() - self._last_activity, exit_when_idle_s
                ):
                    log.info("idle_exit", idle_s=exit_when_idle_s)
                    break
        except TransientError as exc:
            # Only reached when a shutdown deadline ran out mid-retry: the batch in
            # hand is left uncommitted and will be redelivered.
            log.error("shutdown_deadline_exceeded", stage=exc.stage, error=exc.detail)
            exit_code = 1
        finally:
            self._close()
        return exit_code

    def _close(self) -> None:
        self._consumer.close()
        left = max(self._stop_deadline - time.monotonic(), 1.0)
        queued = self._publisher.close(min(left, self._settings.shutdown_deadline_s))
        log.info("stopped", producer_queue=queued)

    def _overrun(self) -> None:
        log.error(
            "shutdown_watchdog_fired", deadline_s=self._settings.shutdown_deadline_s
        )
        os._exit(1)

    # --- one batch -------------------------------------------------------------

    def _process(self, messages: list[Any]) -> None:
        started = time.monotonic()
        metrics.MESSAGES_CONSUMED.inc(len(messages))
        metrics.BATCH_SIZE.observe(len(messages))

        batch = self._retry("decode", lambda: decode_batch(messages, self._decode))

        result = self._retry("database", lambda: self._write(batch))

        published = self._retry(
            "publish", lambda: self._publisher.publish(result.outbox_rows)
        )
        self._retry("database", lambda: self._mark_published(published))

        offsets = next_offsets(messages)
        self._retry("commit", lambda: self._commit(offsets))
        self._retry.resume_if_paused()

        self._account(result, len(messages), time.monotonic() - started, offsets)

    def _write(self, batch: Batch) -> WriteResult:
        # Partitions revoked while retrying are someone else's now: drop them.
        current = Batch(
            events=[e for e in batch.events if self._owns(e.coordinates)],
            rejected=[r for r in batch.rejected if self._owns(r.coordinates)],
            duplicates_in_batch=batch.duplicates_in_batch,
        )
        with self._database() as conn:
            result = self._writer.write(conn, current)
            conn.commit()
            return result

    def _mark_published(self, ids: list[int]) -> None:
        with self._database() as conn:
            with conn.cursor() as cur:
                outbox.mark_published(cur, ids)
            conn.commit()

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        partitions = to_commit(offsets, self._assigned)
        if not partitions:
            return
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in REVOKED_COMMIT_ERRORS:
                log.warning("commit_skipped_revoked", error=error.str())
                return
            if error.retriable() or not error.fatal():
                raise TransientError("commit", error.str()) from exc
            raise

    def _account(
        self, result: WriteResult, consumed: int, duration_s: float, offsets
    ) -> None:
        metrics.EVENTS_STORED.inc(result.events_stored)
        metrics.DUPLICATE_EVENTS.inc(result.duplicates)
        metrics.CYCLES_STARTED.inc(result.cycles_started)
        metrics.BATCH_DURATION.observe(duration_s)
        for rejected in result.dead_lettered:
            metrics.DEAD_LETTERED.labels(reason=rejected.reason.value).inc()
            c = rejected.coordinates
            log.warning("message_dead_lettered", topic=c.topic, partition=c.partition,
                        offset=c.offset, stage=rejected.stage, reason=rejected.reason.value,
                        detail=rejected.detail)  # fmt: skip
        log.info("batch_committed", messages=consumed, stored=result.events_stored,
                 duplicates=result.duplicates, cycles=result.cycles_started,
                 dead_lettered=len(result.dead_lettered), published=len(result.outbox_rows),
                 duration_ms=round(duration_s * 1000, 1),
                 partitions=sorted(p for _, p in offsets))  # fmt: skip

    # --- outbox sweep ------------------------------------------------------------

    def _sweep_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._settings.outbox_sweep_interval_s
        try:
            self.sweep_outbox()
        except TransientError as exc:
            metrics.TRANSIENT_ERRORS.labels(stage="sweep").inc()
            log.warning("outbox_sweep_failed", error=exc.detail)

    def sweep_outbox(self) -> int:
        """Publishes outbox rows left unpublished (by a crash, or a publish that
        gave up), oldest first; returns how many. Raises TransientError."""
        swept = 0
        while True:
            with self._database() as conn:
                with conn.cursor() as cur:
                    rows = outbox.claim_unpublished(
                        cur, self._settings.outbox_sweep_min_age_s, SWEEP_BATCH_ROWS
                    )
                    if rows:
                        outbox.mark_published(cur, self._publisher.publish(rows))
                    oldest = outbox.oldest_unpublished(cur)
                conn.commit()
            swept += len(rows)
            age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
            metrics.OUTBOX_OLDEST_AGE.set(max(age, 0.0))
            if len(rows) < SWEEP_BATCH_ROWS:
                break
        if swept:
            log.info("outbox_swept", published=swept)
        return swept

    def _idle_for(self, quiet_s: float, limit_s: float) -> bool:
        if quiet_s < limit_s or not self._joined:
            return False
        try:
            with self._database() as conn, conn.cursor() as cur:
                pending = outbox.count_unpublished(cur)
                conn.rollback()
        except TransientError:
            return False
        if pending:
            self._next_sweep = 0.0  # sweep at once: the rows may be old enough now
        return pending == 0

    # --- database access -----------------------------------------------------

    def _database(self):
        return _translated_connection(self._engine)

    def ping_database(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            return False

    # --- Kafka callbacks and helpers -------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list) -> None:
        self._joined = True
        self._last_activity = time.monotonic()
        self._health.joined()
        added = {(p.topic, p.partition) for p in partitions}
        self._assigned |= added
        metrics.ASSIGNED_PARTITIONS.set(len(self._assigned))
        if self._retry.paused and partitions:
            consumer.pause(partitions)
        log.info("partitions_assigned", partitions=sorted(p for _, p in added),
                 total=len(self._assigned))  # fmt: skip

    def _on_revoke(self, _consumer: Consumer, partitions: list) -> None:
        removed = {(p.topic, p.partition) for p in partitions}
        self._assigned -= removed
        self._stash = [
            m for m in self._stash if (m.topic(), m.partition()) in self._assigned
        ]
        for topic, partition in removed:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(topic, str(partition))
        metrics.ASSIGNED_PARTITIONS.set(len(self._assigned))
        log.info("partitions_revoked", partitions=sorted(p for _, p in removed),
                 total=len(self._assigned))  # fmt: skip

    def _owns(self, coordinates) -> bool:
        return (coordinates.topic, coordinates.partition) in self._assigned

    def _set_paused(self, paused: bool) -> None:
        assignment = self._consumer.assignment()
        if assignment:
            (self._consumer.pause if paused else self._consumer.resume)(assignment)

    def _poll_while_paused(self, seconds: float) -> None:
        # Partitions are paused, so this mostly serves heartbeats and rebalances;
        # anything already fetched is kept for the next batch, in order.
        self._health.beat()
        self._stash += [
            m for m in self._consumer.consume(100, seconds) if self._usable(m)
        ]

    def _take_stash(self) -> list[Any]:
        stash, self._stash = self._stash, []
        return [m for m in stash if (m.topic(), m.partition()) in self._assigned]

    def _usable(self, message: Any) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consume_error", topic=message.topic(),
                        partition=message.partition(), error=error.str())  # fmt: skip
        return False

    def _on_stats(self, raw: str) -> None:
        stats = json.loads(raw)
        partitions = (
            stats.get("topics", {})
            .get(self._settings.input_topic, {})
            .get("partitions", {})
        )
        for number, data in partitions.items():
            key = (self._settings.input_topic, int(number))
            if key in self._assigned and data.get("consumer_lag", -1) >= 0:
                metrics.CONSUMER_LAG.labels(key[0], number).set(data["consumer_lag"])

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("kafka_fatal_error", error=error.str())
            self.request_stop()
        elif error.str() != self._last_kafka_error:
            self._last_kafka_error = error.str()
            log.warning("kafka_error", error=error.str())


@contextmanager
def _translated_connection(engine: Engine) -> Iterator[Any]:
    """A pooled psycopg2 connection whose unavailability errors become
    TransientError. A broken connection is invalidated, never reused."""
    try:
        raw = engine.raw_connection()
    except DBAPIError as exc:
        raise TransientError("database", _describe(exc.orig)) from exc
    except psycopg2.Error as exc:
        # Engine.raw_connection() passes the pool's connect errors through as
        # psycopg2's own, not wrapped in DBAPIError as Engine.connect() does.
        if not is_transient(exc):
            raise
        raise TransientError("database", _describe(exc)) from exc
    try:
        yield raw
    except psycopg2.Error as exc:
        if is_transient(exc):
            raw.invalidate()
            raise TransientError("database", _describe(exc)) from exc
        raw.rollback()
        raise
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def _describe(exc: BaseException | None) -> str:
    return " ".join(str(exc).split()) if exc else "unknown database error"


def _downstream(settings: Settings):
    from consumer.downstream import DownstreamTopics, DownstreamWriter

    return DownstreamWriter(
        DownstreamTopics(settings.predictive_topic, settings.iac1_topic,
                         settings.notification_topic),
        settings.email_alarm_types,
    )  # fmt: skip
