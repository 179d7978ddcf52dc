"""One fault-injection run, from fresh topics, group and database to the report.

1. Start an SMTP sink, three daemons and one email sidecar on a stack of their
   own (`alarms` with 6 partitions).
2. Produce the workload in waves, poison messages mixed in; while each wave is
   being processed, inject the next fault: a SIGKILL of a random daemon
   (restarted at once), a SIGKILL of the sidecar, a PostgreSQL restart, a
   PostgreSQL freeze longer than the stall deadline, a Kafka broker restart, a
   graceful SIGTERM of one daemon, timed.
3. Wait until the groups have no lag and nothing is left to publish or send.
4. Stop every process and check the invariants (`invariants.py`).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.sample import ROOT, SAMPLE_PATH
from tests.integration.stack import SERVICES_ENV, Services, Stack
from tests.poison import PoisonCase

from . import invariants
from .invariants import Findings
from .poison import poison_set
from .processes import Slot, SmtpSink, leftover_children
from .workload import Workload, build

DAEMONS = 3
POISON_COPIES = 2
SHUTDOWN_DEADLINE_S = 25.0
# The process may take this much past the deadline to be gone (interpreter exit).
SHUTDOWN_SLACK_S = 1.0
# The shutdown watchdog ends the process 5 s after the deadline.
TERMINATE_TIMEOUT_S = SHUTDOWN_DEADLINE_S + 15.0
STALL_DEADLINE_S = 15.0
FREEZE_S = STALL_DEADLINE_S + 10.0
# The broker stays down past the 10 s session timeout, so the members lose
# their partitions and get them back once it returns.
KAFKA_DOWN_S = 15.0
# A wave is in progress once this share of its distinct events is stored. The
# freeze comes at once, while the daemons fetch the wave, so that they are
# caught mid-batch.
WAVE_PROGRESS_SHARE = 0.3
PROGRESS_TIMEOUT_S = 240.0
RECOVERY_TIMEOUT_S = 120.0
IDLE_CHECKS = 2
IDLE_CHECK_INTERVAL_S = 3.0
SERVICE_CONTROL_TIMEOUT_S = 180
REPORT_KEYS = (
    "produced", "stored", "lost", "duplicated_rows", "missing_downstream",
    "duplicate_downstream", "unexpected_dlq", "missing_dlq", "emails_missing",
    "emails_repeated", "kills", "restarts", "shutdown_seconds_max",
)  # fmt: skip
CONNECTION_VARIABLES = ("ALARMD_KAFKA_BOOTSTRAP_SERVERS", "ALARMD_DATABASE_URL")
BATCH_STAGES = {"decode", "write", "publish", "mark", "commit"}


class ChaosError(Exception):
    """The run cannot start; the message says what to fix."""


@dataclass(frozen=True)
class Options:
    alarms: int
    kills: int
    seed: int = 20240311
    work_dir: Path = ROOT / ".local" / "chaos"
    idle_timeout_s: float = 900.0
    keep: bool = False


@dataclass
class Outcome:
    report: dict[str, int | float]
    details: dict
    failures: list[str]


@dataclass
class _Tally:
    kills: int = 0
    restarts: int = 0
    shutdown_seconds: list[float] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)


def control(action: str) -> None:
    """scripts/services.sh ACTION, with the caller's ports; raises on failure.

    The connection settings are left out of its environment: with them set,
    `up` would take the services for someone else's and start neither."""
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    done = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), action],
        capture_output=True, text=True, timeout=SERVICE_CONTROL_TIMEOUT_S, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"scripts/services.sh {action} failed: {done.stderr}")


def say(text: str) -> None:
    print(f"chaos: {text}", flush=True)


def run(options: Options) -> Outcome:
    services = _local_services()
    work_dir = options.work_dir / time.strftime("%Y%m%dT%H%M%S")
    work_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(services, work_dir)
    stack.create()
    say(f"stack {stack.suffix}, logs in {work_dir}")
    try:
        return _Run(stack, options, work_dir).execute()
    finally:
        if _frozen():
            control("postgres-thaw")
        control("up")  # whatever a fault left down is up again for what follows
        if not options.keep:
            stack.destroy()


