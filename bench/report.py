"""results.json, the chart and the table, from the runs of one benchmark."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.meter import per_alarm_us
from bench.variant import Outcome

VARIANTS = {
    "A": "ceiling: consume + decode",
    "B": "old way: one message at a time",
    "C": "alarmd run",
    "D": "persistence limit: COPY",
    "E": "Quix Streams + PostgreSQLSink",
}
SHORT_NAMES = {"A": "A ceiling", "B": "B old way", "C": "C alarmd", "D": "D COPY",
               "E": "E Quix"}  # fmt: skip
CPU_PARTS = ("process", "postgres", "broker", "machine", "machine_steal")
# (name, numerator, denominator or None, minimum ratio or maximum value)
TARGETS = {
    "C>=15xB": ("ratio", "C/B", 15.0),
    "C>=0.7xD": ("ratio", "C/D", 0.7),
    "C>=1.5xE": ("ratio", "C/E", 1.5),
    "p99<=500ms": ("at_most", "p99", 500.0),
    "rss<=250MB": ("at_most", "rss", 250.0),
}


def summarise(
    outcomes: list[Outcome], latency: dict, backlog: dict, parameters: dict
) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for name, description in VARIANTS.items():
        runs = [o for o in outcomes if o.variant == name]
        if not runs:
            continue
        cpu = [per_alarm_us(o.window, o.alarms) for o in runs]
        variants[name] = {
            "description": description,
            "alarms_per_s": round(statistics.median(o.alarms_per_s for o in runs), 1),
            "cpu_us_per_alarm": {
                part: round(statistics.median(c[part] for c in cpu), 1) for part in CPU_PARTS
            },
            "runs": [
                {"alarms": o.alarms, "seconds": round(o.window.wall_s, 2),
                 "alarms_per_s": round(o.alarms_per_s, 1),
                 "cpu_us_per_alarm": {p: round(c[p], 1) for p in CPU_PARTS},
                 "failures": o.failures, **o.extra}
                for o, c in zip(runs, cpu, strict=True)
            ],
        }  # fmt: skip
    rate = {name: v["alarms_per_s"] for name, v in variants.items()}
    ratios = {
        f"C/{other}": round(rate["C"] / rate[other], 2)
        for other in ("B", "D", "E")
        if "C" in rate and rate.get(other)
    }
    measured = {**ratios, "p99": latency.get("p99"), "rss": backlog.get("peak_rss_mb")}
    targets = {}
    for name, (kind, key, bound) in TARGETS.items():
        value = measured.get(key)
        holds = (
            None
            if value is None
            else (value >= bound if kind == "ratio" else value <= bound)
        )
        targets[name] = {"measured": value, "bound": bound, "holds": holds}
    failures = [
        f"{o.variant}: {failure}" for o in outcomes for failure in o.failures
    ] + [f"latency: {f}" for f in latency.get("failures", [])] + [
        f"backlog: {f}" for f in backlog.get("failures", [])
    ]  # fmt: skip
    return {
        "label": "2 cores, everything co-located",
        "parameters": parameters,
        "variants": variants,
        "ratios": ratios,
        "latency_ms": {k: latency.get(k) for k in ("p50", "p99", "max", "rate_per_s",
                                                   "samples", "alarms")},
        "daemon_rss_mb_backlog": backlog.get("peak_rss_mb"),
        "backlog": {k: v for k, v in backlog.items() if k != "failures"},
        "targets": targets,
        "gates": {"passed": not failures, "failures": failures},
    }  # fmt: skip


def table(results: dict[str, Any], fmt: str = "simple") -> str:
    rows = [
        [name, v["description"], f"{v['alarms_per_s']:,.0f}",
         *(f"{v['cpu_us_per_alarm'][p]:,.0f}" for p in CPU_PARTS[:4])]
        for name, v in results["variants"].items()
    ]  # fmt: skip
    variants = tabulate(
        rows,
        headers=["", "variant", "alarms/s", "CPU µs/alarm: process", "postgres",
                 "broker", "machine"],
        tablefmt=fmt, colalign=("left", "left", "right", "right", "right", "right", "right"),
    )  # fmt: skip
    target_rows = [
        [name, t["measured"], t["bound"],
         "yes" if t["holds"] else ("no" if t["holds"] is False else "not measured")]
        for name, t in results["targets"].items()
    ]  # fmt: skip
    targets = tabulate(target_rows, headers=["target", "measured", "bound", "holds"],
                       tablefmt=fmt)  # fmt: skip
    return f"{variants}\n\n{targets}"


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(table(results, "github") + "\n")
    chart(results, out / "results.png")


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results["variants"]
    names = list(variants)
    labels = [SHORT_NAMES[n] for n in names]
    fig, (speed, cpu) = plt.subplots(1, 2, figsize=(12, 4.8))

    medians = [variants[n]["alarms_per_s"] for n in names]
    runs = [[r["alarms_per_s"] for r in variants[n]["runs"]] for n in names]
    speed.bar(labels, medians, color="#4c72b0",
              yerr=[[m - min(r) for m, r in zip(medians, runs, strict=True)],
                    [max(r) - m for m, r in zip(medians, runs, strict=True)]],
              capsize=4)  # fmt: skip
    speed.set_yscale("log")
    speed.set_ylabel("alarms/s (median, bars: range of runs)")
    speed.set_title("Throughput")

    parts = (("process", "#4c72b0"), ("postgres", "#dd8452"), ("broker", "#55a868"),
             ("machine", "#8c8c8c"))  # fmt: skip
    width = 0.2
    for i, (part, colour) in enumerate(parts):
        cpu.bar([x + (i - 1.5) * width for x in range(len(names))],
                [max(variants[n]["cpu_us_per_alarm"][part], 0.1) for n in names],
                width, label=part, color=colour)  # fmt: skip
    cpu.set_xticks(range(len(names)), labels)
    cpu.set_yscale("log")
    cpu.set_ylabel("CPU µs per alarm (median)")
    cpu.set_title("CPU per alarm")
    cpu.legend()

    fig.suptitle(f"alarmd benchmark, {results['label']} "
                 f"({results['parameters']['alarms']:,} alarms, "
                 f"{results['parameters']['repetitions']} runs each)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
