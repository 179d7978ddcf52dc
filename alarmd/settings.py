"""The one settings object, built once at start-up from `ALARMD_*` variables.

An optional dotenv-style file named by `ALARMD_CONFIG_FILE` supplies values the
environment does not set. Code below `alarmd.cli` receives a `Settings` and never
reads the environment itself.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

InputEncoding = Literal["single-object", "confluent", "schemaless"]
SmtpSecurity = Literal["none", "starttls", "tls"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# The input topic's max.message.bytes as `alarmd topics create` sets it: far above
# any real alarm, so an oversized one reaches the daemon and is dead-lettered with
# its size instead of being refused at the collector.
INPUT_TOPIC_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024

# librdkafka properties that hold secrets, by what they are: passwords, client
# secrets, private keys and credentials given inline. Paths to such files
# (ssl.key.location, ssl.keystore.location) are not secrets and are shown.
SECRET_KAFKA_PROPERTIES = frozenset(
    {
        "sasl.password",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
        "sasl.jaas.config",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
        "ssl.truststore.password",
    }
)
# Beyond those, any property or URL query parameter whose last word says it is
# a secret, such as `password`, a vendor's `*.client.secret` or an `api_key`.
# A last word of `location` (or libpq's `sslkey`) names a file, not a secret.
SECRET_NAME_WORDS = (
    "password", "passphrase", "secret", "token", "credentials", "apikey",
)  # fmt: skip
# The typed Kafka settings and the librdkafka property each one sets.
TYPED_KAFKA_PROPERTIES = {
    "kafka_security_protocol": "security.protocol",
    "kafka_sasl_mechanism": "sasl.mechanism",
    "kafka_sasl_username": "sasl.username",
    "kafka_sasl_password": "sasl.password",
    "kafka_ssl_ca_location": "ssl.ca.location",
}
MASK = "********"
# Properties alarmd sets itself from its own settings, per client.
UNTYPED_KAFKA_REFUSED = {
    "bootstrap.servers": "ALARMD_KAFKA_BOOTSTRAP_SERVERS",
    "group.id": "ALARMD_GROUP_ID or ALARMD_NOTIFY_GROUP_ID",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALARMD_", frozen=True, extra="ignore")

    # Connections.
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    kafka_properties: dict[str, str] = Field(
        default_factory=dict,
        repr=False,  # may hold sasl.password; show it through masked() only
        description="Extra librdkafka properties as a JSON object, applied to every "
        'consumer, producer and admin client, e.g. {"security.protocol": "SASL_SSL"}.',
    )
    kafka_security_protocol: KafkaSecurityProtocol | None = Field(
        None, description="security.protocol of every Kafka client; default: PLAINTEXT."
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        None, description="sasl.mechanism for SASL_SSL or SASL_PLAINTEXT."
    )
    kafka_sasl_username: str | None = Field(None, description="sasl.username.")
    kafka_sasl_password: SecretStr | None = Field(None, description="sasl.password.")
    kafka_ssl_ca_location: FilePath | None = Field(
        None,
        description="ssl.ca.location: the CA bundle (PEM) to verify the brokers "
        "with; default: the system's.",
    )
    database_url: SecretStr = Field(
        SecretStr("postgresql+psycopg2://alarmd@127.0.0.1:5432/alarmd"),
        description="SQLAlchemy URL of the PostgreSQL database; for TLS, add "
        "?sslmode=verify-full&sslrootcert=/path/ca.crt.",
    )

    # Topics and group.
    group_id: str = Field("alarmd", description="Consumer group of the daemon.")
    input_topic: str = "alarms"
    dead_letter_topic: str = "alarms.dlq"
    predictive_topic: str = "predictive"
    iac1_topic: str = "iac1"
    notification_topic: str = "notification"
    topic_partitions: int = Field(
        6, ge=1, description="Partitions `alarmd topics create` gives new topics."
    )
    topic_replication_factor: int = Field(1, ge=1)

    # Input framing.
    input_encoding: InputEncoding = "single-object"
    writer_schema_file: Path | None = Field(
        None, description="Writer schema for input_encoding=schemaless; default: ours."
    )
    schema_registry_url: str | None = Field(
        None, description="Schema Registry URL for input_encoding=confluent."
    )

    # Processing.
    email_alarm_types: list[str] = Field(
        default_factory=list,
        description="alarmText values that yield a notification request (JSON list).",
    )
    max_event_bytes: int = Field(
        DEFAULT_MAX_EVENT_BYTES,
        ge=1024,
        le=INPUT_TOPIC_MAX_MESSAGE_BYTES,
        description="Largest message value stored as an alarm event; a larger one "
        "is dead-lettered as oversized_value, with its size.",
    )
    batch_max_messages: int = Field(1000, ge=1, le=100_000)
    writer_threads: int = Field(
        2,
        ge=1,
        le=16,
        description="Transactions of one batch run side by side, one per writer "
        "thread and database connection, each for its share of the partitions.",
    )
    batch_timeout_s: float = Field(
        0.05,
        gt=0,
        description="How long one consume call waits to fill a batch. Under a "
        "backlog batches fill at once; below it, this bounds how long an alarm "
        "waits for others to share its batch.",
    )
    shutdown_deadline_s: float = Field(
        25.0, gt=0, description="SIGTERM to exit: finish the batch, close, flush."
    )
    publish_timeout_s: float = Field(
        30.0, gt=0, description="How long one outbox publish waits for delivery."
    )
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    outbox_sweep_interval_s: float = Field(10.0, gt=0)
    outbox_sweep_min_age_s: float = Field(
        15.0,
        ge=0,
        description="The sweep republishes only rows older than this, so it never "
        "races the instance that wrote them and is publishing them now.",
    )
    statistics_interval_s: float = Field(
        5.0, gt=0, description="How often librdkafka reports consumer lag."
    )
    dead_letter_limit_in_row: int = Field(
        100,
        ge=0,
        description="Invalid messages in a row that stop dead-lettering: the batch "
        "is held back, consumption pauses and readiness fails until restart. 0: off.",
    )
    dead_letter_limit_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of invalid messages among the last "
        "dead_letter_limit_window that stops dead-lettering likewise. 0: off.",
    )
    dead_letter_limit_window: int = Field(
        1000, ge=1, description="Messages the ratio is judged over."
    )
    stall_deadline_s: float = Field(
        90.0,
        gt=0,
        description="/healthz fails when the poll loop has not come round for this "
        "long (a hung database call), so the orchestrator restarts the process. "
        "Must exceed publish_timeout_s (also the longest wait for an offset "
        "commit) and smtp_timeout_s.",
    )

    # The email sidecar (`alarmd notify`).
    notify_group_id: str = Field(
        "alarmd-notify", description="Consumer group of the email sidecar."
    )
    notify_dead_letter_topic: str = "notification.dlq"
    notify_group_by: list[str] = Field(
        default_factory=lambda: ["customer", "alarmText"],
        description="Notification request fields whose values form the grouping key "
        "(JSON list of customer, alarmText, nodegroup, nodeName, iactoken).",
    )
    notify_group_wait_s: float = Field(
        30.0, ge=0, description="How long a new group collects siblings first."
    )
    notify_group_interval_s: float = Field(
        300.0, ge=0, description="Later emails of an open group: at most this often."
    )
    notify_max_alarms_per_email: int = Field(
        50, ge=1, description='Rows in one email\'s table; the rest are "and N more".'
    )
    notify_field_max_chars: int = Field(
        120, ge=8, description="Table cells longer than this are cut with a marker."
    )
    notify_template_dir: Path | None = Field(
        None, description="Operator templates; files here win over templates/."
    )
    notify_route_template_dirs: dict[str, Path] = Field(
        default_factory=dict,
        description="Templates per route (a group key as its values joined by '/', "
        "or a customer): files there win over notify_template_dir, then templates/.",
    )
    notify_from: str = "alarmd <alarmd@localhost>"
    notify_recipients: list[str] = Field(
        default_factory=lambda: ["noc@localhost"],
        description="Recipients of groups without a route (JSON list).",
    )
    notify_routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Recipients per route (a group key as its values joined by "
        "'/', or a customer), as a JSON object of lists.",
    )
    notify_webhooks: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Webhook URL per route: the digest is also posted there as "
        "JSON. A secret: such URLs often carry a token.",
    )
    notify_webhook_timeout_s: float = Field(
        10.0, gt=0, description="Connect and read timeout of one webhook post."
    )
    notify_message_id_domain: str = "alarmd.local"
    notify_sweep_min_age_s: float = Field(
        30.0,
        ge=0,
        description="Recorded emails not marked sent after this long are sent again, "
        "with the same bytes and Message-ID (a crash between send and record).",
    )
    notify_http_port: int = Field(9401, ge=0, le=65535)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_security: SmtpSecurity = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = Field(
        None, description="CA bundle to verify the SMTP server with; default: system."
    )
    smtp_timeout_s: float = Field(30.0, gt=0)

    # Operations.
    http_host: str = "0.0.0.0"
    http_port: int = Field(9400, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("kafka_properties", mode="before")
    @classmethod
    def _properties_as_strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: SecretStr) -> SecretStr:
        from sqlalchemy.engine import make_url

        try:
            parsed = make_url(value.get_secret_value())
            if not parsed.drivername.startswith("postgresql"):
                raise ValueError
            # An unencoded @, /, ? or # in the password moves part of it into
            # the user or host name, where masking would not hide it.
            for part in (parsed.username, parsed.host):
                if part and any(c in part for c in "@/?#"):
                    raise ValueError
        except Exception:  # noqa: BLE001 - the parser's text would quote the URL
            raise ValueError(
                "not a PostgreSQL URL such as "
                "postgresql+psycopg2://user:password@host:5432/alarmd (check the "
                "port and that special characters in the password are %-encoded)"
            ) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(
                f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}"
            )
        return level

    @field_validator("notify_group_by")
    @classmethod
    def _groupable_fields(cls, value: list[str]) -> list[str]:
        from notifier.request import GROUPABLE_FIELDS

        unknown = [name for name in value if name not in GROUPABLE_FIELDS]
        if unknown or not value:
            raise ValueError(
                f"{unknown or 'an empty list'} cannot group requests; choose from "
                f"{', '.join(GROUPABLE_FIELDS)}"
            )
        return value

    @model_validator(mode="after")
    def _retry_bounds_in_order(self) -> Settings:
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError(
                f"ALARMD_RETRY_INITIAL_S ({self.retry_initial_s:g} s) exceeds "
                f"ALARMD_RETRY_MAX_S ({self.retry_max_s:g} s); lower the first or "
                "raise the second"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_set_once(self) -> Settings:
        for prop, variable in UNTYPED_KAFKA_REFUSED.items():
            if prop in self.kafka_properties:
                raise ValueError(
                    f"{prop} in ALARMD_KAFKA_PROPERTIES clashes with alarmd's own setting; set "
                    f"{variable} instead"
                )
        for field, prop in TYPED_KAFKA_PROPERTIES.items():
            if getattr(self, field) is not None and prop in self.kafka_properties:
                raise ValueError(
                    f"{_variable(field)} and {prop} in ALARMD_KAFKA_PROPERTIES "
                    "both set the same property; keep one of them"
                )
        if (self.kafka_sasl_username is None) != (self.kafka_sasl_password is None):
            raise ValueError(
                "ALARMD_KAFKA_SASL_USERNAME and ALARMD_KAFKA_SASL_PASSWORD go "
                "together; set both or neither"
            )
        return self

    @model_validator(mode="after")
    def _batch_timeout_below_shutdown_deadline(self) -> Settings:
        # A stop request is acted on between consume calls.
        if self.batch_timeout_s >= self.shutdown_deadline_s:
            raise ValueError(
                f"ALARMD_BATCH_TIMEOUT_S is {self.batch_timeout_s:g} s but a stop "
                f"must be finished within ALARMD_SHUTDOWN_DEADLINE_S "
                f"({self.shutdown_deadline_s:g} s), and one consume call waits that "
                "long before the stop is seen; lower the first (it is a wait to "
                "fill a batch, well under a second)"
            )
        return self

    @model_validator(mode="after")
    def _stall_deadline_above_waits(self) -> Settings:
        # A publish or an SMTP exchange may block this long without a beat; a
        # deadline below it would restart a healthy process.
        longest = max(self.publish_timeout_s, self.smtp_timeout_s)
        if self.stall_deadline_s <= longest:
            raise ValueError(
                f"ALARMD_STALL_DEADLINE_S is {self.stall_deadline_s:g} s but one "
                f"publish or SMTP exchange may wait {longest:g} s "
                "(ALARMD_PUBLISH_TIMEOUT_S, ALARMD_SMTP_TIMEOUT_S); raise the "
                "deadline or lower those timeouts"
            )
        return self

    def kafka_common(self) -> dict[str, str]:
        """Properties every client gets: bootstrap servers, the typed security
        settings that are set, and the extras."""
        typed = {
            prop: _plain(getattr(self, field))
            for field, prop in TYPED_KAFKA_PROPERTIES.items()
            if getattr(self, field) is not None
        }
        return {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            **typed,
            **self.kafka_properties,
        }

    def downstream_topics(self) -> list[str]:
        return [self.predictive_topic, self.iac1_topic, self.notification_topic]

    def all_topics(self) -> list[str]:
        return [self.input_topic, *self.downstream_topics(), self.dead_letter_topic]

    def sidecar_topics(self) -> list[str]:
        """Topics the email sidecar writes: its dead-letter topic."""
        return [self.notify_dead_letter_topic]

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret replaced by asterisks."""
        shown = self.model_dump(mode="json")
        shown["kafka_properties"] = {
            k: (MASK if is_secret_property(k) else mask_credentials_in(v))
            for k, v in self.kafka_properties.items()
        }
        if self.schema_registry_url is not None:
            shown["schema_registry_url"] = mask_url(self.schema_registry_url)
        for field in list(shown):
            if isinstance(getattr(self, field), SecretStr):
                shown[field] = MASK
        shown["notify_webhooks"] = {k: MASK for k in self.notify_webhooks}
        shown["database_url"] = mask_url(self.database_url.get_secret_value())
        return shown


