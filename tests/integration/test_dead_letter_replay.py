"""`alarmd dlq list` and `alarmd dlq replay`: dead letters from a wrong setting
are listed with their origin and reason, replayed once the setting is fixed,
stored by the daemon, and never replayed twice, even by racing or crashed runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

from alarmd.errors import DeadLetterReason

from .avro_framing import COLLECTOR_HEADER, good_messages
from .polling import wait_until
from .sample import ROOT, expect
from .stack import RUN_TIMEOUT_S

REPLAY_OF = "alarmd-replay-of"
# The daemon is misconfigured for framing: producers send single-object Avro.
WRONG_ENCODING = {"ALARMD_INPUT_ENCODING": "schemaless"}


def dead_letter_with_wrong_encoding(stack, lines: list[str]):
    """Produces the lines in single-object framing and runs the daemon set to
    schemaless, so every one is dead-lettered; returns the messages and where
    each was placed on the input topic."""
    messages = good_messages(lines)
    placed = stack.produce_raw(messages)
    stack.run_daemon_until_idle(WRONG_ENCODING)
    counts = stack.counts()
    assert (counts["alarm_events"], counts["processing_errors"]) == (0, len(lines))
    return messages, placed


def alarmd_json_lines(stack, *args: str) -> list[dict]:
    done = stack.alarmd(*args)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def alarmd_failing(stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alarmd.cli", *args], env=stack.env(), cwd=ROOT,
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip


def replays_on_input(stack) -> Counter:
    """How often each dead-letter coordinate was replayed to the input topic."""
    return Counter(
        r.text_header(REPLAY_OF)
        for r in stack.records(stack.topics.input)
        if r.header(REPLAY_OF) is not None
    )


def test_dead_letters_are_listed_with_origin_and_reason(stack, sample_lines):
    """`dlq list --json` shows each dead letter's source coordinates, reason,
    detail and key; --reason filters by a known reason and refuses an unknown
    one with a sentence; --since 1h selects them all and a time to come none."""
    lines = sample_lines[:5]
    messages, placed = dead_letter_with_wrong_encoding(stack, lines)

    listed = alarmd_json_lines(stack, "dlq", "list", "--json")

    assert sorted(
        (e["source"]["partition"], e["source"]["offset"]) for e in listed
    ) == (sorted(placed))
    assert {e["source"]["topic"] for e in listed} == {stack.topics.input}
    assert {e["dlq"]["topic"] for e in listed} == {stack.topics.dead_letter}
    assert sorted(e["key"] for e in listed) == sorted(m[0].decode() for m in messages)
    assert all(e["reason"] in set(DeadLetterReason) and e["detail"] for e in listed)
    reason = listed[0]["reason"]
    same = alarmd_json_lines(stack, "dlq", "list", "--json", "--reason", reason)
    assert len(same) == sum(1 for e in listed if e["reason"] == reason)
    assert len(alarmd_json_lines(stack, "dlq", "list", "--json", "--since", "1h")) == (
        len(listed)
    )
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert alarmd_json_lines(stack, "dlq", "list", "--json", "--since", later) == []

    unknown = alarmd_failing(stack, "dlq", "list", "--reason", "bad_vibes")
    assert unknown.returncode == 2
    assert "bad_vibes" in unknown.stderr and "bad_framing" in unknown.stderr


def test_replay_after_the_fix_is_stored_and_never_repeated(stack, sample_lines):
    """Dead letters from a wrong encoding are replayed with their original key,
    value and headers plus the replay header; the fixed daemon stores them; a
    dry run produces nothing; a second replay produces nothing either."""
    lines = sample_lines[:6]
    messages, _placed = dead_letter_with_wrong_encoding(stack, lines)

    dry = alarmd_json_lines(stack, "dlq", "replay", "--all", "--dry-run", "--json")
    assert dry[-1]["would_replay"] == len(lines) and dry[-1]["replayed"] == 0
    assert len(stack.records(stack.topics.input)) == len(lines)

    report = alarmd_json_lines(stack, "dlq", "replay", "--all", "--json")[-1]
    assert (report["replayed"], report["already_replayed"]) == (len(lines), 0)

    dead = {f"{r.topic}/{r.partition}/{r.offset}": r
            for r in stack.records(stack.topics.dead_letter)}  # fmt: skip
    replayed = [r for r in stack.records(stack.topics.input) if r.header(REPLAY_OF)]
    assert sorted(r.text_header(REPLAY_OF) for r in replayed) == sorted(dead)
    assert sorted((r.key, r.value) for r in replayed) == sorted(
        (key, value) for key, value, _ in messages
    )
    for record in replayed:
        assert list(record.headers) == [
            COLLECTOR_HEADER,
            (REPLAY_OF, record.header(REPLAY_OF)),
        ]
    rows = stack.query(
        "SELECT dlq_topic || '/' || dlq_partition || '/' || dlq_offset, "
        "replay_partition, replay_offset FROM dead_letter_replays"
    )
    assert sorted(rows) == sorted(
        (r.text_header(REPLAY_OF), r.partition, r.offset) for r in replayed
    )

    stack.run_daemon_until_idle()
    counts = stack.counts()
    assert counts["alarm_events"] == expect(lines).events
    assert counts["processing_errors"] == len(lines)
    assert counts["outbox_pending"] == 0

    again = alarmd_json_lines(stack, "dlq", "replay", "--all", "--json")[-1]
    assert (again["replayed"], again["already_replayed"]) == (0, len(lines))
    assert replays_on_input(stack) == Counter(dict.fromkeys(dead, 1))


def test_replay_needs_a_filter_or_all(stack):
    """Without a filter, replay refuses with a sentence rather than replaying
    everything."""
    done = alarmd_failing(stack, "dlq", "replay")
    assert done.returncode == 2
    assert "--all" in done.stderr


def test_racing_replays_replay_each_dead_letter_once(stack, sample_lines):
    """Two replays started together produce each dead letter exactly once
    between them; a run that another took over says so and exits 1."""
    lines = sample_lines[:60]
    dead_letter_with_wrong_encoding(stack, lines)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "alarmd.cli", "dlq", "replay", "--all"],
            env=stack.env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outcomes = [(run.wait(RUN_TIMEOUT_S), *run.communicate()) for run in runs]

    assert 0 in [code for code, _, _ in outcomes], outcomes
    for code, _out, err in outcomes:
        assert code == 0 or (code == 1 and "took over" in err), err
    dead = {f"{r.topic}/{r.partition}/{r.offset}"
            for r in stack.records(stack.topics.dead_letter)}  # fmt: skip
    assert replays_on_input(stack) == Counter(dict.fromkeys(dead, 1))
    assert stack.query("SELECT count(*) FROM dead_letter_replays") == [(len(dead),)]


# A replay run that dies (os._exit, as a SIGKILL would: no rollback, no abort)
# at the point named by argv[1].
CRASHING_REPLAY = """
import os, sys, time
from alarmd.dead_letters import Selection, read_dead_letters
from alarmd.settings import load_settings
from db.engine import make_engine
from producers.replay import Replayer

