"""The alarm daemon: consume `alarms` in batches and carry each batch through.

For every batch, in this order:

1. decode the messages (a bad one becomes a rejected message, not an error);
2. one transaction: new events, cycles, tasks, error rows and outbox rows;
3. publish the outbox rows the transaction wrote and wait for the broker;
4. mark them published;
5. commit the batch's offsets, for partitions still assigned.

Steps 3 to 5 of one batch overlap the next batch's steps 1 and 2: the rows of
batch k are handed to the producer once k's transaction has committed, and
librdkafka delivers them while batch k+1 is consumed and decoded. Before k+1's
transaction the daemon waits for k's acknowledgements; k+1's transaction marks
k's rows published; then k's offsets are committed. So for every batch the order
above still holds: its rows are published only after its transaction commits,
marked only once the broker has them, and its offsets committed only after
that. When no batch follows (the topic is drained, a sweep is due, or the
daemon stops), the batch in flight is finished on its own.

A crash anywhere leaves each batch either uncommitted in PostgreSQL
(redelivered, written once) or committed with outbox rows still to publish or to
mark (the sweep sends them, again under the same event ids). Transient failures
pause consumption and retry each step on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from alarmd import logs, metrics
from alarmd.errors import TransientError
from alarmd.health import Health
from alarmd.settings import Settings
from consumer.batch import Batch, decode_batch
from consumer.commit import next_offsets
from consumer.dead_letter_limit import DeadLetterLimit
from consumer.membership import GroupMember, Partitions
from consumer.transaction import BatchWriter, WriteResult
from db import outbox
from db.connection import translated_connection
from db.outbox import OutboxRow
from producers.publisher import Delivery, OutboxPublisher, PublishIncomplete
from schemas.decoding import Decoder

log = logs.get(__name__)

SWEEP_BATCH_ROWS = 1000
# Past the shutdown deadline the process is ended outright, this much later.
WATCHDOG_GRACE_S = 5.0


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
        self._limit = DeadLetterLimit(settings, health)
        self._publisher = OutboxPublisher(
            {**settings.kafka_common(), "logger": logs.librdkafka_logger()},  # type: ignore[dict-item]
            settings.publish_timeout_s,
        )
        self._member = GroupMember(
            {
                **settings.kafka_common(),
                "group.id": settings.group_id,
                "statistics.interval.ms": str(
                    int(settings.statistics_interval_s * 1000)
                ),
                "stats_cb": self._on_stats,
                "logger": logs.librdkafka_logger(),
            },
            health,
            on_fatal=self._on_fatal_kafka_error,
            # Below the stall deadline, which start-up checks against it.
            commit_timeout_s=settings.publish_timeout_s,
        )
        # Last message or assignment: idleness is measured from here.
        self._last_activity = time.monotonic()
        self._stopping = threading.Event()
        self._fatal = False
        self._stop_deadline = float("inf")
        self._next_sweep = 0.0
        # The batch whose rows are being delivered while the next one is read.
        self._in_flight: _InFlight | None = None
        self._retry = self._member.pausing_retry(
            settings.retry_initial_s,
            settings.retry_max_s,
            give_up=lambda: (
                self._stopping.is_set() and time.monotonic() > self._stop_deadline
            ),
        )

    # --- lifecycle -------------------------------------------------------------

    def _on_fatal_kafka_error(self) -> None:
        """librdkafka cannot go on (a fenced static member, for example): finish
        the batch in hand and exit non-zero, so the orchestrator restarts us."""
        self._fatal = True
        self.request_stop()

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
        self._member.subscribe(
            [self._settings.input_topic],
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
        )
        log.info("started", topic=self._settings.input_topic, group=self._settings.group_id,
                 encoding=self._settings.input_encoding)  # fmt: skip
        self._last_activity = time.monotonic()
        exit_code = 0
        try:
            while not self._stopping.is_set():
                messages = self._member.consume(
                    self._settings.batch_max_messages, self._settings.batch_timeout_s
                )
                if messages:
                    self._process(messages)
                    self._last_activity = time.monotonic()
                else:
                    self._settle()
                    self._retry("commit", self._member.commit_owed)
                self._sweep_when_due()
                if exit_when_idle_s is not None and self._idle_for(
                    time.monotonic() - self._last_activity, exit_when_idle_s
                ):
                    log.info("idle_exit", idle_s=exit_when_idle_s)
                    # Idle because the dead-letter limit holds a batch back:
                    # the work is not done.
                    exit_code = 1 if self._limit.tripped else 0
                    break
            self._settle()
        except TransientError as exc:
            # Only reached when a shutdown deadline ran out mid-retry: the batch in
            # hand is left uncommitted and will be redelivered.
            log.error("shutdown_deadline_exceeded", stage=exc.stage, error=exc.detail)
            exit_code = 1
        finally:
            self._close()
        return 1 if self._fatal else exit_code

    def _close(self) -> None:
        self._member.close()
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

        enter = self._health.enter  # the stall watcher names the stage in hand
        enter("decode", messages)
        batch = self._retry("decode", lambda: decode_batch(messages, self._decode))
        if self._limit.holds(messages, batch):
            # Nothing of this batch is written or committed; a restart with the
            # fix in place consumes it again. The batch before it is finished.
            self._settle()
            self._member.set_paused(True)
            return

        previous, self._in_flight = self._in_flight, None
        published: list[int] = []
        if previous:
            enter("publish", previous.messages)
            published = self._retry("publish", previous.publish)
        enter("write", messages)
        result = self._retry("database", lambda: self._write(batch, published))
        if previous:
            enter("commit", previous.messages)
            self._commit(previous)

        self._in_flight = _InFlight(
            _Remaining(self._publisher, result.outbox_rows, send=True),
            result, messages, started, next_offsets(messages),
        )  # fmt: skip
        self._retry.resume_if_paused()

    def _settle(self) -> None:
        """Finishes the batch in flight, if any: waits for its acknowledgements,
        marks its rows published and commits its offsets."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        self._health.enter("publish", batch.messages)
        published = self._retry("publish", batch.publish)
        self._health.enter("mark", batch.messages)
        self._retry("database", lambda: self._mark_published(published))
        self._health.enter("commit", batch.messages)
        self._commit(batch)

    def _commit(self, batch: _InFlight) -> None:
        self._retry("commit", lambda: self._member.commit(batch.offsets))
        self._retry.resume_if_paused()
        self._account(batch.result, len(batch.messages),
                      time.monotonic() - batch.started, batch.offsets)  # fmt: skip

    def _write(self, batch: Batch, published: list[int]) -> WriteResult:
        # Partitions revoked while retrying are someone else's now: drop them.
        current = Batch(
            events=[e for e in batch.events if self._owns(e.coordinates)],
            rejected=[r for r in batch.rejected if self._owns(r.coordinates)],
            duplicates_in_batch=batch.duplicates_in_batch,
        )
        with self._database(commit=True) as conn:
            with conn.cursor() as cur:
                outbox.mark_published(cur, published)
            return self._writer.write(conn, current)

    def _mark_published(self, ids: list[int]) -> None:
        with self._database(commit=True) as conn, conn.cursor() as cur:
            outbox.mark_published(cur, ids)

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
        # The rows in flight are this instance's to publish, not the sweep's.
        self._settle()
        self._health.enter("sweep")
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
                        try:
                            delivered = self._publisher.publish(rows)
                        except PublishIncomplete as exc:
                            # Keep what the broker has, or every sweep would
                            # send those rows again.
                            outbox.mark_published(cur, exc.delivered)
                            conn.commit()
                            raise
                        outbox.mark_published(cur, delivered)
                    oldest = outbox.oldest_unpublished(cur)
                conn.commit()
            swept += len(rows)
            self._health.beat()  # each chunk is progress, however long the backlog
            age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
            metrics.OUTBOX_OLDEST_AGE.set(max(age, 0.0))
            if len(rows) < SWEEP_BATCH_ROWS:
                break
        if swept:
            log.info("outbox_swept", published=swept)
        return swept

    def _idle_for(self, quiet_s: float, limit_s: float) -> bool:
        if quiet_s < limit_s or not self._member.joined:
            return False
        self._health.enter("idle")
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

    def _database(self, commit: bool = False):
        return translated_connection(self._engine, commit=commit)

    # --- Kafka callbacks and helpers -------------------------------------------

    def _on_assigned(self, _added: Partitions) -> None:
        self._last_activity = time.monotonic()
        metrics.ASSIGNED_PARTITIONS.set(len(self._member.assigned))

    def _on_revoked(self, removed: Partitions) -> None:
        for topic, partition in removed:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(topic, str(partition))
        metrics.ASSIGNED_PARTITIONS.set(len(self._member.assigned))

    def _owns(self, coordinates) -> bool:
        return self._member.owns(coordinates.topic, coordinates.partition)

    def _on_stats(self, raw: str) -> None:
        stats = json.loads(raw)
        partitions = (
            stats.get("topics", {})
            .get(self._settings.input_topic, {})
            .get("partitions", {})
        )
        for number, data in partitions.items():
            key = (self._settings.input_topic, int(number))
            if key in self._member.assigned and data.get("consumer_lag", -1) >= 0:
                metrics.CONSUMER_LAG.labels(key[0], number).set(data["consumer_lag"])


