"""consumer/daemon.py: the order of a batch's steps while the batches after it
overlap them (the next one's transaction runs on the writer thread). For every
batch, its rows are sent only after its transaction committed, marked published
only in a transaction after the broker acknowledged them, and its offsets
committed only after that mark committed."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

import consumer.daemon as daemon_module
from alarmd.health import Health
from alarmd.settings import load_settings
from consumer.batch import Batch
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
        self.joined = True

    def owns(self, topic: str, partition: int) -> bool:
        return True

    def finish_commit(self) -> None:
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
    def __init__(self, log: RecordingLog, ids: list[int]) -> None:
        self._log, self._ids = log, ids

    def wait(self) -> list[int]:
        self._log.append(("acknowledged", tuple(self._ids)))
        return self._ids


class RecordingPublisher:
    def __init__(self, log: RecordingLog) -> None:
        self._log = log

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
        row_id = batch.events[0].coordinates.offset
        conn.written.append(row_id)
        return WriteResult(outbox_rows=[
            OutboxRow(row_id, OutboxMessage(str(row_id), "predictive", b"k", b"v", []))
        ])  # fmt: skip


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


def test_each_batch_is_sent_after_its_commit_marked_after_its_acks_then_committed(
    daemon, log
):
    """Four batches back to back, then the drained topic settles the last ones:
    every batch passes commit, send, acknowledgement, mark, offset commit, in
    that order, and a batch's transaction carries the marks of the batch two
    before it."""
    for first in (0, 10, 20, 30):
        daemon._process([Message(first), Message(first + 1)])
    daemon._settle()

    for row_id, next_offset in ((0, 2), (10, 12), (20, 22), (30, 32)):
        written = next(e for e in log if e[0] == "committed" and row_id in e[2])
        marked = next(e for e in log if e[0] == "committed" and row_id in e[1])
        assert (
            log.index_of(written)
            < log.index_of(("sent", (row_id,)))
            < log.index_of(("acknowledged", (row_id,)))
            < log.index_of(marked)
            < log.index_of(("offsets", next_offset))
        ), list(log)
    assert ("committed", (0,), (20,)) in log, "batch 3's transaction marks batch 1"
    assert ("committed", (10,), (30,)) in log, "batch 4's transaction marks batch 2"
    assert ("committed", (20, 30), ()) in log, "settling marks the last two at once"
    assert daemon._writing is None and daemon._in_flight == []


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


def test_each_writer_writes_its_own_partitions_and_a_share_of_the_marks(daemon, log):
    """Two writers (the default): a batch from partitions 0 and 1 becomes one
    transaction per partition, and the rows of the batch two before are marked
    half in each. Partition 1's offsets wait for its own mark."""
    assert len(daemon._writer_threads) == 2
    for first in (0, 10, 20):
        daemon._process(
            [Message(first, partition=0), Message(100 + first, partition=1)]
        )
    daemon._settle()

    committed = [entry for entry in log if entry[0] == "committed"]
    assert sorted(written for _, _, written in committed if written) == [
        (0,),
        (10,),
        (20,),
        (100,),
        (110,),
        (120,),
    ], "one transaction per partition and batch, each with its own rows"
    assert ("committed", (0,), (20,)) in log, (
        "writer 0 marks batch 1's row of partition 0"
    )
    assert ("committed", (100,), (120,)) in log, (
        "writer 1 marks batch 1's row of partition 1"
    )
    marked_101 = log.index_of(("committed", (100,), (120,)))
    assert log.index_of(("offsets of partition 1", 101)) > marked_101
