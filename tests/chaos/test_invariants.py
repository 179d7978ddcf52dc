"""The run's checks and workload on their own, with a stand-in stack and
hand-made emails: each check reports what it must, and fails when it must."""

from __future__ import annotations

import json
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

from alarmd.errors import DeadLetterReason
from tests.integration.sample import SAMPLE_PATH
from tests.integration.topic_reader import Record
from tests.poison import Message, PoisonCase

from .invariants import Findings, check_database, check_dead_letters, check_emails
from .workload import Workload, build, email_key, stored_key

TOKEN_A, TOKEN_B = "3100012-x", "3100017-x"
TIME_A, TIME_B = "2024-03-11T01:00:13+01:00", "2024-03-11T00:05:00Z"


def workload(**changes) -> Workload:
    fields = {
        "messages": [],
        "distinct_before": [],
        "stored": Counter(),
        "cycle_tokens": frozenset(),
        "notifications": Counter(
            [
                email_key(TOKEN_A, "BCF FAULTY", TIME_A),
                email_key(TOKEN_B, "BCF FAULTY", TIME_B),
            ]
        ),  # fmt: skip
    }
    return Workload(**{**fields, **changes})


def write_email(folder: Path, name: str, message_id: str, rows: list[tuple]) -> None:
    text = "".join(
        f"- TT Number: -\n  Alarm Name: {alarm}\n  Node Id: site-1\n"
        f"  IAC Token: {token}\n  Event Time: {shown}\n"
        for token, alarm, shown in rows
    )
    message = EmailMessage()
    message["Message-ID"] = message_id
    message.set_content(
        f"{len(rows)} alarms for customer-a.\n\n{text}-- \nalarmd notify\n"
    )
    message.add_alternative("<p>table</p>", subtype="html")
    (folder / name).write_bytes(message.as_bytes())


def test_workload_repeats_about_five_percent_under_fresh_tokens():
    """N messages, 5% of them byte-for-byte repeats, every iactoken new."""
    built = build(SAMPLE_PATH, 2000, "t1", seed=7)
    values = [value for _, value, _ in built.messages]
    lines = SAMPLE_PATH.read_text("utf-8").splitlines()
    sample_tokens = {json.loads(line)["iactoken"] for line in lines if line.strip()}

    assert len(values) == 2000
    assert len(set(values)) == built.events == 1900
    assert {key.decode() for key, _, _ in built.messages}.isdisjoint(sample_tokens)
    counted = built.distinct_before
    assert counted[0] == 0 and max(counted) <= built.events
    assert all(a <= b <= a + 1 for a, b in zip(counted, counted[1:], strict=False))


def test_every_request_in_one_email_passes(tmp_path):
    """Both requests in one email: nothing missing, nothing repeated."""
    write_email(tmp_path, "1.eml", "<a@x>", list(workload().notifications))
    found = Findings()

    check_emails(tmp_path, workload(), found)

    assert (found.counts["emails_missing"], found.counts["emails_repeated"]) == (0, 0)
    assert found.failures == []


def test_a_request_in_no_email_is_missing(tmp_path):
    """A request no email lists is counted missing and fails the run."""
    write_email(tmp_path, "1.eml", "<a@x>", list(workload().notifications)[:1])
    found = Findings()

    check_emails(tmp_path, workload(), found)

    assert found.counts["emails_missing"] == 1
    assert found.failures == ["1 notification requests were in no email"]


def test_the_same_email_sent_again_is_a_repeat_within_the_smtp_window(tmp_path):
    """A second copy with the same Message-ID is counted, not failed."""
    rows = list(workload().notifications)
    write_email(tmp_path, "1.eml", "<a@x>", rows)
    write_email(tmp_path, "2.eml", "<a@x>", rows)
    found = Findings()

    check_emails(tmp_path, workload(), found)

    assert (found.counts["emails_missing"], found.counts["emails_repeated"]) == (0, 2)
    assert found.failures == []


def test_a_request_in_two_different_emails_fails(tmp_path):
    """The same request under two Message-IDs is outside the window: a failure."""
    rows = list(workload().notifications)
    write_email(tmp_path, "1.eml", "<a@x>", rows)
    write_email(tmp_path, "2.eml", "<b@x>", rows[:1])
    found = Findings()

    check_emails(tmp_path, workload(), found)

    assert found.failures == ["1 notification requests were in two different emails"]


class CannedStack:
    """Answers the checks' queries and topic reads from fixed rows."""

    def __init__(self, answers: dict[str, list[tuple]], dead: list[Record] = ()):
        self.answers, self.dead = answers, list(dead)
        self.topics = SimpleNamespace(dead_letter="alarms.dlq")

    def query(self, sql: str, _parameters: tuple = ()) -> list[tuple]:
        return next(rows for start, rows in self.answers.items() if start in sql)

    def records(self, _topic: str) -> list[Record]:
        return self.dead


def event_row(token: str, moment: str) -> tuple:
    return (token, "BCF FAULTY", "Active", "In", True, moment, "info")


def test_a_lost_event_and_a_repeated_row_are_both_counted():
    """Stored rows are matched to the input by content: one missing, one extra."""
    expected = Counter(
        stored_key(*event_row(t, m)) for t, m in [(TOKEN_A, TIME_A), (TOKEN_B, TIME_B)]
    )
    stack = CannedStack({
        "FROM alarm_events": [event_row(TOKEN_A, TIME_A), event_row(TOKEN_A, TIME_A)],
        "FROM alarm_cycles": [(TOKEN_A,)],
        "FROM cycle_tasks": [(1,)],
        "FROM outbox": [(0,)],
    })  # fmt: skip
    found = Findings()

    check_database(
        stack, workload(stored=expected, cycle_tokens=frozenset({TOKEN_A})), found
    )

    assert (found.counts["lost"], found.counts["duplicated_rows"]) == (1, 1)
    assert len(found.failures) == 2


def dead_letter(partition: int, offset: int, reason: str, value: bytes) -> Record:
    headers = (
        ("alarmd-source-partition", str(partition).encode()),
        ("alarmd-source-offset", str(offset).encode()),
        ("alarmd-error-reason", reason.encode()),
        ("alarmd-error-detail", b"payload is 3 bytes; too short for a header"),
    )
    return Record(
        topic="alarms.dlq", partition=partition, offset=offset, timestamp_ms=None,
        key=b"bad-x", value=value, headers=headers,
    )  # fmt: skip


def test_dead_letters_match_the_poison_set_by_position_and_reason():
    """A poison message with the wrong reason is both unexpected and missing; a
    dead letter of a good message is unexpected; a repeat is a duplicate."""
    poison = {
        (0, 5): PoisonCase(
            "x", Message(b"bad-x", b"abc"), DeadLetterReason.BAD_FRAMING
        ),
        (1, 9): PoisonCase(
            "x", Message(b"bad-x", b"abc"), DeadLetterReason.BAD_FRAMING
        ),
    }
    stack = CannedStack({}, [
        dead_letter(0, 5, "bad_framing", b"abc"),
        dead_letter(0, 5, "bad_framing", b"abc"),
        dead_letter(1, 9, "malformed_record", b"abc"),
        dead_letter(2, 1, "bad_framing", b"abc"),
    ])  # fmt: skip
    found = Findings(counts={"duplicate_downstream": 0})

    check_dead_letters(stack, poison, found)

    assert (found.counts["unexpected_dlq"], found.counts["missing_dlq"]) == (2, 1)
    assert found.counts["duplicate_downstream"] == 1
