"""A publish that delivers only some rows: the next attempt sends only the rest,
and every delivered row is reported once, so none is marked twice or missed."""

from __future__ import annotations

import pytest

from consumer.daemon import _Remaining
from db.outbox import OutboxMessage, OutboxRow
from producers.publisher import PublishIncomplete


def _row(row_id: int) -> OutboxRow:
    return OutboxRow(row_id, OutboxMessage(f"e{row_id}", "predictive", b"k", b"v", []))


class HalfDeliveringPublisher:
    """Delivers the first half of what it is given on the first call, then all."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def publish(self, rows: list[OutboxRow]) -> list[int]:
        ids = [row.id for row in rows]
        self.calls.append(ids)
        if len(self.calls) == 1:
            raise PublishIncomplete("broker slow", ids[: len(ids) // 2])
        return ids


def test_a_retry_publishes_only_the_rows_not_yet_delivered():
    publisher = HalfDeliveringPublisher()
    step = _Remaining(publisher, [_row(i) for i in range(1, 7)])

    with pytest.raises(PublishIncomplete):
        step()
    delivered = step()

    assert publisher.calls == [[1, 2, 3, 4, 5, 6], [4, 5, 6]]
    assert sorted(delivered) == [1, 2, 3, 4, 5, 6]
