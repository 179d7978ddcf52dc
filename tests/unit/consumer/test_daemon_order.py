"""consumer/daemon.py: the order of a batch's steps while the batches after it
overlap them (the next one's transaction runs on the writer thread). For every
batch, its rows are sent only after its transaction committed, marked published
only in a transaction after the broker acknowledged them, and its offsets
committed only after that mark committed."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

import consumer.daemon as daemon_module
from alarmd import metrics
from alarmd.errors import TransientError
from alarmd.health import Health
from alarmd.settings import load_settings
from consumer.batch import Batch
from consumer.membership import GroupMember
from consumer.retry import PausingRetry
from consumer.transaction import WriteResult
from db.outbox import OutboxMessage, OutboxRow


class RecordingLog(list):
    def index_of(self, entry: tuple) -> int:
        assert entry in self, f"{entry} never happened; the log is {list(self)}"
        return self.index(entry)


class RecordingMember:
    """Owns every partition, never fails, records offset commits."""

    def __init__(self, log: RecordingLog) -> None:
        self._log = log
        self.assigned = {("alarms", 0)}
        self.assignment_of = {("alarms", 0): 1}
        self.joined = True

    def owns(self, topic: str, partition: int) -> bool:
        return True

    def finish_commit(self) -> None:
        pass

    def commit_owed(self) -> None:
        pass

    def commit(self, offsets: dict[tuple[str, int], int], wait: bool = True) -> None:
        if ("alarms", 0) in offsets:
            self._log.append(("offsets", offsets[("alarms", 0)]))
        if ("alarms", 1) in offsets:
            self._log.append(("offsets of partition 1", offsets[("alarms", 1)]))

    def pausing_retry(self, initial_s, max_s, give_up) -> PausingRetry:
        return PausingRetry(initial_s=initial_s, max_s=max_s, pause=lambda: None,
                            resume=lambda: None, poll=lambda _s: None,
                            give_up=give_up)  # fmt: skip


class RecordingDelivery:
    answered = True

    def __init__(self, log: RecordingLog, ids: list[int]) -> None:
        self._log, self._ids = log, ids

    def wait(self) -> list[int]:
        self._log.append(("acknowledged", tuple(self._ids)))
        return self._ids


class RecordingPublisher:
    def __init__(self, log: RecordingLog) -> None:
        self._log = log

    def serve(self) -> None:
        pass

    def send(self, rows: list[OutboxRow]) -> RecordingDelivery:
        ids = [row.id for row in rows]
        self._log.append(("sent", tuple(ids)))
        return RecordingDelivery(self._log, ids)


class RecordingTransaction:
    """A connection whose commit is logged with the marks and rows written in it."""

    def __init__(self, log: RecordingLog) -> None:
        self._log = log
        self.marked: list[int] = []
        self.written: list[int] = []

    @contextlib.contextmanager
    def cursor(self):
        yield self

    def execute(self, sql: str, parameters: tuple) -> None:
        assert sql.startswith("UPDATE outbox SET published_at")
        self.marked += parameters[0]


class BatchOfOneRowWriter:
    """Writes one outbox row per batch, its id the batch's first offset, in the
    transaction that marks the rows it is given."""

    def prepare(self, batch: Batch) -> None:
        pass

    def write(
        self, conn: RecordingTransaction, batch: Batch, published: list[int]
    ) -> WriteResult:
        conn.marked += published
        if not batch.events:  # a writer given marks only
            return WriteResult()
        row_id = batch.events[0].coordinates.offset
        conn.written.append(row_id)
        return WriteResult(outbox_rows=[
            OutboxRow(row_id, OutboxMessage(str(row_id), "predictive", b"k", b"v", []))
        ])  # fmt: skip


class FailingOnceWriter(BatchOfOneRowWriter):
    """Fails the transaction holding `fail_row` the first time, as a database
    restart would, once `release` is set."""

    def __init__(self, fail_row: int) -> None:
        self._fail_row = fail_row
        self._failed = False
        self.release = threading.Event()

    def write(
        self, conn: RecordingTransaction, batch: Batch, published: list[int]
    ) -> WriteResult:
        first = batch.events[0].coordinates.offset if batch.events else None
        if first == self._fail_row and not self._failed:
            self._failed = True
            assert self.release.wait(10)
            raise TransientError("database", "the server closed the connection")
        return super().write(conn, batch, published)


class Message:
    def __init__(self, offset: int, partition: int = 0) -> None:
        self._offset = offset
        self._partition = partition

    def topic(self) -> str:
        return "alarms"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def daemon(monkeypatch, log):
    monkeypatch.setattr(
        daemon_module, "GroupMember", lambda *a, **k: RecordingMember(log)
    )
    monkeypatch.setattr(daemon_module, "OutboxPublisher",
                        lambda *a, **k: RecordingPublisher(log))  # fmt: skip

    @contextlib.contextmanager
    def transaction(_engine, commit: bool = False):
        conn = RecordingTransaction(log)
        yield conn
        if commit:
            log.append(("committed", tuple(conn.marked), tuple(conn.written)))

    monkeypatch.setattr(daemon_module, "translated_connection", transaction)
    monkeypatch.setattr(daemon_module, "decode_batch", _one_event_per_message)
    built = daemon_module.Daemon(load_settings(), None, None, Health(lambda: True))
    built._writer = BatchOfOneRowWriter()
    return built


def _one_event_per_message(messages: list[Any], _decode) -> Batch:
    from consumer.batch import Coordinates, DecodedEvent

    return Batch(events=[
        DecodedEvent(Coordinates("alarms", m.partition(), m.offset()),
                     str(m.offset()), {}, m)
        for m in messages
    ])  # fmt: skip


def _assert_steps_in_order(log, row_id: int, offsets_entry: tuple) -> None:
    """The row's batch: written and committed, sent, acknowledged, marked in
    a later committed transaction (exactly one), then its offsets committed."""
    written = [e for e in log if e[0] == "committed" and row_id in e[2]]
    marked = [e for e in log if e[0] == "committed" and row_id in e[1]]
    assert len(written) == 1 and len(marked) == 1, list(log)
    assert (
        log.index_of(written[0])
        < log.index_of(("sent", (row_id,)))
        < log.index_of(("acknowledged", (row_id,)))
        < log.index_of(marked[0])
        < log.index_of(offsets_entry)
    ), list(log)


def test_each_batch_is_sent_after_its_commit_marked_after_its_acks_then_committed(
    daemon, log
):
    """Four batches back to back, then the drained topic settles the last ones:
    every batch passes commit, send, acknowledgement, mark, offset commit, in
    that order, however far the main thread decoded ahead of the writers."""
    for first in (0, 10, 20, 30):
        daemon._process([Message(first), Message(first + 1)])
    daemon._settle()

    for row_id in (0, 10, 20, 30):
        _assert_steps_in_order(log, row_id, ("offsets", row_id + 2))
    offsets = [entry[1] for entry in log if entry[0] == "offsets"]
    assert offsets == sorted(offsets) == [2, 12, 22, 32], "offsets only move forward"
    assert not daemon._writing and daemon._in_flight == []


def test_a_drained_topic_leaves_nothing_in_flight(daemon, log):
    """With no batch after it, settling publishes, marks and commits the last
    batch on its own, and a second settle does nothing more."""
    daemon._process([Message(5)])
    # Each writer thread runs its jobs in order: these run after the write.
    for writer in daemon._writer_threads:
        writer.submit(lambda: None).result()
    before_settle = list(log)

    daemon._settle()
    daemon._settle()

    assert ("offsets", 6) not in before_settle
    assert log[len(before_settle):] == [
        ("acknowledged", (5,)), ("committed", (5,), ()), ("offsets", 6),
    ]  # fmt: skip


def test_each_writer_writes_its_own_partitions(daemon, log):
    """Two writers (the default): a batch from partitions 0 and 1 becomes one
    transaction per partition, and each partition's offsets wait for its own
    batch's mark."""
    assert len(daemon._writer_threads) == 2
    for first in (0, 10, 20):
        daemon._process(
            [Message(first, partition=0), Message(100 + first, partition=1)]
        )
    daemon._settle()

    committed = [entry for entry in log if entry[0] == "committed"]
    assert sorted(written for _, _, written in committed if written) == [
        (0,), (10,), (20,), (100,), (110,), (120,),
    ], "one transaction per partition and batch, each with its own rows"  # fmt: skip
    for first in (0, 10, 20):
        _assert_steps_in_order(log, first, ("offsets", first + 1))
        _assert_steps_in_order(
            log, 100 + first, ("offsets of partition 1", 100 + first + 1)
        )


