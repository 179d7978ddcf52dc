"""The daemon's memory under a backlog: a large number of alarms already on
the topic when it starts, drained to the end while its RSS is watched."""

from __future__ import annotations

import threading
import time

import psutil

from bench.daemon import daemon_process
from bench.data import Expected, replay_lazily
from bench.topics import TopicSet
from bench.variant import Context, GroupProgress, store_gates

SAMPLE_INTERVAL_S = 0.5


def measure(ctx: Context, data_path, alarms: int, tag: str) -> dict:
    topics = TopicSet(f"bench-{tag}-backlog")
    group = f"bench-{tag}-backlog"
    ctx.broker.create(topics)
    ctx.database.empty()
    expected = Expected()
    ctx.broker.produce(
        topics.alarms,
        replay_lazily(data_path, alarms, f"{tag}K", ctx.email_alarm_types, expected),
    )

    progress = GroupProgress(ctx.broker.bootstrap_servers, group, topics.alarms)
    daemon = daemon_process(ctx, topics, group)
    daemon.start()
    sampled: list[float] = []
    done = threading.Event()

    def sample() -> None:
        process = psutil.Process(daemon.pid)
        while not done.wait(SAMPLE_INTERVAL_S):
            try:
                sampled.append(process.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                return

    failures = []
    started = time.monotonic()
    try:
        problem = daemon.wait_ready()
        threading.Thread(target=sample, daemon=True).start()
        started = time.monotonic()
        problem = problem or progress.wait_done(on_tick=daemon.problem)
        drain_s = time.monotonic() - started
    finally:
        done.set()
        daemon.stop()
        progress.close()
    if problem:
        failures.append(problem)
    failures += store_gates(ctx.database, expected, outbox="published")
    ctx.broker.delete(topics)
    return {
        "alarms": alarms,
        "drain_s": round(drain_s, 1),
        "alarms_per_s": round(alarms / drain_s, 1),
        "peak_rss_mb": round(daemon.peak_rss_mb or 0.0, 1),
        "sampled_peak_rss_mb": round(max(sampled, default=0.0), 1),
        "failures": failures,
    }