settings = load_settings()
replayer = Replayer(settings, make_engine(settings))
real = replayer._producer

class ProducerDyingBeforeCommit:
    def __getattr__(self, name):
        return getattr(real, name)

    def commit_transaction(self, *args):
        real.flush(30)  # the records are on the log, in the open transaction
        os._exit(9)

# Says it is about to commit (file argv[2]), then waits for the go-ahead (argv[3]).
class ProducerWaitingBeforeCommit:

    def __getattr__(self, name):
        return getattr(real, name)

    def commit_transaction(self, *args):
        real.flush(30)
        open(sys.argv[2], "w").close()
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.05)
        return real.commit_transaction(*args)

if sys.argv[1] == "before-kafka-commit":
    replayer._producer = ProducerDyingBeforeCommit()
elif sys.argv[1] == "wait-before-kafka-commit":
    replayer._producer = ProducerWaitingBeforeCommit()
elif sys.argv[1] == "lose-database-after-kafka-commit":
    replayer._record = lambda cur, placed: cur.execute(
        "SELECT pg_terminate_backend(pg_backend_pid())"
    )
else:
    replayer._record = lambda cur, placed: os._exit(9)
replayer.replay(read_dead_letters(settings, Selection()))
"""


def crash_replay(stack, point: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_REPLAY, point], env=stack.env(), cwd=ROOT,
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 9, done.stderr


def test_a_crash_before_the_kafka_commit_leaves_nothing_and_the_next_run_replays_once(
    stack, sample_lines
):
    """A run killed with its Kafka transaction open and its claims uncommitted
    leaves no visible replay and no record; the next run fences it, replays
    each dead letter once, and the daemon stores them."""
    lines = sample_lines[:8]
    dead_letter_with_wrong_encoding(stack, lines)

    crash_replay(stack, "before-kafka-commit")
    assert replays_on_input(stack) == Counter()
    assert stack.query("SELECT count(*) FROM dead_letter_replays") == [(0,)]

    report = alarmd_json_lines(stack, "dlq", "replay", "--all", "--json")[-1]
    assert report["replayed"] == len(lines)
    dead = {f"{r.topic}/{r.partition}/{r.offset}"
            for r in stack.records(stack.topics.dead_letter)}  # fmt: skip
    assert replays_on_input(stack) == Counter(dict.fromkeys(dead, 1))
    stack.run_daemon_until_idle()
    assert stack.counts()["alarm_events"] == expect(lines).events


def test_a_crash_between_the_kafka_and_the_database_commit_repeats_but_stores_once(
    stack, sample_lines
):
    """The one documented window: killed after the Kafka commit and before the
    PostgreSQL commit, the chunk is replayed again by the next run, and the
    daemon still stores each event once (its identity is its content)."""
    lines = sample_lines[:8]
    dead_letter_with_wrong_encoding(stack, lines)
    dead = {f"{r.topic}/{r.partition}/{r.offset}"
            for r in stack.records(stack.topics.dead_letter)}  # fmt: skip

    crash_replay(stack, "before-database-commit")
    assert replays_on_input(stack) == Counter(dict.fromkeys(dead, 1))
    assert stack.query("SELECT count(*) FROM dead_letter_replays") == [(0,)]

    alarmd_json_lines(stack, "dlq", "replay", "--all", "--json")
    assert replays_on_input(stack) == Counter(dict.fromkeys(dead, 2))
    stack.run_daemon_until_idle()
    counts = stack.counts()
    assert counts["alarm_events"] == expect(lines).events
    assert counts["processing_errors"] == len(lines)


def test_a_replay_started_during_another_fences_it_and_replays_each_once(
    stack, sample_lines, tmp_path
):
    """Run A has produced its chunk and is about to commit; run B starts,
    fences A's transaction and waits on A's claims. A's commit is refused: it
    rolls back and exits 1 saying another run took over; B replays each dead
    letter once."""
    lines = sample_lines[:8]
    dead_letter_with_wrong_encoding(stack, lines)
    about_to_commit, go_ahead = tmp_path / "about-to-commit", tmp_path / "go-ahead"
    first = subprocess.Popen(
        [sys.executable, "-c", CRASHING_REPLAY, "wait-before-kafka-commit",
         str(about_to_commit), str(go_ahead)],
        env=stack.env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_until(about_to_commit.exists, RUN_TIMEOUT_S, lambda: "run A never produced")
    second = subprocess.Popen(
        [sys.executable, "-m", "alarmd.cli", "dlq", "replay", "--all", "--json"],
        env=stack.env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_until(
        lambda: stack.query(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND wait_event_type = 'Lock'", (stack.database,)
        )[0][0] == 1,
        RUN_TIMEOUT_S,
        lambda: "run B never waited on run A's claims",
    )  # fmt: skip
    go_ahead.touch()

    first_out, first_err = first.communicate(timeout=RUN_TIMEOUT_S)
    second_out, second_err = second.communicate(timeout=RUN_TIMEOUT_S)
    assert first.returncode != 0 and "took over" in first_err, first_err
    assert second.returncode == 0, second_err
    assert json.loads(second_out.splitlines()[-1])["replayed"] == len(lines)
    dead = {f"{r.topic}/{r.partition}/{r.offset}"
            for r in stack.records(stack.topics.dead_letter)}  # fmt: skip
    assert replays_on_input(stack) == Counter(dict.fromkeys(dead, 1))


def test_losing_the_database_after_the_kafka_commit_says_what_was_not_recorded(
    stack, sample_lines
):
    """When PostgreSQL goes away between the two commits, the run fails with a
    sentence naming the dead letters replayed but not recorded."""
    lines = sample_lines[:4]
    dead_letter_with_wrong_encoding(stack, lines)
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_REPLAY, "lose-database-after-kafka-commit"],
        env=stack.env(), cwd=ROOT, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip

    assert done.returncode == 1
    assert f"the {len(lines)} dead letters from" in done.stderr, done.stderr
    assert "replayed but not recorded" in done.stderr
    assert stack.query("SELECT count(*) FROM dead_letter_replays") == [(0,)]
    assert sum(replays_on_input(stack).values()) == len(lines)
