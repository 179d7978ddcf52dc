"""The whole alarm sample through the daemon, checked against the file itself."""

from __future__ import annotations

import json

from .sample import assert_sample_delivered

STATUS_COUNTS = ("alarm_events", "cycles", "processing_errors", "outbox_pending")


def test_sample_is_stored_and_published_once_per_event(stack, sample, sample_path):
    """Every distinct event is stored once, every cycle yields one predictive and
    one iAC1 record, every listed event one notification, and nothing is left."""
    report = stack.produce_file(sample_path)
    assert report["produced"] == sample.lines

    daemon = stack.run_daemon_until_idle()

    assert daemon.events("idle_exit")
    assert_sample_delivered(stack, sample)


def test_status_reports_what_the_sample_run_left(stack, sample, sample_path):
    """`alarmd status --json` reports the stored rows and the records on every
    topic of the stack."""
    stack.produce_file(sample_path)
    stack.run_daemon_until_idle()

    status = json.loads(stack.alarmd("status", "--json").stdout)

    # Only alarmd's own counts: other components may add keys of their own.
    assert {key: status[key] for key in STATUS_COUNTS} == {
        "alarm_events": sample.events,
        "cycles": sample.cycles,
        "processing_errors": 0,
        "outbox_pending": 0,
    }
    assert {topic: status["topics"][topic] for topic in stack.topics.all()} == {
        stack.topics.input: sample.lines,
        stack.topics.predictive: sample.cycles,
        stack.topics.iac1: sample.cycles,
        stack.topics.notification: sample.notifications,
        stack.topics.dead_letter: 0,
    }
