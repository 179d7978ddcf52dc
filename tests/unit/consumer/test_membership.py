"""consumer/membership.py: a broker that refuses the credentials or the
certificate ends consumption with a ConfigurationError, other errors do not;
assigned partitions take the member's pause state; commits wait a bounded time."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from alarmd.errors import ConfigurationError, TransientError
from alarmd.health import Health
from consumer.membership import GroupMember

SCRAM_REFUSAL = (
    "sasl_ssl://kafka:9094/bootstrap: SASL authentication error: Authentication "
    "failed during authentication due to invalid credentials with SASL mechanism "
    "SCRAM-SHA-512"
)
CERTIFICATE_REFUSAL = (
    "sasl_ssl://kafka:9094/bootstrap: SSL handshake failed: error:0A000086:SSL "
    "routines::certificate verify failed: broker certificate could not be verified"
)


@pytest.fixture
def member():
    """A member whose consumer never reaches a broker: nothing listens there."""
    member = GroupMember(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "unit", "log_level": 0},
        Health(lambda: True),
        on_fatal=lambda: None,
    )
    yield member
    member.close()


@pytest.mark.parametrize(
    ("code", "text", "setting"),
    [
        (KafkaError._AUTHENTICATION, SCRAM_REFUSAL, "ALARMD_KAFKA_SASL_PASSWORD"),
        (KafkaError._SSL, CERTIFICATE_REFUSAL, "ALARMD_KAFKA_SSL_CA_LOCATION"),
    ],
    ids=["refused credentials", "unverified certificate"],
)
def test_refused_connection_ends_consumption_with_the_setting_to_fix(
    member, code, text, setting
):
    """The librdkafka error arrives through the error callback; the next
    consume raises a ConfigurationError naming the error and the setting."""
    member._on_kafka_error(KafkaError(code, text))

    with pytest.raises(ConfigurationError) as raised:
        member.consume(1, 0.01)

    assert text in str(raised.value) and setting in str(raised.value)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (KafkaError._TRANSPORT, "kafka:9094/bootstrap: Connection refused"),
        (KafkaError._SSL, "kafka:9094/bootstrap: SSL handshake failed: Disconnected"),
        (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
    ],
    ids=["transport", "handshake cut short", "all brokers down"],
)
def test_an_unavailable_broker_is_not_a_refusal(member, code, text):
    """A broker that is away, or cuts a handshake short, is waited for."""
    member._on_kafka_error(KafkaError(code, text))

    assert member.consume(1, 0.01) == []


class RecordingConsumer:
    """Records the assignment and pause calls a rebalance callback makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []

    def incremental_assign(self, partitions) -> None:
        self.calls.append(("assign", [p.partition for p in partitions]))

    def pause(self, partitions) -> None:
        self.calls.append(("pause", [p.partition for p in partitions]))

    def resume(self, partitions) -> None:
        self.calls.append(("resume", [p.partition for p in partitions]))


@pytest.mark.parametrize(
    ("paused", "state"),
    [(False, "resume"), (True, "pause")],
    ids=["fetching", "paused"],
)
def test_assigned_partitions_take_the_members_pause_state(member, paused, state):
    """Partitions (again) assigned are assigned, then paused or resumed as the
    member is: librdkafka would otherwise keep a lost partition's old pause."""
    consumer = RecordingConsumer()
    member._paused = paused
    partitions = [TopicPartition("alarms", 0), TopicPartition("alarms", 3)]

    member._assign(consumer, partitions)

    assert consumer.calls == [("assign", [0, 3]), (state, [0, 3])]
    assert member.assigned == {("alarms", 0), ("alarms", 3)}


class UnansweredCommits:
    """A consumer whose commits wait for a coordinator that never answers."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def commit(self, **_arguments) -> None:
        self.released.wait()

    def close(self) -> None:
        self.released.set()


def test_a_commit_without_an_answer_is_transient_after_the_commit_timeout():
    """The poll loop waits for a commit no longer than the commit timeout; then
    the commit is a transient failure, to be retried while polling."""
    member = GroupMember(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "unit", "log_level": 0},
        Health(lambda: True),
        on_fatal=lambda: None,
        commit_timeout_s=0.2,
    )
    member._consumer.close()
    member._consumer = UnansweredCommits()
    member.assigned = {("alarms", 0)}
    started = time.monotonic()

    with pytest.raises(TransientError, match="did not answer within 0.2 s"):
        member.commit({("alarms", 0): 10})

    assert time.monotonic() - started < 2.0
    member.close()


def _member_using(consumer) -> GroupMember:
    """A member whose Kafka consumer is `consumer`."""
    member = GroupMember(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "unit", "log_level": 0},
        Health(lambda: True),
        on_fatal=lambda: None,
    )
    member._consumer.close()
    member._consumer = consumer
    return member


class RebalancingCommits:
    """A consumer whose first commit meets a rebalance; later ones succeed."""

    def __init__(self) -> None:
        self.committed: list[list[tuple[int, int]]] = []

    def commit(self, *, offsets, asynchronous) -> None:
        if not self.committed:
            self.committed.append([])
            raise KafkaException(
                KafkaError(KafkaError.ILLEGAL_GENERATION, "generation id is not valid")
            )
        self.committed.append([(tp.partition, tp.offset) for tp in offsets])

    def close(self) -> None:
        pass


def test_a_commit_refused_by_a_rebalance_is_retried_for_what_is_still_assigned():
    """The member may keep its partitions through a rebalance: the refused
    offsets are committed afterwards for the partitions it still owns, so
    processed messages are not left uncommitted for good."""
    member = _member_using(consumer := RebalancingCommits())
    member.assigned = {("alarms", 0), ("alarms", 3)}
    offsets = {("alarms", 0): 16677, ("alarms", 3): 900}

    member.commit(offsets)  # refused: kept for later, the loop goes on
    member.assigned = {("alarms", 0)}  # the rebalance moved partition 3 away
    member.commit_owed()

    assert consumer.committed[-1] == [(0, 16677)]
    member.close()


class RebalancingAssigningCommits(RebalancingCommits):
    """RebalancingCommits that also takes assignments."""

    def incremental_assign(self, _partitions) -> None:
        pass

    def resume(self, _partitions) -> None:
        pass


def test_a_refused_commit_is_dropped_for_a_partition_revoked_and_assigned_again():
    """Partition 3 leaves during the rebalance that refused its commit, and comes
    back later: its new owner committed meanwhile, so the refused offset, owed no
    more, is never committed (it would move the group's offset backwards)."""
    member = _member_using(consumer := RebalancingAssigningCommits())
    member._assign(consumer, [TopicPartition("alarms", 0), TopicPartition("alarms", 3)])
    first = member.assignment_of[("alarms", 3)]

    member.commit({("alarms", 0): 16677, ("alarms", 3): 900})  # refused
    member._revoke(consumer, [TopicPartition("alarms", 3)])
    member._assign(consumer, [TopicPartition("alarms", 3)])
    member.commit_owed()

    assert consumer.committed[-1] == [(0, 16677)]
    assert member.assignment_of[("alarms", 3)] != first
    member.close()
