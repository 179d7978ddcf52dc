"""Fixtures of the sidecar's tests: the running services, one isolated stack
per test, and a real SMTP server with STARTTLS and AUTH."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .smtp_server import SmtpServer, make_certificate
from .stack import ROOT, SERVICES_ENV, NotifyStack, services_env

SERVICES_UP_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """Kafka and PostgreSQL, started by `scripts/services.sh up` when not running."""
    started = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "up"],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=SERVICES_UP_TIMEOUT_S,
    )
    if started.returncode != 0 or not SERVICES_ENV.is_file():
        pytest.fail(
            f"scripts/services.sh up exited {started.returncode}, so the sidecar "
            f"tests have no Kafka and PostgreSQL:\n{started.stderr}",
            pytrace=False,
        )
    return services_env()


@pytest.fixture
def stack(services: dict[str, str]) -> Iterator[NotifyStack]:
    stack = NotifyStack(services)
    try:
        stack.create()
        yield stack
    finally:
        stack.destroy()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """A running SMTP server that requires STARTTLS and AUTH."""
    server = SmtpServer(*certificate)
    server.start()
    try:
        yield server
    finally:
        server.stop()
