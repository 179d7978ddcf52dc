"""Variant C, the daemon: `alarmd run` as users start it, in its own process,
configured only through ALARMD_* variables. Timed from its partition
assignment to the moment its group has committed every message, which the
daemon does only after the batch is stored and its outbox published."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.topics import TopicSet
from bench.variant import Context, GroupProgress, Outcome, store_gates
from bench.worker import WorkerProcess, timed_until_committed


def daemon_process(ctx: Context, topics: TopicSet, group: str) -> WorkerProcess:
    """`alarmd run` on a variant's topics and the benchmark database, ready once
    it logs its partition assignment."""
    env = {
        **os.environ,
        "ALARMD_DATABASE_URL": ctx.database.url,
        "ALARMD_KAFKA_BOOTSTRAP_SERVERS": ctx.broker.bootstrap_servers,
        "ALARMD_GROUP_ID": group,
        "ALARMD_INPUT_TOPIC": topics.alarms,
        "ALARMD_DEAD_LETTER_TOPIC": topics.dead_letter,
        "ALARMD_PREDICTIVE_TOPIC": topics.predictive,
        "ALARMD_IAC1_TOPIC": topics.iac1,
        "ALARMD_NOTIFICATION_TOPIC": topics.notification,
        "ALARMD_EMAIL_ALARM_TYPES": json.dumps(ctx.email_alarm_types),
        "ALARMD_HTTP_PORT": "0",
        "ALARMD_LOG_FORMAT": "json",
    }
    alarmd = Path(sys.executable).with_name("alarmd")
    return WorkerProcess([str(alarmd), "run"], env, ctx.work_dir / f"{group}.log",
                         ready_when=lambda line: '"partitions_assigned"' in line)  # fmt: skip


def run(ctx: Context, topics: TopicSet, group: str) -> Outcome:
    progress = GroupProgress(ctx.broker.bootstrap_servers, group, topics.alarms)
    daemon = daemon_process(ctx, topics, group)
    window, problem = timed_until_committed(daemon, progress)
    failures = [problem] if problem else []
    failures += store_gates(ctx.database, ctx.expected, outbox="published")
    return Outcome("C", ctx.expected.messages, window, failures,
                   {"peak_rss_mb": daemon.peak_rss_mb})  # fmt: skip
