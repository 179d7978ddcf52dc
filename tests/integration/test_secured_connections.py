"""The daemon through Kafka's SASL_SSL listener (SCRAM) and PostgreSQL over TLS
with sslmode=verify-full, configured by ALARMD_* settings alone; no password
in any log line, metric or `alarmd config` output; wrong credentials or a
wrong CA end the process with a sentence instead of retrying forever."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import trustme

from .polling import wait_until
from .sample import ROOT, SampleExpectation, assert_sample_delivered
from .secured import SECURED_ENV, SecuredServices
from .stack import RUN_TIMEOUT_S, Stack

HTTP_TIMEOUT_S = 5.0
SHUTDOWN_TIMEOUT_S = 30.0
# A refused connection must end the process in seconds, not after retries.
REFUSAL_EXIT_TIMEOUT_S = 60.0
MISCONFIGURED_EXIT_CODE = 2


@pytest.fixture(scope="module")
def secured(services) -> SecuredServices:
    """The secured listeners that `scripts/services.sh up` (run by the
    `services` fixture) started beside the plain ones."""
    if not SECURED_ENV.is_file():
        pytest.fail(
            f"{SECURED_ENV} is missing: scripts/services.sh up writes it when it "
            "starts the local Kafka and PostgreSQL itself",
            pytrace=False,
        )
    try:
        return SecuredServices.from_env_file(SECURED_ENV)
    except KeyError as exc:
        pytest.fail(
            f"{SECURED_ENV} lacks {exc}: the secured tests need the local Kafka and "
            "PostgreSQL of scripts/services.sh, not services named by "
            "ALARMD_KAFKA_BOOTSTRAP_SERVERS or ALARMD_DATABASE_URL",
            pytrace=False,
        )


@pytest.fixture
def secured_stack(stack: Stack, secured: SecuredServices) -> Stack:
    """The test's stack, its tables usable by the password role, which owns
    nothing and gets only the privileges the daemon needs."""
    connection = stack.services.connect(stack.database)
    connection.autocommit = True
    with connection.cursor() as cur:
        for objects in ("ALL TABLES", "ALL SEQUENCES"):
            cur.execute(
                f"GRANT ALL PRIVILEGES ON {objects} IN SCHEMA public "
                f'TO "{secured.database_role}"'
            )
    connection.close()
    return stack


@pytest.fixture(scope="module")
def foreign_ca_file(tmp_path_factory) -> Path:
    """A CA that signed neither server's certificate."""
    path = tmp_path_factory.mktemp("foreign-ca") / "ca.crt"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def secrets_of(secured: SecuredServices, env: dict[str, str]) -> dict[str, str]:
    """Every secret a leak would show, by what it is."""
    return {
        "Kafka password": env["ALARMD_KAFKA_SASL_PASSWORD"],
        "database password": secured.database_password,
        "database URL with its password": env["ALARMD_DATABASE_URL"],
        "local Kafka password": secured.kafka_password,
    }


def assert_no_secret_in(texts: dict[str, str], secrets: dict[str, str]) -> None:
    leaks = [
        f"the {secret} appears in {where}"
        for where, text in texts.items()
        for secret, value in secrets.items()
        if value in text
    ]
    assert not leaks, "; ".join(leaks)


def client_ssl_connections(stack: Stack, role: str) -> list[bool]:
    """Whether each of the role's connections to the stack's database uses TLS."""
    return [
        row[0]
        for row in stack.query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.usename = %s AND a.datname = %s",
            (role, stack.database),
        )
    ]


def test_daemon_carries_the_sample_over_sasl_ssl_and_verified_tls_without_showing_a_password(  # noqa: E501
    secured_stack: Stack,
    secured: SecuredServices,
    sample: SampleExpectation,
    sample_path: Path,
):
    """Produced and consumed over SASL_SSL, stored over verify-full TLS as the
    password role: the sample arrives whole downstream, and neither password
    appears in the DEBUG log (librdkafka's included), /metrics or `alarmd config`."""
    stack = secured_stack
    env = secured.env(stack.database)

    produced = stack.alarmd(
        "produce", str(sample_path), "--no-progress", extra_env=env,
        timeout_s=RUN_TIMEOUT_S,
    )  # fmt: skip
    daemon = stack.start_daemon(exit_when_idle_s=None, extra_env=env)
    base_url = f"http://127.0.0.1:{daemon.http_port(RUN_TIMEOUT_S)}"
    wait_until(
        lambda: (
            stack.counts()["alarm_events"] == sample.events
            and stack.counts()["outbox_pending"] == 0
            and stack.counts()["outbox"] > 0
        ),
        RUN_TIMEOUT_S,
        lambda: f"the sample was not stored: {stack.counts()}\n{daemon.tail()}",
    )
    tls_connections = client_ssl_connections(stack, secured.database_role)
    metrics_text = requests.get(f"{base_url}/metrics", timeout=HTTP_TIMEOUT_S).text
    config = stack.alarmd("config", extra_env=env)
    daemon.terminate()
    exit_code = daemon.wait(SHUTDOWN_TIMEOUT_S)

    assert exit_code == 0, daemon.tail()
    assert json.loads(produced.stdout.splitlines()[-1])["produced"] == sample.lines
    assert_sample_delivered(stack, sample)
    assert tls_connections and all(tls_connections), tls_connections
    shown = json.loads(config.stdout)
    assert shown["kafka_sasl_username"] == secured.kafka_username
    assert shown["kafka_ssl_ca_location"] == str(secured.ca_file)
    log_text = daemon.log_path.read_text(encoding="utf-8", errors="replace")
    librdkafka_lines = [e for e in daemon.events() if e.get("logger") == "librdkafka"]
    # The scan below means something only if librdkafka's debug lines are in it.
    assert any("SASL" in json.dumps(e) for e in librdkafka_lines), (
        "no librdkafka SASL debug line was captured"
    )
    assert_no_secret_in(
        {
            "the daemon's output": log_text,
            "/metrics": metrics_text,
            "`alarmd config`": config.stdout + config.stderr,
            "`alarmd produce`": produced.stdout + produced.stderr,
        },
        secrets_of(secured, env),
    )


