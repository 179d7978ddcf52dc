"""The alarm daemon: consume `alarms` in batches and carry each batch through.

For every batch, in this order:

1. decode the messages (a bad one becomes a rejected message, not an error);
2. one transaction: new events, cycles, tasks, error rows and outbox rows;
3. publish the outbox rows the transaction wrote and wait for the broker;
4. mark them published;
5. commit the batch's offsets, for partitions still assigned.

Batches overlap, without changing that order for any of them. Step 2 runs on
ALARMD_WRITER_THREADS writer threads, each with its own connection and its
share of the partitions (partition p goes to writer p mod n), so a partition's
batches are still written one after another, in order. Meanwhile the main
thread consumes and decodes up to WRITE_AHEAD batches ahead, so PostgreSQL's
share of the work and Python's run at once. A writer hands its rows to the
producer as soon as its transaction has committed. A later batch's
transactions mark published the rows of the oldest batches whose
acknowledgements are all in, and once they commit, those batches' offsets are
committed. When no batch follows (the topic is drained, a sweep is due, or the
daemon stops), the batches in flight are finished on their own.

A crash anywhere leaves each batch either uncommitted in PostgreSQL
(redelivered, written once) or committed with outbox rows still to publish or to
mark (the sweep sends them, again under the same event ids). Transient failures
pause consumption and retry each step on its own, on the main thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
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
# How often a thread holding the GIL hands it over (Python's default: 5 ms).
# The main thread decodes while the writers wait on PostgreSQL; each answer
# would otherwise wait up to the default for the GIL, several times a batch.
GIL_SWITCH_INTERVAL_S = 0.001
# Batches handed to the writers and not yet collected: the main thread decodes
# this far ahead of them.
WRITE_AHEAD = 2
# Batches written whose rows may wait for their acknowledgements; past this,
# the oldest is waited for.
IN_FLIGHT = 3
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
        # The batch whose transactions run on the writer threads, and the batches
        # before it whose rows are being delivered, oldest first.
        self._writing: deque[_Writing] = deque()
        self._in_flight: list[_InFlight] = []
        # One thread each, so each runs its transactions in the order given.
        self._writer_threads = [
            ThreadPoolExecutor(1, thread_name_prefix=f"alarmd-writer-{n}")
            for n in range(settings.writer_threads)
        ]
        self._writer_failed = [False] * settings.writer_threads
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
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
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
                    if self._member.owes_commit:
                        self._retry("commit", self._member.commit_owed)
                        self._resume_consumption()
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
        # A transaction still running here (past a shutdown deadline) is left to
        # the watchdog; its batch was never committed, so it is redelivered.
        for writer in self._writer_threads:
            writer.shutdown(wait=False)
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
        # Before any retry can poll, and so rebalance, under them.
        offsets = next_offsets(messages)
        taken = _Taken(messages, started, offsets,
                       {key: self._member.assignment_of.get(key) for key in offsets})  # fmt: skip

        enter = self._health.enter  # the stall watcher names the stage in hand
        enter("decode", messages)
        # While the writer threads run the previous batch's transactions.
        batch = self._retry("decode", lambda: decode_batch(messages, self._decode))
        self._writer.prepare(batch)
        if self._limit.holds(messages, batch):
            # Nothing of this batch is written or committed; a restart with the
            # fix in place consumes it again. The batches before it are finished.
            self._settle()
            self._member.set_paused(True)
            return

        # Written batches whose transactions have finished are collected; the
        # main thread waits for the oldest only when WRITE_AHEAD are queued.
        marked: list[_InFlight] = []
        while self._writing and (
            len(self._writing) >= WRITE_AHEAD or self._writing[0].done()
        ):
            marked += self._collect_write()
        # The oldest batches in flight whose acknowledgements are all in, in
        # order (a later batch's offsets are never committed before an earlier
        # one's): this batch's transactions mark their rows.
        self._publisher.serve()
        ready = 0
        while ready < len(self._in_flight) and (
            self._in_flight[ready].publish.ready()
            or len(self._in_flight) - ready > IN_FLIGHT
        ):
            ready += 1
        marks, self._in_flight = self._in_flight[:ready], self._in_flight[ready:]
        published: list[int] = []
        for previous in marks:
            enter("publish", previous.taken.messages)
            published += self._retry("publish", previous.publish)
        writers = len(self._writer_threads)
        parts = []
        for n, part in enumerate(_by_writer(batch, writers)):
            marking = published[n::writers]
            if part.events or part.rejected or marking:
                parts.append(_Part(self._writer_threads[n], part, marking,
                                   partial(self._run_part, n), again=self._write_and_send))  # fmt: skip
        self._writing.append(_Writing(parts, marks, taken, batch.duplicates_in_batch))
        # Offsets last: the writers need not wait for the broker's answer.
        self._commit_all(marked)

    def _collect_write(self) -> list[_InFlight]:
        """Waits for the oldest batch's transactions on the writer threads
        (running here any that failed) and keeps the batch in flight, the
        writers having sent its rows already; returns the batches those
        transactions marked, whose offsets are now due.

        After a failure the writer refuses what it has queued (`_run_part`), so
        every batch queued is written here, in order, before it takes more."""
        marked: list[_InFlight] = []
        while self._writing:
            writing = self._writing.popleft()
            self._health.enter("write", writing.taken.messages)
            written = self._retry("database", writing.results)
            result = WriteResult(duplicates=writing.duplicates_in_batch)
            for part, _ in written:
                result.add(part)
            publish = _Remaining(self._publisher, result.outbox_rows,
                                 sent=[delivery for _, delivery in written])  # fmt: skip
            self._in_flight.append(_InFlight(publish, result, writing.taken))
            marked += writing.marks
            if not any(self._writer_failed):
                break
        if not self._writing:
            self._writer_failed = [False] * len(self._writer_threads)
        return marked

    def _settle(self) -> None:
        """Finishes the batches in flight, if any: waits for their
        acknowledgements, marks their rows published and commits their offsets."""
        while self._writing:
            self._commit_all(self._collect_write())
        batches, self._in_flight = self._in_flight, []
        if not batches:
            return
        published: list[int] = []
        for batch in batches:
            self._health.enter("publish", batch.taken.messages)
            published += self._retry("publish", batch.publish)
        self._health.enter("mark", batches[-1].taken.messages)
        self._retry("database", lambda: self._mark_published(published))
        self._commit_all(batches)
        # Not finish_commit alone: retried after it failed, it would find no
        # answer left to take and leave the failed commit's offsets owed.
        self._retry("commit", self._member.commit_owed)
        self._resume_consumption()

    def _resume_consumption(self) -> None:
        """Resumes consumption if a retry paused it, now that the step it retried
        has succeeded; but not while the dead-letter limit holds it paused. Every
        path that retries ends here, or nothing would be consumed again."""
        if not self._limit.tripped:
            self._retry.resume_if_paused()

    def _commit_all(self, batches: list[_InFlight]) -> None:
        for batch in batches:
            self._health.enter("commit", batch.taken.messages)
            self._commit(batch)
        self._resume_consumption()

    def _commit(self, batch: _InFlight) -> None:
        # A batch is held for several batches' turns, longer while a step is
        # retried: a partition revoked and assigned again meanwhile has had
        # another owner, who may have committed past this batch.
        taken = batch.taken
        offsets = {
            key: offset
            for key, offset in taken.offsets.items()
            if self._member.assignment_of.get(key) == taken.assignments[key]
        }
        # The answer is taken with the next commit: a batch's turn later.
        self._retry("commit", lambda: self._member.commit(offsets, wait=False))
        self._resume_consumption()
        self._account(batch.result, len(taken.messages),
                      time.monotonic() - taken.started, taken.offsets)  # fmt: skip

    def _run_part(
        self, writer: int, batch: Batch, published: list[int]
    ) -> tuple[WriteResult, Delivery]:
        """One writer's share of a batch, on its thread. Once one has failed,
        the writer refuses those queued after it: they are written again on the
        main thread, after the failed one, so a partition's batches are never
        written out of order."""
        if self._writer_failed[writer]:
            raise TransientError("database", "an earlier batch of this writer failed")
        try:
            return self._write_and_send(batch, published)
        except BaseException:
            self._writer_failed[writer] = True
            raise

    def _write_and_send(
        self, batch: Batch, published: list[int]
    ) -> tuple[WriteResult, Delivery]:
        """The batch's transaction, then its rows handed to the producer."""
        result = self._write(batch, published)
        return result, self._publisher.send(result.outbox_rows)

    def _write(self, batch: Batch, published: list[int]) -> WriteResult:
        # Partitions revoked while retrying are someone else's now: drop them.
        current = Batch(
            events=[e for e in batch.events if self._owns(e.coordinates)],
            rejected=[r for r in batch.rejected if self._owns(r.coordinates)],
            duplicates_in_batch=batch.duplicates_in_batch,
        )
        with self._database(commit=True) as conn:
            return self._writer.write(conn, current, published)

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
    for the deliveries `sent` when the step was made (each writer sends its own
    rows), or sends the rows itself; and rows a failed attempt did deliver are
    not sent again by the next."""

    def __init__(
        self,
        publisher: OutboxPublisher,
        rows: list[OutboxRow],
        sent: list[Delivery] | None = None,
    ) -> None:
        self._publisher = publisher
        self._rows = rows
        self._delivered: list[int] = []
        self._sent = sent

    def ready(self) -> bool:
        """True when calling the step would not wait: every row sent has its
        answer (the producer's callbacks served, see OutboxPublisher.serve)."""
        return self._sent is not None and all(d.answered for d in self._sent)

    def __call__(self) -> list[int]:
        sent, self._sent = self._sent, None
        failure: PublishIncomplete | None = None
        for delivery in (
            sent if sent is not None else [self._publisher.send(self._rows)]
        ):
            try:
                self._delivered += delivery.wait()
            except PublishIncomplete as exc:
                self._delivered += exc.delivered
                failure = failure or exc
        if failure is not None:
            done = set(self._delivered)
            self._rows = [row for row in self._rows if row.id not in done]
            raise failure
        return self._delivered


def _by_writer(batch: Batch, writers: int) -> list[Batch]:
    """The batch split by partition, partition p to part p mod `writers`. The
    repeats dropped inside the batch are counted with the whole batch, not
    with a part (which may get no work at all)."""
    parts = [Batch() for _ in range(writers)]
    for event in batch.events:
        parts[event.coordinates.partition % writers].events.append(event)
    for rejected in batch.rejected:
        parts[rejected.coordinates.partition % writers].rejected.append(rejected)
    return parts


class _Part:
    """One writer's share of a batch, handed to its thread to `run`. `result`
    returns what its transaction returned, or raises what it raised; called
    again after a failure, it writes the share `again` on the calling thread."""

    def __init__(self, thread: ThreadPoolExecutor, batch: Batch,
                 published: list[int], run, again) -> None:  # fmt: skip
        self._future: Future | None = thread.submit(run, batch, published)
        self._again = lambda: again(batch, published)
        self._result: tuple[WriteResult, Delivery] | None = None

    def done(self) -> bool:
        return self._result is not None or (
            self._future is not None and self._future.done()
        )

    def result(self) -> tuple[WriteResult, Delivery]:
        if self._result is None:
            future, self._future = self._future, None
            self._result = future.result() if future is not None else self._again()
        return self._result


@dataclass(frozen=True, slots=True)
class _Taken:
    """A batch as it was consumed: its messages, when, its next offsets, and
    the assignment each partition was read under (GroupMember.assignment_of)."""

    messages: list[Any]
    started: float
    offsets: dict[tuple[str, int], int]
    assignments: dict[tuple[str, int], int | None]


class _Writing:
    """A batch whose transactions were handed to the writer threads; `marks` are
    the earlier batches whose rows they mark published."""

    def __init__(self, parts: list[_Part], marks: list[_InFlight], taken: _Taken,
                 duplicates_in_batch: int) -> None:  # fmt: skip
        self._parts = parts
        self.marks = marks
        self.taken = taken
        self.duplicates_in_batch = duplicates_in_batch

    def done(self) -> bool:
        """True when every part's transaction has finished, well or not."""
        return all(part.done() for part in self._parts)

    def results(self) -> list[tuple[WriteResult, Delivery]]:
        """Every part's result; a retry runs only the parts that failed."""
        return [part.result() for part in self._parts]


@dataclass
class _InFlight:
    """A batch whose transactions have committed and whose rows are being
    delivered; its offsets wait for them."""

    publish: _Remaining
    result: WriteResult
    taken: _Taken
