"""consumer/dead_letter_limit.py: counting invalid messages in a row and over a
window, and what the daemon's side does when the limit is crossed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from alarmd.errors import DeadLetterReason
from alarmd.health import Health
from alarmd.settings import Settings
from consumer.batch import Batch, Coordinates, Rejected
from consumer.dead_letter_limit import DeadLetterLimit, InvalidRun

from ..conftest import FakeMessage


def first_crossing(flags: list[bool], in_row: int, ratio: float, window: int):
    """The index of the first message at which the limit is crossed, by the
    definition read literally: the last `in_row` messages all invalid, or more
    than ratio * window of the last `window` invalid; None if never."""
    for i in range(len(flags)):
        seen = flags[: i + 1]
        if in_row and len(seen) >= in_row and all(seen[-in_row:]):
            return i
        if ratio and len(seen) >= window and sum(seen[-window:]) > ratio * window:
            return i
    return None


def feed(run: InvalidRun, flags: list[bool], cuts: list[int]):
    """Feeds the flags in batches cut at `cuts`; the index of the message at
    which the run first reports a crossing, judged per batch as the daemon
    does, or None."""
    start = 0
    for end in [*sorted(set(cuts)), len(flags)]:
        batch = flags[start:end]
        if batch and run.exceeded(batch):
            return start, end
        start = max(start, end)
    return None


@given(
    flags=st.lists(st.booleans(), max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=8),
    in_row=st.integers(0, 12),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 0.9]),
    window=st.integers(1, 30),
)
def test_crossing_happens_in_the_batch_holding_the_first_crossing_message(
    flags, cuts, in_row, ratio, window
):
    """However the messages are cut into batches, the limit is reported for
    exactly the batch that holds the first message crossing it."""
    expected = first_crossing(flags, in_row, ratio, window)
    reported = feed(InvalidRun(in_row, ratio, window), flags, cuts)
    if expected is None:
        assert reported is None
    else:
        assert reported is not None and reported[0] <= expected < reported[1]


def test_in_row_counts_across_batches_and_a_valid_message_resets_it():
    """Four invalid, a valid one, then four invalid stay below 5 in a row; a
    fifth in a row, in the next batch, crosses and names the setting."""
    run = InvalidRun(max_in_row=5, max_ratio=0, window=1)
    assert run.exceeded([True] * 4 + [False]) is None
    assert run.exceeded([True] * 4) is None
    reason = run.exceeded([True])
    assert reason is not None and "ALARMD_DEAD_LETTER_LIMIT_IN_ROW=5" in reason


def test_ratio_is_judged_only_once_the_window_is_full():
    """Nine invalid out of nine do not cross a 0.5 ratio over 10; the tenth
    message, valid, leaves 9 of 10 invalid, which crosses."""
    run = InvalidRun(max_in_row=0, max_ratio=0.5, window=10)
    assert run.exceeded([True] * 9) is None
    assert run.exceeded([True]) is not None


def test_invalid_messages_leave_the_window_as_it_slides():
    """Five invalid then many valid messages: later invalid ones are judged
    against the last window only, so four more do not cross 0.5 of 10."""
    run = InvalidRun(max_in_row=0, max_ratio=0.5, window=10)
    assert run.exceeded([True] * 5 + [False] * 20) is None
    assert run.exceeded([True, False] * 4) is None


@pytest.mark.parametrize("count", [1, 10_000])
def test_zero_switches_both_tests_off(count):
    """With both limits 0, no number of invalid messages crosses."""
    assert InvalidRun(0, 0, 1000).exceeded([True] * count) is None


def rejected(message: FakeMessage) -> Rejected:
    return Rejected(
        coordinates=Coordinates(message.topic(), message.partition(), message.offset()),
        key=message.key(), value=message.value(), headers=[], stage="decode",
        reason=DeadLetterReason.BAD_FRAMING, detail="not single-object",
    )  # fmt: skip


def test_crossing_fails_readiness_keeps_liveness_and_says_so():
    """The batch that crosses is held (and every batch after it); readiness
    fails with the reason, liveness stays, the gauge is 1, one error line."""
    health = Health(lambda: True)
    health.joined()
    limit = DeadLetterLimit(Settings(dead_letter_limit_in_row=3), health)
    messages = [FakeMessage(b"x", partition=2, offset=40 + i) for i in range(3)]
    good = [FakeMessage(b"y", partition=2, offset=43)]

    assert not limit.holds(good, Batch())
    with capture_logs() as logs:
        assert limit.holds(messages, Batch(rejected=[rejected(m) for m in messages]))
        assert limit.holds(good, Batch())

    ready, reason = health.ready()
    assert not ready and "3 invalid messages in a row" in reason
    assert health.alive()
    assert REGISTRY.get_sample_value("alarmd_dead_letter_limit_tripped") == 1
    [line] = [e for e in logs if e["event"] == "dead_letter_limit_tripped"]
    assert line["held_from"] == {2: 40} and line["reasons"] == ["bad_framing"]
