"""`python -m bench`: every variant on the same alarms, interleaved, then the
daemon's latency and its memory under a backlog. See README, "Benchmark"."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from alarmd.settings import Settings
from bench import backlog, ceiling, daemon, latency, old_way, persistence, quix, report
from bench.data import replay
from bench.database import Database
from bench.topics import Broker, TopicSet
from bench.variant import Context, Outcome

ROOT = Path(__file__).resolve().parent.parent
RUNNERS = {"A": ceiling.run, "B": old_way.run, "C": daemon.run, "D": persistence.run,
           "E": quix.run}  # fmt: skip
# The daemon's own default (ALARMD_BATCH_MAX_MESSAGES); every batching variant uses it.
BATCH_MAX_MESSAGES = Settings.model_fields["batch_max_messages"].default
LATENCY_LOAD = 0.5
DEFAULT_EMAIL_TYPES = '["BCF FAULTY","WCDMA BASE STATION OUT OF USE","Mains Input Out of Range","GSM Cell out of Service"]'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--alarms", type=int, default=50_000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--latency-s", type=float, default=30.0,
                        help="how long the latency phase produces")  # fmt: skip
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "alarms-sample.jsonl",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--variants", default="ABCDE")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or args.alarms < 1:
        parser.error("--alarms and --repetitions must be at least 1")

    import json

    try:
        servers = os.environ["ALARMD_KAFKA_BOOTSTRAP_SERVERS"]
        alarmd_url = os.environ["ALARMD_DATABASE_URL"]
    except KeyError as exc:
        print(f"bench: {exc.args[0]} is not set; run it through `make bench`, which "
              "starts the local services and reads .local/services.env", file=sys.stderr)  # fmt: skip
        return 2
    if not args.data.is_file():
        print(f"bench: {args.data} not found; pass --data file.jsonl", file=sys.stderr)
        return 2
    email_types = json.loads(
        os.environ.get("ALARMD_EMAIL_ALARM_TYPES") or DEFAULT_EMAIL_TYPES
    )

    tag = f"{int(time.time()) % 1_000_000:06d}"
    work_dir = ROOT / ".local" / "bench" / tag
    work_dir.mkdir(parents=True, exist_ok=True)
    alarms, expected = replay(args.data, args.alarms, tag, email_types)
    ctx = Context(Broker(servers), Database.prepare(alarmd_url), alarms, expected,
                  email_types, BATCH_MAX_MESSAGES, ROOT, work_dir)  # fmt: skip
    if "E" in args.variants:
        quix.ensure_venv(ctx)
    print(f"bench: {expected.messages:,} alarms, {expected.distinct_events:,} distinct "
          f"events, {expected.cycles:,} cycles, {expected.notifications:,} notification "
          f"requests; logs in {work_dir}", flush=True)  # fmt: skip

    outcomes: list[Outcome] = []
    for repetition in range(1, args.repetitions + 1):
        for variant in args.variants:
            outcomes.append(run_one(ctx, variant, repetition, tag))

    latency_result: dict = {}
    backlog_result: dict = {}
    c_runs = [o for o in outcomes if o.variant == "C" and not o.failures]
    if c_runs:
        import statistics

        rate = LATENCY_LOAD * statistics.median(o.alarms_per_s for o in c_runs)
        print(
            f"bench: latency at {rate:,.0f} alarms/s for {args.latency_s:.0f} s",
            flush=True,
        )
        latency_result = latency.measure(ctx, args.data, rate, args.latency_s, tag)
        print(f"bench: latency p50 {latency_result['p50']} ms, p99 {latency_result['p99']} ms",
              flush=True)  # fmt: skip
        if args.backlog:
            print(f"bench: backlog of {args.backlog:,} alarms", flush=True)
            backlog_result = backlog.measure(ctx, args.data, args.backlog, tag)
            print(f"bench: backlog drained in {backlog_result['drain_s']} s, peak RSS "
                  f"{backlog_result['peak_rss_mb']} MB", flush=True)  # fmt: skip

    parameters = {
        "alarms": expected.messages, "distinct_events": expected.distinct_events,
        "cycles": expected.cycles, "notification_requests": expected.notifications,
        "repetitions": args.repetitions, "batch_max_messages": BATCH_MAX_MESSAGES,
        "backlog": args.backlog, "latency_load": LATENCY_LOAD, "data": args.data.name,
        "cores": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    results = report.summarise(outcomes, latency_result, backlog_result, parameters)
    report.write(results, args.out)
    print()
    print(f"{results['label']} (written to {args.out}/results.json)")
    print(report.table(results))
    if not results["gates"]["passed"]:
        print("\nbench: CORRECTNESS GATES FAILED:", file=sys.stderr)
        for failure in results["gates"]["failures"]:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def run_one(ctx: Context, variant: str, repetition: int, tag: str) -> Outcome:
    name = f"bench-{tag}-{variant}{repetition}"
    topics = TopicSet(name)
    if variant != "D":
        ctx.broker.create(topics)
        ctx.broker.produce(topics.alarms, ctx.alarms)
    ctx.database.empty()
    outcome = RUNNERS[variant](ctx, topics, name)
    if variant != "D":
        ctx.broker.delete(topics)
    verdict = "ok" if not outcome.failures else "FAILED: " + "; ".join(outcome.failures)
    print(f"bench: {variant} run {repetition}: {outcome.alarms_per_s:,.0f} alarms/s "
          f"in {outcome.window.wall_s:.1f} s, {verdict}", flush=True)  # fmt: skip
    return outcome


if __name__ == "__main__":
    sys.exit(main())
