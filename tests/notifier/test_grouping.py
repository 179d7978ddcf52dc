"""Grouping rules with the time passed in: no clock, no services."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.grouping import Grouper
from notifier.offsets import OffsetTracker
from notifier.request import Coordinates, NotificationRequest, Received

WAIT_S, INTERVAL_S = 30.0, 300.0


def received(n: int, customer: str = "a", text: str = "BCF FAULTY", partition=0):
    request = NotificationRequest(
        event_id=f"id-{n}", alarm_event_id=f"ev-{n}", ticket_id="", alarm_text=text,
        node_name=f"node-{n}", iactoken=str(n), event_time=datetime(2024, 1, 1, tzinfo=UTC),
        customer=customer, nodegroup="RAN", requested_at=datetime(2024, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    return Received(request, Coordinates("notification", partition, n), None, b"", [])


@pytest.fixture
def grouper() -> Grouper:
    return Grouper(["customer", "alarmText"], WAIT_S, INTERVAL_S)


def test_new_group_waits_group_wait_then_sends_all_siblings(grouper):
    grouper.add(received(1), now=0.0)
    grouper.add(received(2), now=10.0)

    assert grouper.due(now=29.9) == []
    [digest] = grouper.due(now=30.0)

    assert [r.request.event_id for r in digest.received] == ["id-1", "id-2"]
    assert digest.key == ("a", "BCF FAULTY")


def test_open_group_sends_later_requests_after_group_interval(grouper):
    grouper.add(received(1), now=0.0)
    grouper.due(now=30.0)
    grouper.add(received(2), now=31.0)

    assert grouper.due(now=329.0) == []
    [digest] = grouper.due(now=330.0)

    assert [r.request.event_id for r in digest.received] == ["id-2"]


def test_group_quiet_for_an_interval_closes_and_reopens_with_group_wait(grouper):
    grouper.add(received(1), now=0.0)
    grouper.due(now=30.0)
    assert grouper.due(now=330.0) == []  # nothing to send: the group closes
    grouper.add(received(2), now=400.0)

    assert grouper.due(now=429.0) == []
    assert len(grouper.due(now=430.0)) == 1


def test_keys_differing_in_customer_or_text_group_apart(grouper):
    for n, (customer, text) in enumerate(
        [("a", "X"), ("b", "X"), ("a", "Y"), ("a", "X")]
    ):
        grouper.add(received(n, customer, text), now=0.0)

    digests = grouper.due(now=WAIT_S)

    assert sorted(len(d.received) for d in digests) == [1, 1, 2]


def test_redelivered_copy_is_kept_as_a_duplicate_not_sent_again(grouper):
    assert grouper.add(received(1), now=0.0) is True
    copy = received(1)
    copy = Received(copy.request, Coordinates("notification", 1, 7), None, b"", [])
    assert grouper.add(copy, now=1.0) is False

    [digest] = grouper.due(now=WAIT_S)

    assert len(digest.received) == 1
    assert digest.duplicates == (Coordinates("notification", 1, 7),)


def test_revoked_partitions_requests_are_dropped(grouper):
    grouper.add(received(1, partition=0), now=0.0)
    grouper.add(received(2, partition=1), now=0.0)

    assert grouper.drop_partitions({("notification", 1)}) == 1
    [digest] = grouper.due(now=WAIT_S)

    assert [r.request.event_id for r in digest.received] == ["id-1"]


def test_unknown_grouping_field_is_refused():
    with pytest.raises(ValueError, match="not usable"):
        Grouper(["customer", "colour"], WAIT_S, INTERVAL_S)


def test_offsets_commit_only_below_the_lowest_unrecorded_request():
    tracker = OffsetTracker()
    for offset in (0, 1, 2):
        tracker.seen(Coordinates("t", 0, offset))
    tracker.done(Coordinates("t", 0, 0))
    tracker.done(Coordinates("t", 0, 2))

    assert tracker.committable() == {("t", 0): 1}
    tracker.committed({("t", 0): 1})
    tracker.done(Coordinates("t", 0, 1))

    assert tracker.committable() == {("t", 0): 3}
