"""The secured listeners of the local services, as .local/secured.env says:
Kafka's SASL_SSL listener (SCRAM) and PostgreSQL's password role over TLS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from .sample import ROOT

SECURED_ENV = ROOT / ".local" / "secured.env"


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a file that scripts/services.sh wrote."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class SecuredServices:
    kafka_bootstrap_servers: str
    kafka_sasl_mechanism: str
    kafka_username: str
    kafka_password: str
    ca_file: Path
    database_url: str  # without the password
    database_password: str

    @classmethod
    def from_env_file(cls, path: Path) -> SecuredServices:
        values = read_env_file(path)
        return cls(
            kafka_bootstrap_servers=values["SECURED_KAFKA_BOOTSTRAP_SERVERS"],
            kafka_sasl_mechanism=values["SECURED_KAFKA_SASL_MECHANISM"],
            kafka_username=values["SECURED_KAFKA_SASL_USERNAME"],
            kafka_password=_read_secret(values["SECURED_KAFKA_SASL_PASSWORD_FILE"]),
            ca_file=Path(values["SECURED_CA_FILE"]),
            database_url=values["SECURED_DATABASE_URL"],
            database_password=_read_secret(values["SECURED_DATABASE_PASSWORD_FILE"]),
        )

    @property
    def database_role(self) -> str:
        return str(make_url(self.database_url).username)

    def database_url_for(
        self, database: str, password: str | None = None, ca_file: Path | None = None
    ) -> str:
        """The secured URL of `database`, with the password in it."""
        url = make_url(self.database_url).set(
            database=database, password=password or self.database_password
        )
        url = url.update_query_dict({"sslrootcert": str(ca_file or self.ca_file)})
        return url.render_as_string(hide_password=False)

    def env(
        self,
        database: str,
        *,
        kafka_password: str | None = None,
        kafka_ca_file: Path | None = None,
        database_password: str | None = None,
        database_ca_file: Path | None = None,
    ) -> dict[str, str]:
        """ALARMD_* settings that take alarmd through both secured listeners,
        logging at DEBUG with librdkafka's security and broker debug on."""
        return {
            "ALARMD_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "ALARMD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "ALARMD_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "ALARMD_KAFKA_SASL_USERNAME": self.kafka_username,
            "ALARMD_KAFKA_SASL_PASSWORD": kafka_password or self.kafka_password,
            "ALARMD_KAFKA_SSL_CA_LOCATION": str(kafka_ca_file or self.ca_file),
            "ALARMD_KAFKA_PROPERTIES": json.dumps(
                {"debug": "security,broker,conf,generic"}
            ),
            "ALARMD_DATABASE_URL": self.database_url_for(
                database, database_password, database_ca_file
            ),
            "ALARMD_LOG_LEVEL": "DEBUG",
        }


def _read_secret(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()
