"""Failures an operator can fix end in one sentence that names what to change."""

from __future__ import annotations

import errno

import psycopg2
import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError

from alarmd.cli import _explain, main
from alarmd.settings import Settings, describe_settings_error, load_settings

SECRET = "s3cr3t-pw"


def _settings() -> Settings:
    return Settings(
        database_url=f"postgresql+psycopg2://alarmd:{SECRET}@db:5432/alarmd",
        kafka_bootstrap_servers="broker-1:9092",
    )


def test_a_non_json_list_setting_names_its_variable(monkeypatch):
    """A plain string where a JSON list belongs names ALARMD_EMAIL_ALARM_TYPES."""
    monkeypatch.setenv("ALARMD_EMAIL_ALARM_TYPES", "BCF FAULTY")
    with pytest.raises(Exception) as caught:
        load_settings()
    sentence = describe_settings_error(caught.value)
    assert sentence.startswith("ALARMD_EMAIL_ALARM_TYPES must be JSON")


def test_a_value_of_the_wrong_type_names_its_variable(monkeypatch):
    """A validation error is reported per variable, not per model field."""
    monkeypatch.setenv("ALARMD_INPUT_ENCODING", "avro")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert describe_settings_error(caught.value).startswith("ALARMD_INPUT_ENCODING:")


def test_bad_settings_exit_2_with_a_sentence(monkeypatch, capsys):
    """Any command stops with exit 2 before doing anything."""
    monkeypatch.setenv("ALARMD_BATCH_MAX_MESSAGES", "many")
    assert main(["config"]) == 2
    assert "ALARMD_BATCH_MAX_MESSAGES" in capsys.readouterr().err


def test_an_unreachable_database_is_explained_without_its_password():
    """The sentence names the URL, password masked, and the variable to check."""
    error = psycopg2.OperationalError(
        'connection to server at "db", port 5432 failed: Connection refused\n'
        "\tIs the server running on that host?"
    )
    sentence = _explain(error, _settings())
    assert sentence is not None
    assert "Connection refused" in sentence and "ALARMD_DATABASE_URL" in sentence
    assert SECRET not in sentence


def test_missing_tables_point_at_alarmd_migrate():
    """An unmigrated database tells the operator to run the migration."""
    try:
        raise psycopg2.errors.lookup("42P01")('relation "outbox" does not exist')
    except psycopg2.Error as error:
        sentence = _explain(error, _settings())
    assert sentence is not None and "alarmd migrate" in sentence


def test_a_kafka_failure_names_the_bootstrap_servers():
    error = KafkaException(
        KafkaError(KafkaError._TRANSPORT, "Broker transport failure")
    )
    sentence = _explain(error, _settings())
    assert sentence is not None
    assert "broker-1:9092" in sentence and "ALARMD_KAFKA_BOOTSTRAP_SERVERS" in sentence


def test_a_taken_http_port_names_the_port_setting():
    error = OSError(errno.EADDRINUSE, "Address already in use")
    sentence = _explain(error, _settings())
    assert sentence is not None and "ALARMD_HTTP_PORT" in sentence


def test_an_unexpected_error_is_not_explained_away():
    """A bug keeps its traceback: nothing is turned into a sentence."""
    assert _explain(ZeroDivisionError("division by zero"), _settings()) is None


@pytest.mark.parametrize("value", ["-5", "0", "soon"])
@pytest.mark.parametrize("command", ["run", "notify"])
def test_an_idle_exit_that_is_not_a_positive_duration_is_refused(
    capsys, command, value
):
    """--exit-when-idle -5 would never fire; argparse refuses it with exit 2."""
    with pytest.raises(SystemExit) as exited:
        main([command, f"--exit-when-idle={value}"])

    assert exited.value.code == 2
    assert "not a number of seconds above 0" in capsys.readouterr().err
