"""End-to-end latency of the daemon: alarms produced at a steady rate below
its maximum, timed from the moment each cycle-starting alarm is handed to the
producer to the moment its predictive request and iAC1 document are read back
from the downstream topics.

A warm-up of WARM_UP_S at the same rate comes first, untimed, as for the
throughput runs: the first batches also open the daemon's database
connections, and the first messages wait for both producers to fetch
metadata and an idempotent producer id."""

from __future__ import annotations

import statistics
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.daemon import daemon_process
from bench.data import replay
from bench.topics import PARTITIONS, TopicSet
from bench.variant import STALL_LIMIT_S, Context, store_gates

MIN_ALARMS = 200
WARM_UP_S = 2.0
READ_WAIT_S = 0.005


class DownstreamReader:
    """Reads the downstream topics from their start in a thread and notes when
    each (topic, key) first arrives, in epoch milliseconds."""

    def __init__(self, bootstrap_servers: str, topics: list[str]) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap_servers,
                                   "group.id": "bench-latency-reader",
                                   "enable.auto.commit": "false"})  # fmt: skip
        self._consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                               for t in topics for p in range(PARTITIONS)])  # fmt: skip
        self.arrivals: dict[tuple[str, bytes], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            # A short wait: the time a message waits here counts as latency.
            for message in self._consumer.consume(1000, READ_WAIT_S):
                if message.error() is None:
                    key = (message.topic(), message.key())
                    self.arrivals.setdefault(key, time.time() * 1000)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def measure(
    ctx: Context, data_path, rate_per_s: float, seconds: float, tag: str
) -> dict:
    count = max(MIN_ALARMS, int(rate_per_s * seconds))
    alarms, expected = replay(data_path, count, f"{tag}L", ctx.email_alarm_types)
    warm_up, warm_up_expected = replay(data_path, max(MIN_ALARMS, int(rate_per_s * WARM_UP_S)),
                                       f"{tag}W", ctx.email_alarm_types)  # fmt: skip
    topics = TopicSet(f"bench-{tag}-latency")
    group = f"bench-{tag}-latency"
    ctx.broker.create(topics)
    ctx.database.empty()
    cycle_start = {index: token for token, index in expected.cycle_starts.items()}
    produced_at: dict[bytes, float] = {}

    # One produce call for both, so the producer is warm too when timing starts.
    first_timed = len(warm_up)
    t0 = time.monotonic()

    def pace(index: int) -> None:
        wait = t0 + index / rate_per_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if index - first_timed in cycle_start:
            produced_at[cycle_start[index - first_timed].encode()] = time.time() * 1000

    reader = DownstreamReader(
        ctx.broker.bootstrap_servers, [topics.predictive, topics.iac1]
    )
    daemon = daemon_process(ctx, topics, group)
    daemon.start()
    failures = []
    try:
        problem = daemon.wait_ready()
        if problem is None:
            t0 = time.monotonic()
            ctx.broker.produce(topics.alarms, warm_up + alarms, pace=pace)
            wanted = 2 * (warm_up_expected.cycles + expected.cycles)
            deadline = time.monotonic() + STALL_LIMIT_S
            while len(reader.arrivals) < wanted and time.monotonic() < deadline:
                problem = daemon.problem()
                if problem:
                    break
                time.sleep(0.1)
            if len(reader.arrivals) < wanted:
                failures.append(
                    f"{len(reader.arrivals)} of {wanted} downstream messages arrived"
                )
        if problem:
            failures.append(problem)
    finally:
        reader.close()
        daemon.stop()
    failures += store_gates(
        ctx.database, warm_up_expected + expected, outbox="published"
    )
    ctx.broker.delete(topics)

    samples = [arrived - produced_at[key] for (_, key), arrived in reader.arrivals.items()
               if key in produced_at]  # fmt: skip
    centiles = (
        statistics.quantiles(samples, n=100, method="inclusive")
        if len(samples) > 1
        else [0.0] * 99
    )
    return {
        "rate_per_s": round(rate_per_s, 1),
        "alarms": count,
        "samples": len(samples),
        "p50": round(centiles[49], 1),
        "p99": round(centiles[98], 1),
        "max": round(max(samples, default=0.0), 1),
        "failures": failures,
    }
