"""Variant E, the peer a user would pick instead: a Quix Streams application
(bench/quix_app.py) persisting the same rows with the library's PostgreSQL
sink, in its own virtual environment, which this module creates when missing.
Timed from its first message to its group's last committed offset: Quix
commits only after the sink has written the checkpoint's rows."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from sqlalchemy.engine import make_url

from bench.database import QUIX_SCHEMA
from bench.topics import TopicSet
from bench.variant import Context, GroupProgress, Outcome, store_gates
from bench.worker import WorkerProcess, timed_until_committed


def ensure_venv(ctx: Context) -> str:
    """The virtual environment's python, installed from bench/quix-requirements.txt
    when missing or when that file has changed."""
    venv = ctx.root / ".cache" / "bench-quix"
    requirements = ctx.root / "bench" / "quix-requirements.txt"
    marker = venv / "requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if not python.exists() or not marker.exists() or marker.read_text() != digest:
        print(f"bench: installing Quix Streams into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                        str(requirements)], check=True)  # fmt: skip
        marker.write_text(digest)
    return str(python)


def run(ctx: Context, topics: TopicSet, group: str) -> Outcome:
    url = make_url(ctx.database.url)
    argv = [
        ensure_venv(ctx), str(ctx.root / "bench" / "quix_app.py"),
        "--bootstrap", ctx.broker.bootstrap_servers, "--topic", topics.alarms,
        "--group", group, "--host", url.host or "127.0.0.1", "--port", str(url.port or 5432),
        "--dbname", url.database or "", "--user", url.username or "",
        "--schema", QUIX_SCHEMA, "--state-dir", str(ctx.work_dir / f"{group}.state"),
        "--downstream", f"{topics.predictive},{topics.iac1},{topics.notification}",
        "--email-types", json.dumps(ctx.email_alarm_types),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ctx.root), "PGPASSWORD": url.password or ""}
    progress = GroupProgress(ctx.broker.bootstrap_servers, group, topics.alarms)
    app = WorkerProcess(argv, env, ctx.work_dir / f"{group}.log",
                        ready_when=lambda line: line.strip() == "first_message")  # fmt: skip
    window, problem = timed_until_committed(app, progress)
    failures = [problem] if problem else []
    failures += store_gates(
        ctx.database, ctx.expected, outbox="written", schema=QUIX_SCHEMA
    )
    return Outcome("E", ctx.expected.messages, window, failures,
                   {"peak_rss_mb": app.peak_rss_mb})  # fmt: skip
