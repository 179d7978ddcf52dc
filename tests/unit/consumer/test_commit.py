"""consumer/commit.py: which offsets a batch commits."""

from __future__ import annotations

from consumer.commit import next_offsets, to_commit


def _committed(partitions) -> list[tuple[str, int, int]]:
    return [(tp.topic, tp.partition, tp.offset) for tp in partitions]


def test_next_offset_is_one_past_the_highest_per_partition(kafka_message):
    """Per partition, the offset to commit is the highest consumed offset plus one,
    whatever order the messages came in."""
    messages = [
        kafka_message(b"", partition=0, offset=7),
        kafka_message(b"", partition=1, offset=40),
        kafka_message(b"", partition=0, offset=9),
        kafka_message(b"", partition=0, offset=8),
    ]

    assert next_offsets(messages) == {("alarms", 0): 10, ("alarms", 1): 41}


def test_same_partition_number_of_another_topic_is_kept_apart(kafka_message):
    """Partition 0 of two topics are two entries."""
    messages = [
        kafka_message(b"", topic="alarms", partition=0, offset=3),
        kafka_message(b"", topic="alarms-replay", partition=0, offset=100),
    ]

    assert next_offsets(messages) == {("alarms", 0): 4, ("alarms-replay", 0): 101}


def test_offsets_not_committed_for_revoked_partitions():
    """A partition no longer assigned is left to its new owner: no offset for it."""
    offsets = {("alarms", 0): 10, ("alarms", 1): 41, ("alarms", 2): 5}

    partitions = to_commit(offsets, assigned={("alarms", 0), ("alarms", 2)})

    assert _committed(partitions) == [("alarms", 0, 10), ("alarms", 2, 5)]


def test_nothing_committed_when_every_partition_was_revoked():
    """After losing the whole assignment, the batch commits nothing at all."""
    assert to_commit({("alarms", 3): 12}, assigned=set()) == []


def test_assignment_of_another_topic_does_not_count():
    """Owning alarms-replay[1] is not owning alarms[1]."""
    partitions = to_commit({("alarms", 1): 8}, assigned={("alarms-replay", 1)})

    assert partitions == []


def test_offsets_to_commit_are_in_partition_order():
    """The commit lists partitions sorted, so logs and commits read the same."""
    offsets = {("alarms", 5): 1, ("alarms", 0): 2, ("alarms", 3): 3}

    partitions = to_commit(offsets, assigned=set(offsets))

    assert [tp.partition for tp in partitions] == [0, 3, 5]
