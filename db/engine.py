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
        pool_pre_ping=True,
        pool_size=2,
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
    data is wrong."""
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return True
    code = getattr(exc, "pgcode", None)
    return isinstance(code, str) and code[:2] in TRANSIENT_SQLSTATE_CLASSES
