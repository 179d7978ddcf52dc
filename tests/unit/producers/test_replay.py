"""producers/replay.py: the headers a replayed dead letter carries."""

from __future__ import annotations

from alarmd.errors import DeadLetterReason
from producers.replay import REPLAY_OF_HEADER, replay_headers

from ..alarmd.test_dead_letters import dead_letter


def test_a_replay_carries_the_original_headers_and_names_its_dead_letter():
    """Dead-lettering's alarmd-event-id, alarmd-source-* and alarmd-error-*
    headers are dropped; the original's stay, in order, then alarmd-replay-of."""
    letter = dead_letter(DeadLetterReason.UNKNOWN_SCHEMA, partition=2, offset=9)
    assert any(name.startswith("alarmd-error-") for name, _ in letter.record.headers)
    assert replay_headers(letter) == [
        ("collector", b"robot-7"), (REPLAY_OF_HEADER, b"alarms.dlq/2/9")
    ]  # fmt: skip


def test_a_second_replay_names_only_the_latest_dead_letter():
    """A replay that was dead-lettered again is replayed with the original
    headers and one alarmd-replay-of header, naming the newer dead letter."""
    first = dead_letter(partition=0, offset=1)
    again = dead_letter(partition=5, offset=42, headers=replay_headers(first))
    assert replay_headers(again) == [
        ("collector", b"robot-7"), (REPLAY_OF_HEADER, b"alarms.dlq/5/42")
    ]  # fmt: skip
