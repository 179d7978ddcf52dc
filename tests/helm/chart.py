"""The chart under test, the pinned helm that renders it, and the rendered
manifests as Python objects."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "alarmd"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "alarmd"
NAMESPACE = "alarms"
# The Kubernetes version helm renders for and the manifests are validated
# against: that of helm v3.21's client-go, and bundled by kubernetes-validate.
KUBE_VERSION = "1.36.0"
HELM_BUILD_TIMEOUT_S = 1800
HELM_TIMEOUT_S = 120


@functools.cache
def helm_binary() -> str:
    """The pinned helm, built by scripts/helm.sh when it is not cached yet."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "helm.sh")],
        capture_output=True,
        text=True,
        timeout=HELM_BUILD_TIMEOUT_S,
    )
    assert done.returncode == 0, f"scripts/helm.sh failed:\n{done.stderr[-4000:]}"
    return done.stdout.strip().splitlines()[-1]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs helm with the arguments; the caller checks the exit code."""
    return subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_S,
        cwd=ROOT,
    )


def template_args(values: Path | None = None, *sets: str) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION]  # fmt: skip
    if values is not None:
        args += ["--values", str(values)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


@functools.cache
def render(values: Path | None = None, *sets: str) -> tuple[dict[str, Any], ...]:
    """The manifests `helm template` renders; fails when it does not render."""
    done = helm(*template_args(values, *sets))
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def scenario(name: str) -> Path:
    path = CHART / "ci" / f"{name}-values.yaml"
    assert path.is_file(), f"no scenario {path}"
    return path


def of_kind(manifests: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def pod_specs(manifests: tuple[dict[str, Any], ...]) -> list[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload: the Deployment and the Job."""
    return [
        (f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"])
        for m in manifests
        if m["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]


def container(manifests: tuple[dict[str, Any], ...], name: str) -> dict[str, Any]:
    spec = one(manifests, "Deployment")["spec"]["template"]["spec"]
    found = [c for c in spec["containers"] if c["name"] == name]
    assert found, f"the Deployment has no container {name}"
    return found[0]
