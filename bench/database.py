"""The benchmark's own database: created and migrated once, emptied before
every variant, and counted for the correctness gates."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import psycopg2
from sqlalchemy.engine import make_url

BENCH_DATABASE = "alarmd_bench"
# Where the Quix Streams variant's sink creates its tables.
QUIX_SCHEMA = "quix"
ALARMD_TABLES = "alarm_events, alarm_cycles, cycle_tasks, outbox, processing_errors"


@dataclass(frozen=True)
class Database:
    url: str  # SQLAlchemy URL, as ALARMD_DATABASE_URL takes it

    @property
    def dsn(self) -> str:
        return (
            make_url(self.url).set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )  # fmt: skip

    def connect(self):
        return psycopg2.connect(self.dsn)

    @classmethod
    def prepare(cls, alarmd_url: str) -> Database:
        """Creates the benchmark database beside the one in `alarmd_url` if it is
        missing, and migrates it with `alarmd migrate`."""
        database = cls(make_url(alarmd_url).set(database=BENCH_DATABASE)
                       .render_as_string(hide_password=False))  # fmt: skip
        admin = psycopg2.connect(make_url(alarmd_url).set(
            drivername="postgresql", database="postgres").render_as_string(hide_password=False))  # fmt: skip
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)
            )
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {BENCH_DATABASE}")
        admin.close()
        subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "alarmd"), "migrate"],
            env={**os.environ, "ALARMD_DATABASE_URL": database.url},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return database

    def empty(self) -> None:
        """Empties every table the variants write, then checkpoints, so no
        variant pays for another's dirty pages."""
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE {ALARMD_TABLES} RESTART IDENTITY CASCADE")
            cur.execute(f"DROP SCHEMA IF EXISTS {QUIX_SCHEMA} CASCADE")
            cur.execute("CHECKPOINT")
        conn.close()

    def counts(self, schema: str = "public") -> dict[str, int]:
        """Rows per table, and outbox rows not yet published."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                found = {}
                for table in ("alarm_events", "alarm_cycles", "cycle_tasks", "outbox"):
                    cur.execute(f"SELECT count(*) FROM {schema}.{table}")
                    found[table] = cur.fetchone()[0]
                if schema == "public":
                    cur.execute(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                    )
                    found["outbox_pending"] = cur.fetchone()[0]
                    cur.execute("SELECT count(*) FROM processing_errors")
                    found["processing_errors"] = cur.fetchone()[0]
            return found
        finally:
            conn.close()
