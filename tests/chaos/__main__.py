"""`python -m tests.chaos [--alarms N] [--kills K]`: one fault-injection run.

Prints progress lines, a JSON line of details, a sentence per broken invariant,
and as the last line the JSON report. Exits 1 when a zero-loss invariant
fails, 2 when the run cannot start.
"""

from __future__ import annotations

import argparse
import json
import sys

from .scenario import ChaosError, Options, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--alarms", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's topics and database for inspection")  # fmt: skip
    args = parser.parse_args()
    if args.alarms < 1 or args.kills < 0:
        parser.error("--alarms must be at least 1 and --kills at least 0")
    try:
        outcome = run(Options(args.alarms, args.kills, seed=args.seed, keep=args.keep))
    except ChaosError as exc:
        print(f"chaos: cannot run: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(outcome.details), flush=True)
    for failure in outcome.failures:
        print(f"chaos: FAILED: {failure}", flush=True)
    if not outcome.failures:
        print("chaos: every invariant holds", flush=True)
    print(json.dumps(outcome.report), flush=True)
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
