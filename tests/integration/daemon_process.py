"""The daemon as a subprocess (`python -m alarmd.cli run`), or the sidecar
(`notify`), and its JSON log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .sample import ROOT

POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 40


class DaemonProcess:
    """One `alarmd run` (or `command`) process; its stdout and stderr go to
    `log_path`."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        exit_when_idle_s: float | None,
        command: str = "run",
    ) -> None:
        args = [sys.executable, "-m", "alarmd.cli", command]
        if exit_when_idle_s is not None:
            args += ["--exit-when-idle", str(exit_when_idle_s)]
        self.log_path = log_path
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT
            )

    # --- the log -----------------------------------------------------------------

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines written so far, optionally only those of one event."""
        lines = []
        for raw in self.log_path.read_text(
            encoding="utf-8", errors="replace"
        ).splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue  # librdkafka or a traceback may write plain text
            if isinstance(line, dict) and (name is None or line.get("event") == name):
                lines.append(line)
        return lines

    def tail(self) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])

    def wait_for_event(self, name: str, timeout_s: float) -> dict[str, Any]:
        """The first log line of the event; fails when the process exits or the
        timeout passes before one is written."""
        deadline = time.monotonic() + timeout_s
        while True:
            exited = self.process.poll()  # before reading, so no last line is missed
            found = self.events(name)
            if found:
                return found[0]
            if exited is not None:
                raise AssertionError(
                    f"the daemon exited with {exited} before logging {name}; "
                    f"its log ends:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the daemon did not log {name} within {timeout_s:.0f} s; "
                    f"its log ends:\n{self.tail()}"
                )
            time.sleep(POLL_INTERVAL_S)

    def http_port(self, timeout_s: float) -> int:
        return int(self.wait_for_event("http_listening", timeout_s)["port"])

    # --- the process -------------------------------------------------------------

    def running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        """Sends SIGTERM, as an orchestrator stopping the pod does."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int:
        """The exit code; fails when the process is still running after timeout_s."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the daemon was still running after {timeout_s:.0f} s; "
                f"its log ends:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        """Ends the process outright (SIGKILL) if it is still running, as a crash
        or an OOM kill would."""
        if self.running():
            self.process.kill()
            self.process.wait()
