"""Every metric the dashboard and the alert rules use is one a live daemon or
email sidecar exports: both are started on the local services, and /metrics is
scraped from each."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_process import DaemonProcess
from tests.integration.stack import Stack

from .promql import metric_names
from .test_chart import monitoring_expressions

pytestmark = pytest.mark.integration

SAMPLE_LINES = 40
STARTUP_TIMEOUT_S = 60.0
SCRAPE_TIMEOUT_S = 90.0
SCRAPE_INTERVAL_S = 1.0


class SidecarProcess(DaemonProcess):
    """`alarmd notify` as a subprocess, with the daemon's log helpers."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "alarmd.cli", "notify"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )


def exported_names(port: int) -> set[str]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_dashboard_and_alerts_use_only_exported_metrics(
    stack: Stack, sample_path: Path, tmp_path: Path
):
    """Each metric name in the rendered dashboard and PrometheusRule is exported
    by the daemon or the sidecar (histograms as _bucket, _sum and _count)."""
    used = {
        name: where
        for where, expr in monitoring_expressions().items()
        for name in metric_names(expr)
    }
    lines = sample_path.read_text(encoding="utf-8").splitlines()[:SAMPLE_LINES]
    small_sample = tmp_path / "sample.jsonl"
    small_sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # No email requests: the sidecar has no SMTP server to send them to.
    quiet = {"ALARMD_EMAIL_ALARM_TYPES": "[]", "ALARMD_STATISTICS_INTERVAL_S": "1"}
    stack.produce_file(small_sample)

    daemon = stack.start_daemon(exit_when_idle_s=None, extra_env=quiet)
    notify_dlq = f"notification-{stack.suffix}.dlq"
    sidecar_env = stack.env({
        **quiet,
        "ALARMD_NOTIFY_HTTP_PORT": "0",
        "ALARMD_NOTIFY_GROUP_ID": f"alarmd-notify-{stack.suffix}",
        "ALARMD_NOTIFY_DEAD_LETTER_TOPIC": notify_dlq,
    })  # fmt: skip
    sidecar = SidecarProcess(sidecar_env, tmp_path / "sidecar.log")
    stack.daemons.append(sidecar)  # killed by the stack's tear-down
    try:
        ports = {
            "daemon": daemon.http_port(STARTUP_TIMEOUT_S),
            "sidecar": sidecar.http_port(STARTUP_TIMEOUT_S),
        }
        # Consumer lag is exported once offsets are committed and librdkafka
        # has reported statistics, so scrape until nothing is missing.
        deadline = time.monotonic() + SCRAPE_TIMEOUT_S
        while True:
            exported = {who: exported_names(port) for who, port in ports.items()}
            missing = set(used) - exported["daemon"] - exported["sidecar"]
            if not missing or time.monotonic() > deadline:
                break
            assert daemon.running(), f"the daemon exited:\n{daemon.tail()}"
            assert sidecar.running(), f"the sidecar exited:\n{sidecar.tail()}"
            time.sleep(SCRAPE_INTERVAL_S)

        assert not missing, "not exported: " + json.dumps(
            {name: used[name] for name in sorted(missing)}, indent=1
        )
        assert {n for n in used if n.startswith("alarmd_notify_")} <= exported[
            "sidecar"
        ], "an email metric is not the sidecar's"
    finally:
        sidecar.kill()
        admin = AdminClient(
            {"bootstrap.servers": stack.services.kafka_bootstrap_servers}
        )
        for future in admin.delete_topics([notify_dlq]).values():
            with contextlib.suppress(KafkaException):  # never created: fine
                future.result(timeout=30)
        for future in admin.delete_consumer_groups(
            [os.environ["ALARMD_NOTIFY_GROUP_ID"]]
        ).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=30)