REFUSALS = {
    "wrong Kafka password": (
        {"kafka_password": "not-the-kafka-password-4711"},
        ("the Kafka broker refused the connection", "ALARMD_KAFKA_SASL_PASSWORD"),
    ),
    "Kafka broker certificate from another CA": (
        {"kafka_ca_file": "foreign"},
        ("certificate verify failed", "ALARMD_KAFKA_SSL_CA_LOCATION"),
    ),
    "wrong database password": (
        {"database_password": "not-the-database-password-0815"},
        ("password authentication failed", "ALARMD_DATABASE_URL"),
    ),
    "database certificate from another CA": (
        {"database_ca_file": "foreign"},
        ("certificate verify failed", "sslrootcert"),
    ),
}


@pytest.mark.parametrize(
    ("changes", "sentence"), list(REFUSALS.values()), ids=list(REFUSALS)
)
def test_refused_secured_connection_exits_with_a_sentence_and_no_password(
    secured_stack: Stack,
    secured: SecuredServices,
    foreign_ca_file: Path,
    changes: dict[str, str],
    sentence: tuple[str, ...],
):
    """A wrong password or an untrusted certificate, on either service, ends the
    daemon with exit 2 and a sentence naming the setting to fix; neither the
    password given nor the right one is printed."""
    changes = {
        name: (foreign_ca_file if value == "foreign" else value)
        for name, value in changes.items()
    }
    env = secured.env(secured_stack.database, **changes)  # type: ignore[arg-type]

    daemon = secured_stack.start_daemon(exit_when_idle_s=None, extra_env=env)
    exit_code = daemon.wait(REFUSAL_EXIT_TIMEOUT_S)

    output = daemon.log_path.read_text(encoding="utf-8", errors="replace")
    last_line = output.strip().splitlines()[-1]
    assert exit_code == MISCONFIGURED_EXIT_CODE, daemon.tail()
    assert last_line.startswith("alarmd: "), daemon.tail()
    assert all(part in last_line for part in sentence), last_line
    assert_no_secret_in({"the daemon's output": output}, secrets_of(secured, env))


@pytest.mark.parametrize(
    "command",
    [["topics", "create"], ["produce", "--no-progress", "SAMPLE"], ["notify"]],
    ids=["topics create", "produce", "notify"],
)
def test_tools_exit_with_a_sentence_when_the_broker_refuses_the_password(
    secured_stack: Stack, secured: SecuredServices, sample_path: Path, command
):
    """`alarmd topics create`, `alarmd produce` and the email sidecar stop at
    the first refusal with exit 2 and the setting to fix, instead of waiting
    out their timeouts."""
    env = {
        **secured.env(secured_stack.database, kafka_password="not-the-password-42"),
        "ALARMD_NOTIFY_HTTP_PORT": "0",
    }
    args = [str(sample_path) if arg == "SAMPLE" else arg for arg in command]

    done = subprocess.run(
        [sys.executable, "-m", "alarmd.cli", *args],
        env=secured_stack.env(env), cwd=ROOT, capture_output=True, text=True,
        timeout=REFUSAL_EXIT_TIMEOUT_S,
    )  # fmt: skip

    last_line = done.stderr.strip().splitlines()[-1]
    assert done.returncode == MISCONFIGURED_EXIT_CODE, done.stderr[-2000:]
    assert "refused the connection" in last_line, last_line
    assert "ALARMD_KAFKA_SASL_PASSWORD" in last_line, last_line
    assert_no_secret_in(
        {f"`alarmd {command[0]}`": done.stdout + done.stderr}, secrets_of(secured, env)
    )
