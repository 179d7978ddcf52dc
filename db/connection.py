"""The psycopg2 connection both workers use, with the database's unavailability
translated into TransientError at this boundary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2
from psycopg2.extensions import connection as Connection
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from alarmd.errors import ConfigurationError, TransientError
from db.engine import is_misconfigured, is_transient


@contextlib.contextmanager
def translated_connection(
    engine: Engine, *, commit: bool = False
) -> Iterator[Connection]:
    """A pooled raw psycopg2 connection; commits on leaving when `commit`.

    Raises TransientError("database") when the database is unavailable, on
    connecting or inside the block; a broken connection is invalidated, never
    reused. Any other error rolls back and propagates as it is.
    """
    try:
        raw = engine.raw_connection()
    except (DBAPIError, psycopg2.Error) as exc:
        # Engine.raw_connection() passes the pool's connect errors through as
        # psycopg2's own, not wrapped in DBAPIError as Engine.connect() does.
        original = exc.orig if isinstance(exc, DBAPIError) else exc
        if is_misconfigured(original):
            raise ConfigurationError(
                f"cannot connect to PostgreSQL: {describe(original)}; fix "
                "ALARMD_DATABASE_URL (database name, user or password; for TLS, "
                "sslmode and sslrootcert)"
            ) from exc
        if not is_transient(original):
            raise
        raise TransientError("database", describe(original)) from exc

    try:
        yield raw  # type: ignore[misc]
        if commit:
            raw.commit()
    except Exception as exc:
        if is_transient(exc):
            raw.invalidate()
            raise TransientError("database", describe(exc)) from exc
        with contextlib.suppress(Exception):
            raw.rollback()
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            raw.rollback()
        raise
    finally:
        with contextlib.suppress(Exception):
            raw.close()


def ping(engine: Engine) -> bool:
    """True when the database answers a query; for the readiness probe."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except DBAPIError:
        return False


def describe(exc: BaseException | None) -> str:
    """A database error's text on one line."""
    return " ".join(str(exc).split()) if exc else "unknown database error"
