"""One isolated sidecar stack per test: its own `notification` topic and
dead-letter topic, consumer group and freshly migrated database, on the Kafka
and PostgreSQL that scripts/services.sh runs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy.engine import make_url

from alarmd.health import Health
from alarmd.settings import Settings, load_settings
from consumer.downstream import DownstreamTopics, DownstreamWriter
from db.engine import make_engine
from db.migrate import upgrade
from notifier.worker import NotifyWorker

ROOT = Path(__file__).resolve().parents[2]
SERVICES_ENV = ROOT / ".local" / "services.env"
ADMIN_TIMEOUT_S = 30.0
PARTITIONS = 3
RUN_TIMEOUT_S = 90.0


def services_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in SERVICES_ENV.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().strip("'\"")
    return values


class NotifyStack:
    def __init__(self, env: dict[str, str]) -> None:
        self.suffix = uuid.uuid4().hex[:12]
        self.bootstrap = env["ALARMD_KAFKA_BOOTSTRAP_SERVERS"]
        self.base_url = env["ALARMD_DATABASE_URL"]
        self.database = f"alarmd_notify_{self.suffix}"
        self.database_url = (
            make_url(self.base_url)
            .set(database=self.database)
            .render_as_string(hide_password=False)
        )
        self.topic = f"notification-{self.suffix}"
        self.dead_letter_topic = f"notification-{self.suffix}.dlq"
        self.group_id = f"alarmd-notify-{self.suffix}"
        self._groups = {self.group_id}
        self._writer = DownstreamWriter(
            DownstreamTopics("unused", "unused", self.topic), []
        )
        self._sequence = 0

    # --- set-up and tear-down ------------------------------------------------

    def create(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics(
            [NewTopic(self.topic, PARTITIONS, 1)], operation_timeout=ADMIN_TIMEOUT_S
        ).values():
            future.result(timeout=ADMIN_TIMEOUT_S)
        with self._admin_db() as cur:
            cur.execute(f'CREATE DATABASE "{self.database}"')
        upgrade(self.database_url)

    def destroy(self) -> None:
        with self._admin_db() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.delete_topics(
            [self.topic, self.dead_letter_topic]
        ).values():
            # A topic never created is absent: nothing to delete.
            with contextlib.suppress(Exception):
                future.result(timeout=ADMIN_TIMEOUT_S)
        for future in admin.delete_consumer_groups(list(self._groups)).values():
            # A group that never committed is absent: nothing to delete.
            with contextlib.suppress(Exception):
                future.result(timeout=ADMIN_TIMEOUT_S)

    def _admin_db(self):
        stack = self

        class _Admin:
            def __enter__(self):
                url = make_url(stack.base_url)
                args = url.translate_connect_args(username="user", database="dbname")
                self.conn = psycopg2.connect(**args, connect_timeout=5)
                self.conn.autocommit = True
                return self.conn.cursor()

            def __exit__(self, *_exc):
                self.conn.close()

        return _Admin()

    # --- configuration -----------------------------------------------------------

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "database_url": self.database_url,
            "notification_topic": self.topic,
            "notify_dead_letter_topic": self.dead_letter_topic,
            "notify_group_id": self.group_id,
            "notify_group_wait_s": 0.5,
            "notify_group_interval_s": 0.5,
            "notify_sweep_min_age_s": 0.0,
            "retry_initial_s": 0.2,
            "retry_max_s": 1.0,
            "topic_partitions": PARTITIONS,
            "notify_recipients": ["NOC Team <noc@example.com>"],
        }
        values.update(overrides)
        if "notify_group_id" in overrides:
            self._groups.add(overrides["notify_group_id"])
        return load_settings(**values)

    # --- requests --------------------------------------------------------------------

    def request(self, **fields: Any) -> dict[str, Any]:
        """An alarm event record, as the daemon passes it to `for_email`."""
        self._sequence += 1
        n = self._sequence
        record = {
            "TicketID": f"TT-{n:05d}",
            "alarmText": "BCF FAULTY",
            "nodeName": f"site-n{n:03d}",
            "iactoken": f"31{n:05d}",
            "eventTime": datetime(2024, 3, 11, tzinfo=UTC) + timedelta(minutes=n),
            "customer": "customer-a",
            "nodegroup": "RAN-2G",
        }
        record.update(fields)
        return record

    def produce(self, records: list[dict[str, Any]], copies: int = 1) -> list[str]:
        """Publishes a notification request per record (each `copies` times, as
        a repeating outbox would); returns the request event ids."""
        producer = Producer({"bootstrap.servers": self.bootstrap})
        ids = []
        for record in records:
            alarm_event_id = uuid.uuid4().hex
            message = self._writer.for_email(record, alarm_event_id)
            ids.append(message.event_id)
            for _ in range(copies):
                producer.produce(message.topic, key=message.key,
                                 value=message.payload, headers=message.headers)  # fmt: skip
        assert producer.flush(30) == 0
        return ids

    def produce_raw(
        self, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap})
        producer.produce(self.topic, key=b"bad", value=value, headers=headers or [])
        assert producer.flush(30) == 0

    # --- running the worker -------------------------------------------------------------

    def run_until_idle(self, settings: Settings, idle_s: float = 2.0) -> int:
        worker = NotifyWorker(settings, make_engine(settings), Health(lambda: True))
        result: list[int] = []
        thread = threading.Thread(
            target=lambda: result.append(worker.run(exit_when_idle_s=idle_s)),
            daemon=True,
        )
        thread.start()
        thread.join(RUN_TIMEOUT_S)
        if thread.is_alive():
            worker.request_stop()
            thread.join(30)
            raise AssertionError(f"the worker did not go idle in {RUN_TIMEOUT_S} s")
        return result[0]

    def start(self, settings: Settings) -> tuple[NotifyWorker, threading.Thread]:
        worker = NotifyWorker(settings, make_engine(settings), Health(lambda: True))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        return worker, thread

    def process_env(self, settings: Settings) -> dict[str, str]:
        """The environment that gives `alarmd notify` these settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALARMD_")}
        for name, value in settings.model_dump(mode="json").items():
            if value is None:
                continue
            if name == "database_url":
                value = self.database_url
            elif name == "smtp_password":
                value = settings.smtp_password.get_secret_value()
            elif isinstance(value, list | dict):
                value = json.dumps(value)
            env[f"ALARMD_{name.upper()}"] = str(value)
        env.update(ALARMD_LOG_FORMAT="json", ALARMD_NOTIFY_HTTP_PORT="0")
        return env

    def spawn(self, settings: Settings, log_path: Path) -> subprocess.Popen:
        """`alarmd notify --exit-when-idle 3` as a process of its own."""
        with log_path.open("ab") as log_file:
            return subprocess.Popen(
                [sys.executable, "-m", "alarmd.cli", "notify", "--exit-when-idle", "3"],
                env=self.process_env(settings),
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    # --- reading back --------------------------------------------------------------

    def query(self, sql: str) -> list[tuple]:
        url = make_url(self.database_url)
        args = url.translate_connect_args(username="user", database="dbname")
        conn = psycopg2.connect(**args, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    def backends_locking_an_email(self) -> list[int]:
        """Process ids of the worker's connections that hold an email row's lock
        while the worker talks to the SMTP server."""
        with self._admin_db() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND state = 'idle in transaction' AND query LIKE %s",
                (self.database, "%FOR UPDATE SKIP LOCKED%"),
            )
            return [row[0] for row in cur.fetchall()]

    def terminate_backends(self) -> None:
        """Ends every connection to this stack's database (and no other)."""
        with self._admin_db() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,),
            )

    def dead_letters(self, expected: int, timeout_s: float = 30.0) -> list[Any]:
        """Reads the dead-letter topic from the start until `expected` records came."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": "false",
            }
        )
        consumer.subscribe([self.dead_letter_topic])
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(found) < expected and time.monotonic() < deadline:
                for m in consumer.consume(100, 0.5):
                    if m.error() is None:
                        found.append(m)
                    elif m.error().code() != KafkaError._PARTITION_EOF:
                        raise AssertionError(m.error().str())
        finally:
            consumer.close()
        return found
