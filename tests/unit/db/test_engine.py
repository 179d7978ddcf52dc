"""db/engine.py: which database errors mean "try again"."""

from __future__ import annotations

import psycopg2
import pytest

from db.engine import is_transient


class ServerError(Exception):
    """An error carrying a SQLSTATE, as psycopg2's server errors do."""

    def __init__(self, pgcode: str | None) -> None:
        super().__init__(f"SQLSTATE {pgcode}")
        self.pgcode = pgcode


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        pytest.param(
            psycopg2.OperationalError("server closed"), True, id="operational"
        ),
        pytest.param(
            psycopg2.InterfaceError("connection already closed"), True, id="interface"
        ),
        pytest.param(ServerError("08006"), True, id="connection-failure"),
        pytest.param(ServerError("53300"), True, id="too-many-connections"),
        pytest.param(ServerError("57P01"), True, id="admin-shutdown"),
        pytest.param(ServerError("40001"), True, id="serialization-failure"),
        pytest.param(ServerError("40P01"), True, id="deadlock"),
        pytest.param(ServerError("23505"), False, id="unique-violation"),
        pytest.param(ServerError("22P05"), False, id="untranslatable-character"),
        pytest.param(ServerError("42P01"), False, id="undefined-table"),
        pytest.param(ServerError(None), False, id="no-sqlstate"),
        pytest.param(ValueError("bug"), False, id="not-a-database-error"),
    ],
)
def test_transient_database_errors_are_recognised(error, transient):
    """Connection, resource, shutdown and serialization errors are transient; data
    and schema errors are not."""
    assert is_transient(error) is transient
