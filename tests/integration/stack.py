"""The services the tier runs against, and one isolated alarmd stack per test:
its own topics, consumer group and freshly migrated database."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy.engine import make_url

from alarmd.settings import INPUT_TOPIC_MAX_MESSAGE_BYTES, Settings, load_settings
from alarmd.topics import create_topics
from db.migrate import upgrade

from .daemon_process import DaemonProcess
from .sample import EMAIL_ALARM_TYPES, ROOT
from .secured import read_env_file
from .topic_reader import Record, read_all

SERVICES_ENV = ROOT / ".local" / "services.env"
CONNECT_TIMEOUT_S = 5
ADMIN_TIMEOUT_S = 30.0
PRODUCE_TIMEOUT_S = 60.0
STATUS_TIMEOUT_S = 60.0
# Short enough that a test waits seconds, not minutes, for the daemon to finish.
IDLE_EXIT_S = 3.0
RUN_TIMEOUT_S = 120.0
OUTBOX_SWEEP_INTERVAL_S = 1.0
OUTBOX_SWEEP_MIN_AGE_S = 1.0

TABLE_COUNTS = {
    "alarm_events": "SELECT count(*) FROM alarm_events",
    "alarm_cycles": "SELECT count(*) FROM alarm_cycles",
    "cycle_tasks": "SELECT count(*) FROM cycle_tasks",
    "processing_errors": "SELECT count(*) FROM processing_errors",
    "outbox": "SELECT count(*) FROM outbox",
    "outbox_pending": "SELECT count(*) FROM outbox WHERE published_at IS NULL",
}


@dataclass(frozen=True)
class Services:
    """Where Kafka and PostgreSQL are, as .local/services.env says."""

    kafka_bootstrap_servers: str
    database_url: str

    @classmethod
    def from_env_file(cls, path: Path) -> Services:
        values = read_env_file(path)
        return cls(
            values["ALARMD_KAFKA_BOOTSTRAP_SERVERS"], values["ALARMD_DATABASE_URL"]
        )

    def database_url_for(self, database: str) -> str:
        url = make_url(self.database_url).set(database=database)
        return url.render_as_string(hide_password=False)

    def connect(self, database: str | None = None):
        """A psycopg2 connection to the named database (default: the base one)."""
        url = make_url(self.database_url)
        if database is not None:
            url = url.set(database=database)
        arguments = url.translate_connect_args(username="user", database="dbname")
        return psycopg2.connect(
            **arguments, **url.query, connect_timeout=CONNECT_TIMEOUT_S
        )

    def unreachable(self) -> list[str]:
        """One sentence per service that does not answer; empty when both do."""
        problems = []
        try:
            self.connect().close()
        except psycopg2.Error as exc:
            problems.append(
                f"PostgreSQL at {make_url(self.database_url).render_as_string()} "
                f"refused a connection: {' '.join(str(exc).split())}"
            )
        # log_level 0: the failure is reported once below, not per connect attempt.
        admin = AdminClient(
            {"bootstrap.servers": self.kafka_bootstrap_servers, "log_level": 0}
        )
        try:
            admin.list_topics(timeout=CONNECT_TIMEOUT_S * 2)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            problems.append(
                f"Kafka at {self.kafka_bootstrap_servers} did not answer a metadata "
                f"request: {exc}"
            )
        return problems


@dataclass(frozen=True)
class StackTopics:
    input: str
    predictive: str
    iac1: str
    notification: str
    dead_letter: str
    # The sidecar's, which `alarmd topics create` makes too; not in all().
    notify_dead_letter: str

    @classmethod
    def for_suffix(cls, suffix: str) -> StackTopics:
        return cls(
            input=f"alarms-{suffix}",
            predictive=f"predictive-{suffix}",
            iac1=f"iac1-{suffix}",
            notification=f"notification-{suffix}",
            dead_letter=f"alarms-{suffix}.dlq",
            notify_dead_letter=f"notification-{suffix}.dlq",
        )

    def all(self) -> list[str]:
        return [
            self.input,
            self.predictive,
            self.iac1,
            self.notification,
            self.dead_letter,
        ]


@dataclass
class Stack:
    """Topics, a consumer group and a database that belong to one test."""

    services: Services
    work_dir: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    daemons: list[DaemonProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = StackTopics.for_suffix(self.suffix)
        self.group_id = f"alarmd-{self.suffix}"
        self.database = f"alarmd_{self.suffix}"
        self.database_url = self.services.database_url_for(self.database)

    # --- set-up and tear-down ------------------------------------------------------

    def create(self) -> None:
        """Creates the topics through alarmd's own code, then the database, and
        migrates it."""
        outcome = create_topics(self.settings())
        assert set(outcome.values()) == {"created"}, outcome

        admin = self.services.connect()
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.database}"')
        admin.close()
        upgrade(self.database_url)

    def destroy(self) -> None:
        """Stops the stack's daemons, drops its database and deletes its topics."""
        for daemon in self.daemons:
            daemon.kill()

        admin = self.services.connect()
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        admin.close()

        kafka = AdminClient(
            {"bootstrap.servers": self.services.kafka_bootstrap_servers}
        )
        for future in kafka.delete_topics(
            [*self.topics.all(), self.topics.notify_dead_letter]
        ).values():
            try:
                future.result(timeout=ADMIN_TIMEOUT_S)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
        for future in kafka.delete_consumer_groups([self.group_id]).values():
            # A group that never committed does not exist to be deleted.
            with contextlib.suppress(KafkaException):
                future.result(timeout=ADMIN_TIMEOUT_S)

    # --- configuration -------------------------------------------------------------

    def settings(self) -> Settings:
        return load_settings(
            kafka_bootstrap_servers=self.services.kafka_bootstrap_servers,
            database_url=self.database_url,
            input_topic=self.topics.input,
            predictive_topic=self.topics.predictive,
            iac1_topic=self.topics.iac1,
            notification_topic=self.topics.notification,
            dead_letter_topic=self.topics.dead_letter,
            notify_dead_letter_topic=self.topics.notify_dead_letter,
            group_id=self.group_id,
        )

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of an alarmd subprocess working on this stack."""
        return {
            **os.environ,
            "ALARMD_KAFKA_BOOTSTRAP_SERVERS": self.services.kafka_bootstrap_servers,
            "ALARMD_DATABASE_URL": self.database_url,
            "ALARMD_INPUT_TOPIC": self.topics.input,
            "ALARMD_PREDICTIVE_TOPIC": self.topics.predictive,
            "ALARMD_IAC1_TOPIC": self.topics.iac1,
            "ALARMD_NOTIFICATION_TOPIC": self.topics.notification,
            "ALARMD_DEAD_LETTER_TOPIC": self.topics.dead_letter,
            "ALARMD_GROUP_ID": self.group_id,
            "ALARMD_HTTP_PORT": "0",
            "ALARMD_HTTP_HOST": "127.0.0.1",
            "ALARMD_EMAIL_ALARM_TYPES": json.dumps(list(EMAIL_ALARM_TYPES)),
            "ALARMD_OUTBOX_SWEEP_INTERVAL_S": str(OUTBOX_SWEEP_INTERVAL_S),
            "ALARMD_OUTBOX_SWEEP_MIN_AGE_S": str(OUTBOX_SWEEP_MIN_AGE_S),
            "ALARMD_LOG_FORMAT": "json",
            **(extra or {}),
        }

    # --- producing -----------------------------------------------------------------

    def produce_file(self, path: Path) -> dict[str, Any]:
        """Runs `alarmd produce FILE --no-progress`; returns its JSON report."""
        done = self.alarmd(
            "produce", str(path), "--no-progress", timeout_s=PRODUCE_TIMEOUT_S
        )
        return json.loads(done.stdout.splitlines()[-1])

    def produce_raw(
        self, messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
    ) -> list[tuple[int, int]]:
        """Produces (key, value, headers) as given, bypassing alarmd's framing;
        returns the (partition, offset) each one was written at, in order."""
        producer = Producer(
            {
                "bootstrap.servers": self.services.kafka_bootstrap_servers,
                "enable.idempotence": "true",
                # Whatever the input topic accepts, so oversized poison reaches it.
                "message.max.bytes": str(INPUT_TOPIC_MAX_MESSAGE_BYTES),
            }
        )
        placed: dict[int, tuple[int, int]] = {}
        failures: list[str] = []

        def delivered(index: int):
            def callback(err, msg) -> None:
                if err is not None:
                    failures.append(f"message {index}: {err.str()}")
                else:
                    placed[index] = (msg.partition(), msg.offset())

            return callback

        for index, (key, value, headers) in enumerate(messages):
            producer.produce(self.topics.input, key=key, value=value, headers=headers,
                             on_delivery=delivered(index))  # fmt: skip
        left = producer.flush(PRODUCE_TIMEOUT_S)
        assert not failures and not left, f"producing failed: {failures}, {left} queued"
        return [placed[index] for index in range(len(messages))]

    # --- the daemon and the CLI ----------------------------------------------------

    def start_daemon(
        self,
        exit_when_idle_s: float | None = IDLE_EXIT_S,
        extra_env: dict[str, str] | None = None,
    ) -> DaemonProcess:
        log_path = self.work_dir / f"daemon-{len(self.daemons) + 1}.log"
        daemon = DaemonProcess(self.env(extra_env), log_path, exit_when_idle_s)
        self.daemons.append(daemon)
        return daemon

    def run_daemon_until_idle(
        self, extra_env: dict[str, str] | None = None
    ) -> DaemonProcess:
        """Runs the daemon with --exit-when-idle and asserts that it exits 0."""
        daemon = self.start_daemon(IDLE_EXIT_S, extra_env)
        exit_code = daemon.wait(RUN_TIMEOUT_S)
        assert exit_code == 0, f"the daemon exited {exit_code}:\n{daemon.tail()}"
        return daemon

    def alarmd(
        self,
        *args: str,
        extra_env: dict[str, str] | None = None,
        timeout_s: float = STATUS_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """Runs one `alarmd` command to completion; fails unless it exits 0."""
        done = subprocess.run(
            [sys.executable, "-m", "alarmd.cli", *args],
            env=self.env(extra_env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        assert done.returncode == 0, (
            f"alarmd {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
        )
        return done

    # --- reading back --------------------------------------------------------------

    def records(self, topic: str) -> list[Record]:
        return read_all(self.services.kafka_bootstrap_servers, topic)

    def query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        connection = self.services.connect(self.database)
        try:
            with connection.cursor() as cur:
                cur.execute(sql, parameters)
                return cur.fetchall()
        finally:
            connection.close()

    def counts(self) -> dict[str, int]:
        """Row counts of every alarmd table, and of the unpublished outbox rows."""
        return {name: self.query(sql)[0][0] for name, sql in TABLE_COUNTS.items()}
