"""db/engine.py: which database errors mean "try again"."""

from __future__ import annotations

import psycopg2
import pytest

from db.engine import is_misconfigured, is_row_refusal, is_transient


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


def _server_error(sqlstate: str, text: str) -> psycopg2.Error:
    """psycopg2's own class for that SQLSTATE, carrying the code as the server
    would set it."""
    cls = psycopg2.errors.lookup(sqlstate)
    carrying = type(cls.__name__, (cls,), {"pgcode": sqlstate})
    return carrying(text)


def test_a_permanent_server_error_filed_as_operational_is_not_transient():
    """54000 (an index row too large) is an OperationalError in psycopg2, but no
    retry can store that row: it is a row refusal, not an outage."""
    error = _server_error("54000", "index row size 4016 exceeds maximum 2704")
    assert isinstance(error, psycopg2.OperationalError)
    assert not is_transient(error)
    assert is_row_refusal(error)


def test_a_connection_error_without_sqlstate_is_transient():
    assert is_transient(psycopg2.OperationalError("connection refused"))
    assert not is_row_refusal(psycopg2.OperationalError("connection refused"))


def test_a_wrong_database_name_or_password_is_a_misconfiguration():
    assert is_misconfigured(
        psycopg2.OperationalError('FATAL:  database "nosuchdb" does not exist')
    )
    assert is_misconfigured(
        psycopg2.OperationalError('FATAL:  password authentication failed for user "u"')
    )
    assert not is_misconfigured(psycopg2.OperationalError("Connection refused"))