def test_a_failed_write_is_done_again_before_the_batches_queued_behind_it(daemon, log):
    """The writer fails batch 1's transaction once: batch 2, queued behind it on
    the same writer, is refused there, and the main thread writes both again,
    batch 1 first, so a partition's batches are written in order."""
    daemon._writer = writer = FailingOnceWriter(fail_row=0)

    daemon._process([Message(0)])
    daemon._process([Message(10)])  # queued behind batch 1, still being written
    writer.release.set()
    daemon._settle()

    written = [e[2] for e in log if e[0] == "committed" and e[2]]
    assert written == [(0,), (10,)], list(log)
    for row_id in (0, 10):
        _assert_steps_in_order(log, row_id, ("offsets", row_id + 1))


def test_a_batch_held_while_its_partition_left_and_came_back_commits_no_offsets(
    daemon, log
):
    """Partition 0 is revoked and assigned again (a second daemon joined and
    left) while its batch is in flight: the other owner may have committed past
    it, so the batch's offsets are not committed, lest the offset move back."""
    daemon._process([Message(0)])
    daemon._member.assignment_of = {("alarms", 0): 2}  # revoked, then assigned again

    daemon._process([Message(10)])
    daemon._settle()

    assert [e for e in log if e[0] == "offsets"] == [("offsets", 11)], list(log)