def is_secret_property(name: str) -> bool:
    """True for a librdkafka property (or URL parameter) that holds a secret
    itself; a `*.location` names a file and is not one."""
    name = name.lower()
    if name in SECRET_KAFKA_PROPERTIES:
        return True
    last = name.replace("_", ".").split(".")[-1]
    return last == "key" or any(word in last for word in SECRET_NAME_WORDS)


def mask_credentials_in(value: str) -> str:
    """A value shown as it is unless it is a URL with credentials, whose
    password is masked (a registry or proxy URL, say)."""
    return mask_url(value) if "://" in value and "@" in value else value


def mask_url(url: str) -> str:
    """The URL with its password, if any, replaced by asterisks: in the
    user:password part and in query parameters such as ?password=."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        hidden = {key: "***" for key in parsed.query if is_secret_property(key)}
        shown = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
        # Read by people: sslrootcert=/etc/... rather than %2Fetc%2F...
        return urllib.parse.unquote(shown)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing at all
        return MASK


def _plain(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def load_settings(**overrides: Any) -> Settings:
    """Builds the settings from the environment and, if named, the config file."""
    config_file = os.environ.get("ALARMD_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        from alarmd.errors import ConfigurationError

        raise ConfigurationError(
            f"ALARMD_CONFIG_FILE names {config_file}, which is not a file; "
            "point it at a dotenv file of ALARMD_* settings or unset it"
        )
    return Settings(_env_file=config_file, **overrides)  # type: ignore[call-arg]


def describe_settings_error(exc: Exception) -> str:
    """The settings error in terms of the variables an operator sets."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{_variable(str(error['loc'][0]))}: {error['msg']}"
            if error["loc"]
            else error["msg"]
            for error in exc.errors(include_url=False)
        )
    text = str(exc)
    match = re.search(r'error parsing value for field "(\w+)"', text)
    if match:
        return (
            f"{_variable(match.group(1))} must be JSON "
            f'(a list such as ["A","B"] or an object such as {{"k":"v"}})'
        )
    return text


def _variable(field: str) -> str:
    return f"ALARMD_{field.upper()}"
