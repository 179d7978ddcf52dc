"""The dead-letter limit, for real: a stream of messages the daemon cannot
decode (a collector switched framing) pauses it instead of being
dead-lettered; nothing past the good messages is committed, and a restart with
the fixed setting stores everything."""

from __future__ import annotations

import requests
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from alarmd.settings import Settings

from .avro_framing import good_messages
from .sample import expect
from .stack import ADMIN_TIMEOUT_S, RUN_TIMEOUT_S

HTTP_TIMEOUT_S = 5.0
GOOD_LINES = 12
# Long enough for the first batch to hold every message produced before the
# daemon started, so the crossing batch is the whole stream.
BATCH_TIMEOUT_S = "2"


def committed_offsets(stack) -> dict[int, int]:
    """The group's committed offset of each input partition that has one."""
    consumer = Consumer({"bootstrap.servers": stack.services.kafka_bootstrap_servers,
                         "group.id": stack.group_id, "enable.auto.commit": "false"})  # fmt: skip
    try:
        metadata = consumer.list_topics(stack.topics.input, timeout=ADMIN_TIMEOUT_S)
        partitions = [
            TopicPartition(stack.topics.input, p)
            for p in metadata.topics[stack.topics.input].partitions
        ]
        committed = consumer.committed(partitions, timeout=ADMIN_TIMEOUT_S)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}


def metric(base_url: str, name: str) -> float | None:
    text = requests.get(f"{base_url}/metrics", timeout=HTTP_TIMEOUT_S).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def test_a_stream_of_garbage_pauses_the_daemon_and_the_fix_stores_it(
    stack, sample_lines, tmp_path
):
    """Good single-object events are stored and committed; then more messages
    than ALARMD_DEAD_LETTER_LIMIT_IN_ROW arrive in schemaless framing. The
    daemon holds them back: /readyz 503 with the reason, /healthz 200, the
    gauge at 1, a log line, nothing dead-lettered or committed past the good
    messages. Restarted with ALARMD_INPUT_ENCODING=schemaless, it stores them."""
    in_row = Settings.model_fields["dead_letter_limit_in_row"].default
    good = sample_lines[:GOOD_LINES]
    garbage = sample_lines[GOOD_LINES : GOOD_LINES + in_row + 50]
    placed = stack.produce_raw(good_messages(good, []))
    stack.run_daemon_until_idle()
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    assert committed_offsets(stack) == ends

    schemaless_file = tmp_path / "schemaless.jsonl"
    schemaless_file.write_text("\n".join(garbage) + "\n", encoding="utf-8")
    stack.alarmd("produce", str(schemaless_file), "--encoding", "schemaless",
                 "--no-progress")  # fmt: skip
    daemon = stack.start_daemon(
        exit_when_idle_s=None, extra_env={"ALARMD_BATCH_TIMEOUT_S": BATCH_TIMEOUT_S}
    )
    base_url = f"http://127.0.0.1:{daemon.http_port(RUN_TIMEOUT_S)}"
    tripped = daemon.wait_for_event("dead_letter_limit_tripped", RUN_TIMEOUT_S)

    readyz = requests.get(f"{base_url}/readyz", timeout=HTTP_TIMEOUT_S)
    healthz = requests.get(f"{base_url}/healthz", timeout=HTTP_TIMEOUT_S)
    assert readyz.status_code == 503
    assert "dead-letter limit" in readyz.text and f"{in_row} invalid" in readyz.text
    assert healthz.status_code == 200
    assert metric(base_url, "alarmd_dead_letter_limit_tripped") == 1
    assert tripped["reasons"] and "ALARMD_DEAD_LETTER_LIMIT_IN_ROW" in tripped["reason"]
    daemon.terminate()
    assert daemon.wait(RUN_TIMEOUT_S) == 0, daemon.tail()

    counts = stack.counts()
    assert counts["processing_errors"] == 0
    assert counts["alarm_events"] == expect(good).events
    assert stack.records(stack.topics.dead_letter) == []
    assert committed_offsets(stack) == ends

    stack.run_daemon_until_idle({"ALARMD_INPUT_ENCODING": "schemaless"})
    counts = stack.counts()
    assert counts["alarm_events"] == expect(good + garbage).events
    assert counts["processing_errors"] == 0
    assert counts["outbox_pending"] == 0
    assert stack.records(stack.topics.dead_letter) == []


def test_a_tripped_daemon_asked_to_exit_when_idle_exits_1(stack, sample_lines):
    """With --exit-when-idle, a daemon holding a batch back does not claim to be
    done: it exits 1."""
    stack.produce_raw(good_messages(sample_lines[:5], []))
    daemon = stack.start_daemon(
        extra_env={"ALARMD_INPUT_ENCODING": "schemaless",
                   "ALARMD_DEAD_LETTER_LIMIT_IN_ROW": "3",
                   "ALARMD_BATCH_TIMEOUT_S": BATCH_TIMEOUT_S}
    )  # fmt: skip
    assert daemon.wait(RUN_TIMEOUT_S) == 1, daemon.tail()
    assert daemon.events("dead_letter_limit_tripped")
    assert stack.counts()["processing_errors"] == 0
