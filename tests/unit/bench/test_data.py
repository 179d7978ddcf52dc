"""The benchmark's replayed alarms: fresh tokens, about 5% repeats, and
expectations that match the messages themselves."""

from __future__ import annotations

import io
from pathlib import Path

import fastavro

import schemas
from bench.data import DUPLICATE_SHARE, replay

SAMPLE_FILE = (
    Path(__file__).resolve().parents[3]
    / ".."
    / "shared"
    / "data"
    / "alarms-sample.jsonl"
)

COUNT = 3000


def _body(value: bytes) -> dict:
    # Past the 10-byte single-object header, read with the schema file itself.
    return fastavro.schemaless_reader(
        io.BytesIO(value[10:]), schemas.load(schemas.ALARM_EVENT).parsed
    )


def test_replay_counts_distinct_events_as_distinct_message_bytes():
    """Distinct events are the distinct values produced; repeats copy an earlier one."""
    alarms, expected = replay(SAMPLE_FILE, COUNT, "t", [])
    assert expected.messages == len(alarms) == COUNT
    assert expected.distinct_events == len({a.value for a in alarms})
    seen: set[bytes] = set()
    for alarm in alarms:
        assert alarm.repeat == (alarm.value in seen)
        seen.add(alarm.value)


def test_replay_repeats_about_five_percent():
    """The share of repeated messages is near DUPLICATE_SHARE."""
    alarms, _ = replay(SAMPLE_FILE, COUNT, "t", [])
    share = sum(a.repeat for a in alarms) / len(alarms)
    assert abs(share - DUPLICATE_SHARE) < 0.02


def test_replay_gives_each_round_fresh_tokens_and_counts_cycles_from_records():
    """Every iactoken carries the run's suffix, and cycles are the tokens with an
    in-scope final event in the decoded messages."""
    alarms, expected = replay(SAMPLE_FILE, COUNT, "run7-", [])
    records = [_body(a.value) for a in alarms]
    assert all("-run7-" in r["iactoken"] for r in records)
    tokens = {r["iactoken"] for r in records if r["scope"] == "In" and r["final"]}
    assert expected.cycles == len(tokens)
    assert set(expected.cycle_starts) == tokens
