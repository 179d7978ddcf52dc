"""Redelivery of everything already processed, after the group's offsets are
reset to the beginning."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from .stack import ADMIN_TIMEOUT_S

DOWNSTREAM = ("predictive", "iac1", "notification", "dead_letter")


def reset_group_to_beginning(stack) -> list[TopicPartition]:
    """Commits each input partition's low watermark for the stack's (idle) group,
    as `kafka-consumer-groups --reset-offsets --to-earliest` would."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.services.kafka_bootstrap_servers,
            "group.id": stack.group_id,
            "enable.auto.commit": "false",
        }
    )
    try:
        metadata = consumer.list_topics(stack.topics.input, timeout=ADMIN_TIMEOUT_S)
        beginning = []
        for partition in sorted(metadata.topics[stack.topics.input].partitions):
            low, _high = consumer.get_watermark_offsets(
                TopicPartition(stack.topics.input, partition), timeout=ADMIN_TIMEOUT_S
            )
            beginning.append(TopicPartition(stack.topics.input, partition, low))
        consumer.commit(offsets=beginning, asynchronous=False)
        committed = consumer.committed(beginning, timeout=ADMIN_TIMEOUT_S)
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset, tp.error) for tp in committed] == [
        (tp.partition, tp.offset, None) for tp in beginning
    ]
    return committed


def test_redelivered_sample_adds_no_rows_and_no_downstream_records(
    stack, sample, sample_path
):
    """A second pass over the whole sample, from offset zero, stores nothing new
    and publishes nothing new to any downstream topic."""
    stack.produce_file(sample_path)
    stack.run_daemon_until_idle()
    rows_before = stack.counts()
    records_before = {
        name: stack.records(getattr(stack.topics, name)) for name in DOWNSTREAM
    }
    assert rows_before["alarm_events"] == sample.events
    assert len(records_before["predictive"]) == sample.cycles

    reset_group_to_beginning(stack)
    rerun = stack.run_daemon_until_idle()

    batches = rerun.events("batch_committed")
    assert sum(b["messages"] for b in batches) == sample.lines
    assert sum(b["stored"] for b in batches) == 0
    assert stack.counts() == rows_before
    for name, before in records_before.items():
        assert stack.records(getattr(stack.topics, name)) == before, name
