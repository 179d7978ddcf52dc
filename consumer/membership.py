"""A consumer-group member: the Kafka consumer of one worker, the partitions it
owns, pausing and resuming them, and the messages fetched while paused.

The daemon and the email sidecar each hold one. Everything here runs on the
poll loop's thread; the rebalance callbacks run inside `consume`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as CommitTimeout
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from alarmd import logs
from alarmd.broker_refusal import RefusalWatch
from alarmd.errors import TransientError
from alarmd.health import Health
from consumer.commit import to_commit
from consumer.retry import PausingRetry

log = logs.get(__name__)

# Most messages one poll fetches while partitions are paused.
PAUSED_POLL_MESSAGES = 100
# Longest wait for the group coordinator to answer one offset commit.
COMMIT_TIMEOUT_S = 30.0
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
    # librdkafka prefetches up to 64 MiB of messages by default, and fetches up
    # to 50 MiB at a time: during a large backlog that is most of the process's
    # memory. 16 MiB is still tens of thousands of alarms, seconds of work ahead.
    "queued.max.messages.kbytes": "16384",
    "fetch.max.bytes": "16777216",
}

Partitions = set[tuple[str, int]]
# Called with the partitions just assigned or revoked, after the member's own
# bookkeeping; may return extra fields for the lifecycle log line.
RebalanceHook = Callable[[Partitions], dict[str, Any] | None]


class GroupMember:
    """One member of a consumer group, with manual offset commits.

    `config` is librdkafka configuration on top of CONSUMER_DEFAULTS (group.id
    included); the member adds its own error callback. `on_fatal` is called
    when librdkafka reports a fatal error. A broker that refuses the
    credentials or whose certificate does not verify makes `consume` and
    `poll_while_paused` raise ConfigurationError.
    """

    def __init__(
        self,
        config: dict[str, Any],
        health: Health,
        on_fatal: Callable[[], None],
        commit_timeout_s: float = COMMIT_TIMEOUT_S,
    ) -> None:
        self._health = health
        self._commit_timeout_s = commit_timeout_s
        self._owed: dict[tuple[str, int], int] = {}
        # A commit handed to the committer thread, its answer not yet taken.
        self._answer: tuple[Future, list[TopicPartition], float] | None = None
        # A synchronous commit waits for the coordinator as long as the broker
        # is away; it runs here, so the poll loop waits a bounded time and
        # retries (polling meanwhile) instead. One thread keeps commits in order.
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="commit")
        self._on_fatal = on_fatal
        self._consumer = Consumer(
            {**CONSUMER_DEFAULTS, **config, "error_cb": self._on_kafka_error}
        )
        self.assigned: Partitions = set()
        # Per partition, which assignment gave it to this member: offsets read
        # under an earlier one are stale once the partition has been away, and
        # committing them could move the group's offset backwards.
        self.assignment_of: dict[tuple[str, int], int] = {}
        self._assignments = 0
        self.joined = False
        self._paused = False
        self._stash: list[Any] = []
        self._last_kafka_error = ""
        self._refusal = RefusalWatch()
        self._on_assigned: RebalanceHook | None = None
        self._on_revoked: RebalanceHook | None = None

    def subscribe(
        self,
        topics: list[str],
        on_assigned: RebalanceHook | None = None,
        on_revoked: RebalanceHook | None = None,
    ) -> None:
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        self._consumer.subscribe(
            topics,
            on_assign=self._assign,
            on_revoke=self._revoke,
            on_lost=self._revoke,
        )

    def pausing_retry(
        self, initial_s: float, max_s: float, give_up: Callable[[], bool]
    ) -> PausingRetry:
        """A retry that pauses this member's assignment while it waits and keeps
        polling, so the member stays in its group."""
        return PausingRetry(
            initial_s=initial_s,
            max_s=max_s,
            pause=lambda: self.set_paused(True),
            resume=lambda: self.set_paused(False),
            poll=self.poll_while_paused,
            give_up=give_up,
        )

    def owns(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.assigned

    # --- fetching --------------------------------------------------------------

    def consume(self, max_messages: int, timeout_s: float) -> list[Any]:
        """The messages stashed while paused, then up to `max_messages` fetched
        within `timeout_s`, errors left out. Blocks up to `timeout_s`; beats the
        health probe."""
        self._health.enter("consume")
        with self._health.waiting_on_broker():
            fetched = self._consumer.consume(max_messages, timeout_s)
        messages = self._take_stash() + fetched
        self._refusal.raise_if_refused()
        self._health.beat()
        return [m for m in messages if self._usable(m)]

    def set_paused(self, paused: bool) -> None:
        """Pauses or resumes the whole current assignment; partitions assigned
        while paused start paused."""
        self._paused = paused
        # From our own record of the assignment: asking librdkafka for it waits
        # on its group thread, which an offset commit can hold while the
        # broker is away.
        assignment = [TopicPartition(t, p) for t, p in sorted(self.assigned)]
        if assignment:
            (self._consumer.pause if paused else self._consumer.resume)(assignment)

    def poll_while_paused(self, seconds: float) -> None:
        """Serves heartbeats and rebalances for up to `seconds`; anything already
        fetched is kept for the next `consume`, in order."""
        self._health.beat()
        with self._health.waiting_on_broker():
            fetched = self._consumer.consume(PAUSED_POLL_MESSAGES, seconds)
        self._stash += [m for m in fetched if self._usable(m)]
        self._refusal.raise_if_refused()

    def _take_stash(self) -> list[Any]:
        stash, self._stash = self._stash, []
        return [m for m in stash if (m.topic(), m.partition()) in self.assigned]

    def _usable(self, message: Any) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal() or error.code() == KafkaError._FATAL:
            # librdkafka reports some fatal errors (a fenced static member) only
            # here, as _FATAL without the fatal flag, and never to error_cb.
            self._on_fatal_error(error)
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consume_error", topic=message.topic(),
                        partition=message.partition(), error=error.str())  # fmt: skip
        return False

    # --- offsets and closing -----------------------------------------------------

    def commit(self, offsets: dict[tuple[str, int], int], wait: bool = True) -> None:
        """Commits these next offsets, with any owed, for partitions still
        assigned. Blocks up to the commit timeout. A commit refused by a
        rebalance is kept and made with the next one, for the partitions still
        assigned. Raises TransientError when it may succeed later (no answer in
        time included), KafkaException when it never will.

        With `wait` false it returns once the commit is handed to the committer
        thread, and the next call (or `finish_commit`) takes the answer first,
        raising what this one would have. Commits are made one at a time, in
        order."""
        self.finish_commit()
        # Offsets a rebalance refused earlier, for partitions this member kept,
        # and offsets whose commit failed.
        owed = {tp: o for tp, o in self._owed.items() if tp in self.assigned}
        self._owed = {}
        partitions = to_commit({**owed, **offsets}, self.assigned)
        if not partitions:
            return
        self._answer = (
            self._committer.submit(
                self._consumer.commit, offsets=partitions, asynchronous=False
            ),
            partitions,
            time.monotonic() + self._commit_timeout_s,
        )
        if wait:
            self.finish_commit()

    def finish_commit(self) -> None:
        """Takes the answer to a commit made without waiting, if one is due;
        raises as `commit` does. The offsets of a commit that failed are made
        again with the next one."""
        if self._answer is None:
            return
        pending, partitions, deadline = self._answer
        self._answer = None
        try:
            pending.result(timeout=max(deadline - time.monotonic(), 0.0))
        except CommitTimeout:
            # Committing the same offsets again is harmless; a commit that
            # lands late for partitions since reassigned is fenced by the group.
            self._keep(partitions)
            raise TransientError(
                "commit",
                "the group coordinator did not answer within "
                f"{self._commit_timeout_s:g} s",
            ) from None
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in REVOKED_COMMIT_ERRORS:
                # The member may keep these partitions through the rebalance
                # (an incremental one usually does): they are committed with
                # the next commit, or by commit_owed when no batch follows.
                self._keep(partitions)
                log.warning("commit_deferred_by_rebalance", error=error.str())
                return
            if error.retriable() or not error.fatal():
                self._keep(partitions)
                raise TransientError("commit", error.str()) from exc
            raise

    def _keep(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._owed[(tp.topic, tp.partition)] = tp.offset

    @property
    def owes_commit(self) -> bool:
        """True when offsets a rebalance refused, or a commit made without
        waiting, still have to be committed or answered."""
        return bool(self._owed) or self._answer is not None

    def commit_owed(self) -> None:
        """Commits offsets a rebalance refused, for partitions still assigned,
        and waits for the answer to any commit made without waiting."""
        self.commit({})

    def close(self) -> None:
        """Leaves the group. Blocks until the consumer is closed."""
        self._committer.shutdown(wait=False, cancel_futures=True)
        self._consumer.close()

    # --- Kafka callbacks ---------------------------------------------------------

    def _assign(self, consumer: Consumer, partitions: list) -> None:
        self.joined = True
        self._health.joined()
        added = {(p.topic, p.partition) for p in partitions}
        self.assigned |= added
        self._assignments += 1
        self.assignment_of.update(dict.fromkeys(added, self._assignments))
        if partitions:
            # librdkafka keeps a partition's pause across its loss and return:
            # one paused during a retry, lost, and assigned again after the
            # retry resumed an empty assignment would never be fetched again.
            # Assign here, so the state set next is that of the assignment.
            consumer.incremental_assign(partitions)
            (consumer.pause if self._paused else consumer.resume)(partitions)
        extra = (self._on_assigned(added) if self._on_assigned else None) or {}
        log.info("partitions_assigned", partitions=sorted(p for _, p in added),
                 total=len(self.assigned), **extra)  # fmt: skip

    def _revoke(self, _consumer: Consumer, partitions: list) -> None:
        removed = {(p.topic, p.partition) for p in partitions}
        self.assigned -= removed
        # Its new owner commits from now on; a refused commit owed for it
        # would, should the partition come back, move its offset backwards.
        for key in removed:
            self._owed.pop(key, None)
            self.assignment_of.pop(key, None)
        self._stash = [
            m for m in self._stash if (m.topic(), m.partition()) in self.assigned
        ]
        extra = (self._on_revoked(removed) if self._on_revoked else None) or {}
        log.info("partitions_revoked", partitions=sorted(p for _, p in removed),
                 total=len(self.assigned), **extra)  # fmt: skip

    def _on_fatal_error(self, error: KafkaError) -> None:
        log.error("kafka_fatal_error", error=error.str())
        self._on_fatal()

    def _on_kafka_error(self, error: KafkaError) -> None:
        if self._refusal.notice(error):
            return
        # Warn again only when the error text changes: librdkafka repeats itself.
        if error.fatal():
            self._on_fatal_error(error)
        elif error.str() != self._last_kafka_error:
            self._last_kafka_error = error.str()
            log.warning("kafka_error", error=error.str())