def _downstream(settings: Settings):
    from consumer.downstream import DownstreamTopics, DownstreamWriter

    return DownstreamWriter(
        DownstreamTopics(settings.predictive_topic, settings.iac1_topic,
                         settings.notification_topic),
        settings.email_alarm_types,
    )  # fmt: skip


class _Remaining:
    """Publishing a batch's rows as a retryable step: the first attempt waits
    for the rows sent when the step was made (with `send`), and rows a failed
    attempt did deliver are not sent again by the next."""

    def __init__(
        self, publisher: OutboxPublisher, rows: list[OutboxRow], send: bool = False
    ) -> None:
        self._publisher = publisher
        self._rows = rows
        self._delivered: list[int] = []
        self._sent: Delivery | None = publisher.send(rows) if send else None

    def __call__(self) -> list[int]:
        sent, self._sent = self._sent, None
        try:
            self._delivered += (sent or self._publisher.send(self._rows)).wait()
        except PublishIncomplete as exc:
            self._delivered += exc.delivered
            done = set(exc.delivered)
            self._rows = [row for row in self._rows if row.id not in done]
            raise
        return self._delivered


@dataclass
class _InFlight:
    """A batch whose transaction has committed and whose rows are being
    delivered; its offsets wait for them."""

    publish: _Remaining
    result: WriteResult
    messages: list[Any]
    started: float
    offsets: dict[tuple[str, int], int]
