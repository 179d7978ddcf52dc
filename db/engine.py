"""Creating the SQLAlchemy engine and recognising which database errors are
transient."""

from __future__ import annotations

import psycopg2
from sqlalchemy import Engine, create_engine

from alarmd.settings import Settings

# Server SQLSTATE classes that mean "try again": connection exceptions (08),
# insufficient resources (53), operator intervention such as a shutdown (57),
# and serialization failures / deadlocks (40).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")
CONNECT_TIMEOUT_S = 5


def make_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.database_url.get_secret_value(),
        # No ping per checkout: it cost a round trip per batch. A connection the
        # server dropped fails its first statement, is invalidated, and the
        # retry that follows connects afresh (db.connection).
        pool_pre_ping=False,
        # A connection per writer thread, one for marks, sweeps and the
        # readiness probe, and room for a retry beside them.
        pool_size=settings.writer_threads + 1,
        max_overflow=2,
        hide_parameters=True,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "alarmd",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )


def is_transient(exc: BaseException) -> bool:
    """True when a psycopg2 error means the database is unavailable, not that our
    data is wrong.

    A server error carries its SQLSTATE, and the class decides: psycopg2 files
    some permanent ones (54000, an index row too large) under OperationalError
    too. Errors without a SQLSTATE are the connection's own and are transient.
    """
    code = getattr(exc, "pgcode", None)
    if isinstance(code, str) and code:
        return code[:2] in TRANSIENT_SQLSTATE_CLASSES
    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)


# SQLSTATE classes of a row the database refuses for its content: data
# exceptions (22), integrity violations (23), program limits such as an index
# row too large (54). Such a row is dead-lettered, not retried.
ROW_REFUSAL_SQLSTATE_CLASSES = ("22", "23", "54")


def is_row_refusal(exc: BaseException) -> bool:
    code = getattr(exc, "pgcode", None)
    return isinstance(code, str) and code[:2] in ROW_REFUSAL_SQLSTATE_CLASSES


# Connection failures no retry can cure: the settings are wrong.
MISCONFIGURED_CONNECTION_TEXTS = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "invalid dsn",
    "invalid connection option",
    # TLS: the CA does not verify the server, or the certificate names another host.
    "certificate verify failed",
    "does not match host name",
    "server does not support ssl",
)


def is_misconfigured(exc: BaseException) -> bool:
    """True when connecting failed because of the URL, not the server's state."""
    text = str(exc).lower()
    return isinstance(exc, psycopg2.OperationalError) and any(
        t in text for t in MISCONFIGURED_CONNECTION_TEXTS
    )
