"""consumer/daemon.py: the order of a batch's steps while the next batch
overlaps its publish. For every batch, its rows are sent only after its
transaction committed, marked published only in a transaction after the broker
acknowledged them, and its offsets committed only after that mark committed."""

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

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        self._log.append(("offsets", offsets[("alarms", 0)]))

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
    """Writes one outbox row per batch, its id the batch's first offset."""

    def write(self, conn: RecordingTransaction, batch: Batch) -> WriteResult:
        row_id = batch.events[0].coordinates.offset
        conn.written.append(row_id)
        return WriteResult(outbox_rows=[
            OutboxRow(row_id, OutboxMessage(str(row_id), "predictive", b"k", b"v", []))
        ])  # fmt: skip


class Message:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def topic(self) -> str:
        return "alarms"

    def partition(self) -> int:
        return 0

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
        DecodedEvent(Coordinates("alarms", 0, m.offset()), str(m.offset()), {}, m)
        for m in messages
    ])  # fmt: skip


def test_each_batch_is_sent_after_its_commit_marked_after_its_acks_then_committed(
    daemon, log
):
    """Three batches back to back, then the drained topic settles the last one:
    every batch passes commit, send, acknowledgement, mark, offset commit, in
    that order, and the next batch's transaction carries the previous marks."""
    for first in (0, 10, 20):
        daemon._process([Message(first), Message(first + 1)])
    daemon._settle()

    for row_id, next_offset in ((0, 2), (10, 12), (20, 22)):
        written = next(e for e in log if e[0] == "committed" and row_id in e[2])
        marked = next(e for e in log if e[0] == "committed" and row_id in e[1])
        assert (
            log.index_of(written)
            < log.index_of(("sent", (row_id,)))
            < log.index_of(("acknowledged", (row_id,)))
            < log.index_of(marked)
            < log.index_of(("offsets", next_offset))
        ), list(log)
    assert ("committed", (0,), (10,)) in log, "batch 2's transaction marks batch 1"
    assert daemon._in_flight is None


def test_a_drained_topic_leaves_nothing_in_flight(daemon, log):
    """With no batch after it, settling publishes, marks and commits the last
    batch on its own, and a second settle does nothing more."""
    daemon._process([Message(5)])
    before_settle = list(log)

    daemon._settle()
    daemon._settle()

    assert ("offsets", 6) not in before_settle
    assert log[len(before_settle):] == [
        ("acknowledged", (5,)), ("committed", (5,), ()), ("offsets", 6),
    ]  # fmt: skip
