"""The checks at the end of a run, read from PostgreSQL, the topics and the
received emails themselves, never from alarmd's counters or logs."""

from __future__ import annotations

import email
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, TopicPartition

import schemas
from alarmd.errors import DeadLetterReason
from tests.integration.stack import Stack
from tests.integration.topic_reader import Record
from tests.poison import PoisonCase

from .workload import EMAIL_TIME_FORMAT, EmailKey, Workload, email_key, stored_key

METADATA_TIMEOUT_S = 30.0
# One alarm of an email's plain-text table (templates/body.txt.j2).
EMAIL_ROW = re.compile(
    r"^- TT Number: .*\n  Alarm Name: (?P<text>.*)\n  Node Id: .*\n"
    r"  IAC Token: (?P<token>.*)\n  Event Time: (?P<time>.*)$",
    re.MULTILINE,
)


@dataclass
class Findings:
    """The report's counts, and one sentence per broken invariant."""

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def fail_unless(self, condition: bool, sentence: str) -> None:
        if not condition:
            self.failures.append(sentence)


def check_database(stack: Stack, workload: Workload, found: Findings) -> None:
    """Every distinct event stored once, cycles as the input implies, nothing
    left in the outbox."""
    rows = stack.query(
        "SELECT iactoken, alarm_text, status, scope, final, event_time, "
        "additional_info FROM alarm_events"
    )
    stored = Counter(stored_key(*row) for row in rows)
    lost = sum((workload.stored - stored).values())
    duplicated = sum((stored - workload.stored).values())
    found.counts.update(stored=len(rows), lost=lost, duplicated_rows=duplicated)
    found.fail_unless(lost == 0, f"{lost} distinct events produced were not stored")
    found.fail_unless(
        duplicated == 0,
        f"{duplicated} stored rows repeat an event or match no event produced",
    )

    cycles = Counter(row[0] for row in stack.query("SELECT iactoken FROM alarm_cycles"))
    tasks = stack.query("SELECT count(*) FROM cycle_tasks")[0][0]
    found.counts["cycles"] = sum(cycles.values())
    found.fail_unless(
        cycles == Counter(workload.cycle_tokens)
        and tasks == len(workload.cycle_tokens),
        f"{sum(cycles.values())} cycles and {tasks} tasks for "
        f"{len(workload.cycle_tokens)} iactokens with an in-scope final event",
    )

    pending = stack.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    found.counts["outbox_pending"] = pending[0][0]
    found.fail_unless(pending[0][0] == 0, f"{pending[0][0]} outbox rows unpublished")


def check_downstream(stack: Stack, workload: Workload, found: Findings) -> None:
    """Every expected request on predictive, iac1 and notification, under the
    event ids of the outbox; repeats counted."""
    missing = duplicates = 0
    for topic in (stack.topics.predictive, stack.topics.iac1):
        records = stack.records(topic)
        keys = {r.key.decode() for r in records if r.key is not None}
        missing += len(workload.cycle_tokens - keys)
        found.fail_unless(
            keys <= workload.cycle_tokens,
            f"{topic} holds requests for {len(keys - workload.cycle_tokens)} "
            "iactokens that start no cycle",
        )
        duplicates += _repeats(records)
        missing += _outbox_ids_absent(stack, topic, records)

    records = stack.records(stack.topics.notification)
    by_id = {r.event_id: r for r in records}
    present = Counter(_notification_key(r.value) for r in by_id.values())
    missing += sum((workload.notifications - present).values())
    extra = sum((present - workload.notifications).values())
    found.fail_unless(
        extra == 0, f"{extra} notification requests match no listed event produced"
    )
    duplicates += _repeats(records)
    missing += _outbox_ids_absent(stack, stack.topics.notification, records)

    found.counts.update(missing_downstream=missing, duplicate_downstream=duplicates)
    found.fail_unless(
        missing == 0, f"{missing} expected downstream messages are not on the topics"
    )


