"""A worker under test in its own process: started, watched through its log
for the line that starts the timed window, and stopped with SIGTERM, as an
orchestrator would, with its peak RSS taken from the kernel."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from bench.meter import Meter, Reading

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 40.0


class WorkerProcess:
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        ready_when: Callable[[str], bool],
    ) -> None:
        self._argv = argv
        self._env = env
        self._log_path = log_path
        self._ready_when = ready_when
        self._ready = threading.Event()
        self._tail: deque[str] = deque(maxlen=12)
        self._process: subprocess.Popen[str] | None = None
        self.peak_rss_mb: float | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._argv, env=self._env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with self._log_path.open("w", encoding="utf-8") as copy:
            for line in self._process.stdout:
                copy.write(line)
                self._tail.append(line.rstrip()[:300])
                if not self._ready.is_set() and self._ready_when(line):
                    self._ready.set()

    def wait_ready(self) -> str | None:
        """Blocks until the ready line; returns None, or a sentence saying why not."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready.wait(0.05):
            if problem := self.problem():
                return problem
            if time.monotonic() > deadline:
                return f"{self._argv[0]} was not ready within {READY_TIMEOUT_S:.0f} s"
        return None

    def problem(self) -> str | None:
        """A sentence when the worker has exited, else None."""
        assert self._process is not None
        if self._process.poll() is None:
            return None
        return (f"{Path(self._argv[0]).name} exited with {self._process.returncode}; "
                f"its log ({self._log_path}) ends: " + " | ".join(self._tail))  # fmt: skip

    def stop(self) -> None:
        """SIGTERM, then waits; records the process's peak RSS first."""
        assert self._process is not None
        if self._process.poll() is not None:
            return
        self.peak_rss_mb = _peak_rss_mb(self._process.pid)
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process's resident memory (VmHWM).

    psutil has no accessor for it. wait4()'s ru_maxrss is no substitute: it also
    counts the parent's pages the child held between fork and exec.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def timed_until_committed(
    worker: WorkerProcess, progress
) -> tuple[Reading, str | None]:
    """Starts the worker, times it from its ready line until `progress` (a
    bench.variant.GroupProgress) sees every message committed, and stops it.
    Returns the window and None, or a sentence saying what went wrong."""
    worker.start()
    try:
        problem = worker.wait_ready()
        meter = Meter(worker.pid)
        start = meter.read()
        problem = problem or progress.wait_done(on_tick=worker.problem)
        end = meter.read()
    finally:
        worker.stop()
        progress.close()
    return end - start, problem