class TimingOutFirstCommit:
    """A consumer whose first offset commit times out, as when the group
    coordinator moves; later commits succeed and are recorded."""

    def __init__(self) -> None:
        self.committed: list[list[tuple[int, int]]] = []
        self.paused = False
        self._calls = 0

    def commit(self, *, offsets, asynchronous) -> None:
        self._calls += 1
        if self._calls == 1:
            error = KafkaError(KafkaError.REQUEST_TIMED_OUT, "request timed out")
            raise KafkaException(error)
        self.committed.append([(tp.partition, tp.offset) for tp in offsets])

    def pause(self, _partitions) -> None:
        self.paused = True

    def resume(self, _partitions) -> None:
        self.paused = False

    def consume(self, _messages, _timeout_s) -> list:
        return []

    def close(self) -> None:
        pass


def test_settling_commits_again_the_offsets_of_a_commit_that_failed(daemon, log):
    """The last batch's offset commit fails when the daemon settles (a drained
    topic, a sweep, a shutdown): the retry commits those offsets again rather
    than finding no answer left to wait for and leaving them uncommitted."""
    member = GroupMember(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "unit", "log_level": 0},
        Health(lambda: True),
        on_fatal=lambda: None,
    )
    member._consumer.close()
    member._consumer = consumer = TimingOutFirstCommit()
    member.assigned = {("alarms", 0)}
    daemon._member = member
    daemon._retry = member.pausing_retry(0.01, 0.01, give_up=lambda: False)

    daemon._process([Message(0)])
    daemon._settle()

    assert consumer.committed == [[(0, 1)]]
    assert not member.owes_commit
    assert not consumer.paused, "the retry paused consumption and nothing resumed it"
    member.close()


def test_repeats_within_a_batch_are_counted_whichever_writers_get_work(
    daemon, log, monkeypatch
):
    """A batch whose events all belong to writer 1 (odd partitions, two
    writers) still counts the repeats dropped inside it: writer 0 gets no part
    of it at all."""

    def decode_with_repeats(messages, _decode) -> Batch:
        batch = _one_event_per_message(messages, _decode)
        batch.duplicates_in_batch = 3
        return batch

    monkeypatch.setattr(daemon_module, "decode_batch", decode_with_repeats)
    before = metrics.DUPLICATE_EVENTS._value.get()

    daemon._process([Message(7, partition=1)])
    daemon._settle()

    assert metrics.DUPLICATE_EVENTS._value.get() - before == 3
