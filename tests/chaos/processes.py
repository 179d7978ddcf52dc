"""The run's processes: daemon and sidecar slots that are killed and restarted,
and the SMTP sink. Each start gets its own log file."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from tests.integration.daemon_process import DaemonProcess
from tests.integration.sample import ROOT

HTTP_PORT_TIMEOUT_S = 60.0
HEALTH_TIMEOUT_S = 2.0
SINK_START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Slot:
    """One instance: `alarmd run` or `alarmd notify`, restarted in place."""

    name: str
    command: str
    env: dict[str, str]
    work_dir: Path
    starts: int = 0
    process: DaemonProcess | None = None
    history: list[DaemonProcess] = field(default_factory=list)

    def start(self) -> DaemonProcess:
        self.starts += 1
        log_path = self.work_dir / f"{self.name}-{self.starts}.log"
        self.process = DaemonProcess(self.env, log_path, None, self.command)
        self.history.append(self.process)
        return self.process

    @property
    def current(self) -> DaemonProcess:
        assert self.process is not None, f"{self.name} was never started"
        return self.process

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill; waits until it is gone."""
        self.current.process.send_signal(signal.SIGKILL)
        self.current.process.wait(STOP_TIMEOUT_S)

    def terminate(self, timeout_s: float) -> tuple[float, int | None]:
        """SIGTERM; returns the seconds until the process exited and its exit
        code (None when it was still running after `timeout_s`, then killed)."""
        started = time.monotonic()
        self.current.terminate()
        try:
            code: int | None = self.current.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            code = None
            self.kill()
        return time.monotonic() - started, code

    def health(self) -> int | None:
        """The /healthz status of the running process, None when it does not
        answer."""
        port = self.current.http_port(HTTP_PORT_TIMEOUT_S)
        try:
            return requests.get(
                f"http://127.0.0.1:{port}/healthz", timeout=HEALTH_TIMEOUT_S
            ).status_code
        except requests.RequestException:
            return None

    def events(self, name: str) -> list[dict]:
        """The named log events of every start of this slot."""
        return [event for p in self.history for event in p.events(name)]


class SmtpSink:
    """scripts/smtp_sink.py on a free loopback port, writing .eml files."""

    def __init__(self, folder: Path, log_path: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self._log_path = log_path
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "smtp_sink.py"),
                 "--port", str(self.port), "--dir", str(folder)],
                stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + SINK_START_TIMEOUT_S
        while "smtp sink on" not in log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the SMTP sink did not start; its log: {log_path.read_text()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(STOP_TIMEOUT_S)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def leftover_children() -> list[str]:
    """Processes this one started that are still running, as `pid command`."""
    return [
        f"{child.pid} {' '.join(child.cmdline()[:4])}"
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]
