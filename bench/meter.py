"""CPU time of the processes a variant keeps busy, read with psutil.

Four figures per window: the variant's own process, every process of our
PostgreSQL cluster (the postmaster, its live backends, and the backends it has
already reaped), the Kafka broker's JVM, and the whole machine from
/proc/stat with steal counted as busy time.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
POSTMASTER_PID_FILE = ROOT / ".local" / "postgres" / "data" / "postmaster.pid"
KAFKA_PID_FILE = ROOT / ".local" / "kafka" / "kafka.pid"


@dataclass(frozen=True)
class Reading:
    wall_s: float
    process_s: float
    postgres_s: float
    broker_s: float
    machine_s: float
    steal_s: float

    def __sub__(self, start: Reading) -> Reading:
        return Reading(
            *(getattr(self, f) - getattr(start, f) for f in Reading.__annotations__)
        )


class Meter:
    """Reads CPU seconds so far; `read()` twice and subtract for a window."""

    def __init__(self, process_pid: int) -> None:
        self._process = psutil.Process(process_pid)
        self._postmaster = psutil.Process(_pid_from(POSTMASTER_PID_FILE))
        self._broker = psutil.Process(_pid_from(KAFKA_PID_FILE))

    def read(self) -> Reading:
        machine = psutil.cpu_times()
        return Reading(
            wall_s=time.monotonic(),
            process_s=_own(self._process),
            postgres_s=self._postgres(),
            broker_s=_own(self._broker),
            machine_s=machine.user + machine.nice + machine.system + machine.irq
            + machine.softirq + machine.steal,
            steal_s=machine.steal,
        )  # fmt: skip

    def _postgres(self) -> float:
        # A backend that exits inside the window moves its time from the live
        # children into the postmaster's reaped-children counters: counted once.
        times = self._postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in self._postmaster.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += _own(child)
        return total


def _own(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _pid_from(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise RuntimeError(
            f"cannot read a PID from {path}; start the local services with "
            "`make services-up` (the benchmark measures their processes)"
        ) from exc


def per_alarm_us(window: Reading, alarms: int) -> dict[str, float]:
    """CPU microseconds per alarm, for each measured party."""
    return {
        "process": window.process_s * 1e6 / alarms,
        "postgres": window.postgres_s * 1e6 / alarms,
        "broker": window.broker_s * 1e6 / alarms,
        "machine": window.machine_s * 1e6 / alarms,
        "machine_steal": window.steal_s * 1e6 / alarms,
    }