def check_dead_letters(
    stack: Stack, poison: dict[tuple[int, int], PoisonCase], found: Findings
) -> None:
    """alarms.dlq holds exactly the poison messages, each with its reason, its
    original bytes and a detail a person can read."""
    records = stack.records(stack.topics.dead_letter)
    by_source: dict[tuple[int, int], list[Record]] = defaultdict(list)
    for record in records:
        source = (
            int(record.text_header("alarmd-source-partition") or -1),
            int(record.text_header("alarmd-source-offset") or -1),
        )
        by_source[source].append(record)

    unexpected = unreadable = 0
    for source, copies in by_source.items():
        expected = poison.get(source)
        first = copies[0]
        sent = expected.message if expected else None
        if (
            sent is None
            or first.text_header("alarmd-error-reason") != expected.reason
            or (first.key, first.value) != (sent.key, sent.value)
        ):
            unexpected += 1
        detail = first.text_header("alarmd-error-detail") or ""
        reason = first.text_header("alarmd-error-reason") or ""
        if reason not in set(DeadLetterReason) or (
            expected is not None and expected.detail not in detail
        ):
            unreadable += 1
    missing = sum(
        1
        for source, expected in poison.items()
        if not any(
            r.text_header("alarmd-error-reason") == expected.reason
            for r in by_source.get(source, [])
        )
    )
    found.counts.update(unexpected_dlq=unexpected, missing_dlq=missing)
    found.counts["duplicate_downstream"] += len(records) - len(by_source)
    found.fail_unless(
        unexpected == 0,
        f"{unexpected} dead letters are not poison messages with their reason and bytes",
    )
    found.fail_unless(missing == 0, f"{missing} poison messages were not dead-lettered")
    found.fail_unless(
        unreadable == 0,
        f"{unreadable} dead letters lack a known reason or a detail naming the problem",
    )


def check_emails(folder: Path, workload: Workload, found: Findings) -> None:
    """Every notification request in exactly one received email; a repeat is
    allowed only as the same email again (the same Message-ID), the window the
    sidecar documents between an SMTP acceptance and its record."""
    every_copy: Counter[EmailKey] = Counter()
    once_per_email: Counter[EmailKey] = Counter()
    seen_ids: set[str] = set()
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(("plain",))
        assert body is not None, f"{path} has no plain-text part"
        rows = Counter(
            email_key(m["token"], m["text"], _email_time(m["time"]))
            for m in EMAIL_ROW.finditer(body.get_content().replace("\r\n", "\n"))
        )
        every_copy += rows
        if message["Message-ID"] not in seen_ids:
            seen_ids.add(message["Message-ID"])
            once_per_email += rows

    missing = sum((workload.notifications - once_per_email).values())
    in_two_emails = sum((once_per_email - workload.notifications).values())
    found.counts.update(
        emails_missing=missing,
        emails_repeated=sum((every_copy - workload.notifications).values()),
        emails_received=len(list(folder.glob("*.eml"))),
    )
    found.fail_unless(missing == 0, f"{missing} notification requests were in no email")
    found.fail_unless(
        in_two_emails == 0,
        f"{in_two_emails} notification requests were in two different emails",
    )


def lag(bootstrap_servers: str, group: str, topic: str) -> int:
    """Messages on the topic past the group's committed offsets."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group})
    try:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        partitions = [
            TopicPartition(topic, p) for p in metadata.topics[topic].partitions
        ]
        committed = consumer.committed(partitions, timeout=METADATA_TIMEOUT_S)
        total = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S)
            total += high - (tp.offset if tp.offset >= 0 else low)
        return total
    finally:
        consumer.close()


def _repeats(records: list[Record]) -> int:
    return len(records) - len({r.event_id for r in records})


def _outbox_ids_absent(stack: Stack, topic: str, records: list[Record]) -> int:
    ids = {
        row[0]
        for row in stack.query("SELECT event_id FROM outbox WHERE topic = %s", (topic,))
    }
    return len(ids - {r.event_id for r in records})


def _notification_key(value: bytes | None) -> EmailKey:
    schema = schemas.load(schemas.NOTIFICATION_REQUEST)
    assert value is not None and value.startswith(schema.header)
    record = fastavro.schemaless_reader(
        io.BytesIO(value[len(schema.header) :]), schema.parsed, None
    )
    return email_key(record["iactoken"], record["alarmText"], record["eventTime"])  # type: ignore[index, call-overload]


def _email_time(shown: str) -> datetime:
    return datetime.strptime(shown.strip(), EMAIL_TIME_FORMAT).replace(tzinfo=UTC)
