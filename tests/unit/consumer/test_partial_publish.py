"""A publish that delivers only some rows: the next attempt sends only the rest,
and every delivered row is reported once, so none is marked twice or missed."""

from __future__ import annotations

import pytest

from consumer.daemon import _Remaining
from db.outbox import OutboxMessage, OutboxRow
from producers.publisher import PublishIncomplete


def _row(row_id: int) -> OutboxRow:
    return OutboxRow(row_id, OutboxMessage(f"e{row_id}", "predictive", b"k", b"v", []))


class _Sent:
    def __init__(self, publisher: HalfDeliveringPublisher, ids: list[int]) -> None:
        self._publisher, self._ids = publisher, ids

    def wait(self) -> list[int]:
        self._publisher.waits += 1
        if self._publisher.waits == 1:
            raise PublishIncomplete("broker slow", self._ids[: len(self._ids) // 2])
        return self._ids


class HalfDeliveringPublisher:
    """Delivers the first half of what it is given on the first wait, then all."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.waits = 0

    def send(self, rows: list[OutboxRow]) -> _Sent:
        ids = [row.id for row in rows]
        self.calls.append(ids)
        return _Sent(self, ids)


def test_a_retry_publishes_only_the_rows_not_yet_delivered():
    """The second attempt sends only the rows the first did not deliver, and
    the step reports every row delivered once."""
    publisher = HalfDeliveringPublisher()
    step = _Remaining(publisher, [_row(i) for i in range(1, 7)])

    with pytest.raises(PublishIncomplete):
        step()
    delivered = step()

    assert publisher.calls == [[1, 2, 3, 4, 5, 6], [4, 5, 6]]
    assert sorted(delivered) == [1, 2, 3, 4, 5, 6]


def test_rows_sent_ahead_are_waited_for_not_sent_again():
    """A step made with the rows already sent (by the writer) waits for that send
    on its first attempt instead of sending a second time."""
    publisher = HalfDeliveringPublisher()
    rows = [_row(i) for i in range(1, 5)]
    step = _Remaining(publisher, rows, sent=[publisher.send(rows)])
    sent_before_any_attempt = list(publisher.calls)

    with pytest.raises(PublishIncomplete):
        step()
    delivered = step()

    assert sent_before_any_attempt == [[1, 2, 3, 4]]
    assert publisher.calls == [[1, 2, 3, 4], [3, 4]]
    assert sorted(delivered) == [1, 2, 3, 4]


def test_rows_sent_by_several_writers_are_all_waited_for():
    """Each writer sends its own rows: the first attempt waits for every one of
    those sends, even after one came back incomplete, and the retry sends only
    the row none of them delivered."""
    publisher = HalfDeliveringPublisher()
    first, second = [_row(1), _row(2)], [_row(3), _row(4)]
    step = _Remaining(
        publisher, first + second, sent=[publisher.send(first), publisher.send(second)]
    )

    with pytest.raises(PublishIncomplete):
        step()
    delivered = step()

    assert publisher.calls == [[1, 2], [3, 4], [2]]
    assert sorted(delivered) == [1, 2, 3, 4]