class _Run:
    def __init__(self, stack: Stack, options: Options, work_dir: Path) -> None:
        self.stack, self.options, self.work_dir = stack, options, work_dir
        self.rng = random.Random(options.seed)
        self.tally = _Tally()
        self.found = Findings()
        self.notify_group = f"alarmd-notify-{stack.suffix}"

    def execute(self) -> Outcome:
        say(f"building {self.options.alarms} alarms from {SAMPLE_PATH.name}")
        workload = build(
            SAMPLE_PATH, self.options.alarms, self.stack.suffix, self.options.seed
        )
        first = json.loads(SAMPLE_PATH.read_text("utf-8").splitlines()[0])
        poison = poison_set(first) * POISON_COPIES
        self.sink = SmtpSink(self.work_dir / "mail", self.work_dir / "smtp-sink.log")
        self.daemons = [
            Slot(f"daemon-{n}", "run", self._env(), self.work_dir)
            for n in range(1, DAEMONS + 1)
        ]
        self.sidecar = Slot("sidecar", "notify", self._sidecar_env(), self.work_dir)
        slots = [*self.daemons, self.sidecar]
        placed: dict[tuple[int, int], PoisonCase] = {}
        try:
            for slot in slots:
                slot.start().http_port(RECOVERY_TIMEOUT_S)
            placed = self._produce_with_faults(workload, poison)
            self._wait_for_idle()
            self._stop(slots)
            self._check(workload, placed)
        except Exception:  # noqa: BLE001 - the report must still be written
            self.found.failures.append(
                "the run itself failed: " + traceback.format_exc(limit=3).strip()
            )
        finally:
            for slot in slots:
                if slot.process is not None and slot.current.running():
                    slot.kill()
            self.sink.stop()
        left = leftover_children()
        self.found.fail_unless(not left, f"processes left running: {left}")

        counts = self.found.counts
        report = {key: counts.get(key, 0) for key in REPORT_KEYS}
        report.update(
            produced=len(workload.messages) + len(poison),
            kills=self.tally.kills,
            restarts=self.tally.restarts,
            shutdown_seconds_max=round(max(self.tally.shutdown_seconds, default=0), 2),
        )
        details = {
            "distinct_events": workload.events,
            "cycles": counts.get("cycles"),
            "expected_cycles": len(workload.cycle_tokens),
            "notifications": sum(workload.notifications.values()),
            "emails_received": counts.get("emails_received"),
            "poison": len(poison),
            "faults": self.tally.faults,
            "work_dir": str(self.work_dir),
        }
        return Outcome(report, details, self.found.failures)

    # --- producing and faults ---------------------------------------------------

    def _produce_with_faults(
        self, workload: Workload, poison: list[PoisonCase]
    ) -> dict[tuple[int, int], PoisonCase]:
        faults = self._schedule()
        waves = len(faults) + 1
        size = -(-len(workload.messages) // waves)
        placed: dict[tuple[int, int], PoisonCase] = {}
        for wave in range(waves):
            start, end = wave * size, min((wave + 1) * size, len(workload.messages))
            messages: list = list(workload.messages[start:end])
            kinds: list[PoisonCase | None] = [None] * len(messages)
            for bad in (p for i, p in enumerate(poison) if i % waves == wave):
                spot = self.rng.randrange(len(messages) + 1)
                message = bad.message
                messages.insert(spot, (message.key, message.value, message.headers))
                kinds.insert(spot, bad)
            positions = self.stack.produce_raw(messages)
            placed.update(
                (position, bad)
                for position, bad in zip(positions, kinds, strict=True)
                if bad is not None
            )
            say(f"wave {wave + 1}/{waves}: {len(messages)} messages produced")
            if wave < len(faults):
                before = workload.distinct_before
                done_at = before[end] if end < len(before) else workload.events
                target = before[start] + WAVE_PROGRESS_SHARE * (done_at - before[start])
                name, fault = faults[wave]
                if name != "postgres_freeze":
                    self._wait_for_progress(target)
                began = time.monotonic()
                detail = fault() or {}
                self.tally.faults.append(
                    {"fault": name, "seconds": round(time.monotonic() - began, 1),
                     **detail}
                )  # fmt: skip
                say(f"fault {wave + 1}/{len(faults)}: {name} {detail}")
        return placed

    def _schedule(self) -> list[tuple[str, Callable[[], dict | None]]]:
        faults: list[tuple[str, Callable[[], dict | None]]] = [
            ("sigkill_daemon", self._kill_daemon) for _ in range(self.options.kills)
        ]
        faults += [
            ("sigkill_sidecar", self._kill_sidecar),
            ("postgres_restart", self._restart_postgres),
            ("postgres_freeze", self._freeze_postgres),
            ("kafka_restart", self._restart_kafka),
            ("sigterm_daemon", self._terminate_daemon),
        ]
        self.rng.shuffle(faults)
        return faults

    def _wait_for_progress(self, target: float) -> None:
        deadline = time.monotonic() + PROGRESS_TIMEOUT_S
        while (stored := self._stored()) < target:
            if time.monotonic() > deadline:
                say(f"only {stored} of {target:.0f} events stored; injecting anyway")
                return
            time.sleep(0.5)

    def _kill_daemon(self) -> dict:
        return self._kill_and_restart(self.rng.choice(self.daemons))

    def _kill_sidecar(self) -> dict:
        return self._kill_and_restart(self.sidecar)

    def _kill_and_restart(self, slot: Slot) -> dict:
        slot.kill()
        self.tally.kills += 1
        slot.start()
        self.tally.restarts += 1
        return {"instance": slot.name}

    def _restart_postgres(self) -> None:
        control("postgres-stop")
        control("postgres-start")

    def _restart_kafka(self) -> None:
        control("kafka-stop")
        time.sleep(KAFKA_DOWN_S)
        control("kafka-start")

    def _freeze_postgres(self) -> dict:
        """Freezes PostgreSQL past the stall deadline; every daemon that logged a
        stall mid-batch must have answered /healthz with 503, and all must be
        healthy again after the thaw."""
        stalls_before = {
            s.name: len(s.events("poll_loop_stalled")) for s in self.daemons
        }
        went_503: set[str] = set()
        control("postgres-freeze")
        try:
            frozen_until = time.monotonic() + FREEZE_S
            while time.monotonic() < frozen_until:
                went_503 |= {s.name for s in self.daemons if s.health() == 503}
                time.sleep(1.0)
        finally:
            control("postgres-thaw")
        stalled = {
            s.name: e["stage"]
            for s in self.daemons
            for e in s.events("poll_loop_stalled")[stalls_before[s.name] :]
        }
        mid_batch = {name for name, stage in stalled.items() if stage in BATCH_STAGES}
        self.found.fail_unless(
            bool(went_503),
            "no daemon's /healthz answered 503 while PostgreSQL was frozen",
        )
        self.found.fail_unless(
            mid_batch <= went_503,
            f"daemons stalled mid-batch but kept /healthz 200: {sorted(mid_batch - went_503)}",
        )
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while any(s.health() != 200 for s in self.daemons):
            if time.monotonic() > deadline:
                self.found.failures.append(
                    "a daemon's /healthz stayed unhealthy after PostgreSQL thawed"
                )
                break
            time.sleep(1.0)
        return {"healthz_503": sorted(went_503), "stalled_stages": stalled}

    def _terminate_daemon(self) -> dict:
        slot = self.rng.choice(self.daemons)
        seconds, code = slot.terminate(TERMINATE_TIMEOUT_S)
        self.tally.shutdown_seconds.append(seconds)
        self.found.fail_unless(
            code == 0 and seconds <= SHUTDOWN_DEADLINE_S + SHUTDOWN_SLACK_S,
            f"{slot.name} took {seconds:.1f} s to stop on SIGTERM and exited {code}; "
            f"the shutdown deadline is {SHUTDOWN_DEADLINE_S:g} s",
        )
        slot.start()
        self.tally.restarts += 1
        return {"instance": slot.name, "exit_code": code, "seconds": round(seconds, 2)}

    # --- the end ------------------------------------------------------------------

    def _wait_for_idle(self) -> None:
        """Until both groups have no lag and nothing waits to be published or
        sent, twice in a row."""
        servers = self.stack.services.kafka_bootstrap_servers
        deadline = time.monotonic() + self.options.idle_timeout_s
        quiet = 0
        while quiet < IDLE_CHECKS:
            if time.monotonic() > deadline:
                self.found.failures.append(
                    f"the run was not idle within {self.options.idle_timeout_s:g} s"
                )
                return
            time.sleep(IDLE_CHECK_INTERVAL_S)
            pending = self.stack.query(
                "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM notification_emails"
                "    WHERE sent_at IS NULL AND failed_at IS NULL)"
            )[0][0]
            behind = invariants.lag(
                servers, self.stack.group_id, self.stack.topics.input
            ) + invariants.lag(
                servers, self.notify_group, self.stack.topics.notification
            )
            quiet = quiet + 1 if pending == 0 and behind == 0 else 0
        self.found.counts["lag"] = 0

    def _stop(self, slots: list[Slot]) -> None:
        for slot in slots:
            seconds, code = slot.terminate(TERMINATE_TIMEOUT_S)
            self.found.fail_unless(
                code == 0, f"{slot.name} exited {code} on the final SIGTERM"
            )

    def _check(
        self, workload: Workload, placed: dict[tuple[int, int], PoisonCase]
    ) -> None:
        servers = self.stack.services.kafka_bootstrap_servers
        behind = invariants.lag(servers, self.stack.group_id, self.stack.topics.input)
        behind += invariants.lag(
            servers, self.notify_group, self.stack.topics.notification
        )
        self.found.fail_unless(
            behind == 0, f"the consumer groups lag by {behind} messages"
        )
        invariants.check_database(self.stack, workload, self.found)
        invariants.check_downstream(self.stack, workload, self.found)
        invariants.check_dead_letters(self.stack, placed, self.found)
        invariants.check_emails(self.sink.folder, workload, self.found)

    # --- settings -------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return self.stack.env(
            {
                "ALARMD_SHUTDOWN_DEADLINE_S": str(SHUTDOWN_DEADLINE_S),
                "ALARMD_STALL_DEADLINE_S": str(STALL_DEADLINE_S),
                "ALARMD_PUBLISH_TIMEOUT_S": "10",
                "ALARMD_SMTP_TIMEOUT_S": "10",
                "ALARMD_RETRY_MAX_S": "2",
                "ALARMD_OUTBOX_SWEEP_INTERVAL_S": "5",
                "ALARMD_OUTBOX_SWEEP_MIN_AGE_S": "15",
                # A killed member's partitions move after 10 s, not 45.
                "ALARMD_KAFKA_PROPERTIES": json.dumps({"session.timeout.ms": "10000"}),
                "ALARMD_NOTIFY_GROUP_ID": self.notify_group,
                "ALARMD_NOTIFY_DEAD_LETTER_TOPIC": self.stack.topics.notify_dead_letter,
            }
        )

    def _sidecar_env(self) -> dict[str, str]:
        return {
            **self._env(),
            "ALARMD_SMTP_HOST": "127.0.0.1",
            "ALARMD_SMTP_PORT": str(self.sink.port),
            "ALARMD_SMTP_SECURITY": "none",
            "ALARMD_NOTIFY_GROUP_WAIT_S": "1",
            "ALARMD_NOTIFY_GROUP_INTERVAL_S": "1",
            "ALARMD_NOTIFY_SWEEP_MIN_AGE_S": "15",
            "ALARMD_NOTIFY_HTTP_PORT": "0",
            # Every request listed in its email's table, so each can be found.
            "ALARMD_NOTIFY_MAX_ALARMS_PER_EMAIL": "1000000",
        }

    def _stored(self) -> int:
        return self.stack.query("SELECT count(*) FROM alarm_events")[0][0]


def _local_services() -> Services:
    if not SERVICES_ENV.is_file():
        raise ChaosError(
            f"{SERVICES_ENV} is missing; start the local services with "
            "`make services-up` (the run restarts and freezes them)"
        )
    for pid_file, what in (
        (ROOT / ".local" / "postgres" / "data" / "postmaster.pid", "PostgreSQL"),
        (ROOT / ".local" / "kafka" / "kafka.pid", "Kafka"),
    ):
        if not pid_file.is_file():
            raise ChaosError(
                f"the local {what} is not running ({pid_file} is missing); the run "
                "restarts and freezes the services of scripts/services.sh, so start "
                "them with `make services-up` (not elsewhere: the run needs their "
                "processes)"
            )
    services = Services.from_env_file(SERVICES_ENV)
    problems = services.unreachable()
    if problems:
        raise ChaosError("; ".join(problems))
    return services


def _frozen() -> bool:
    pid_file = ROOT / ".local" / "postgres" / "data" / "postmaster.pid"
    if not pid_file.is_file():
        return False
    pid = pid_file.read_text().split()[0]
    status = Path(f"/proc/{pid}/stat")
    return status.is_file() and status.read_text().split()[2] == "T"
