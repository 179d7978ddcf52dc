"""consumer/membership.py: a broker that refuses the credentials or the
certificate ends consumption with a ConfigurationError, other errors do not."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from alarmd.errors import ConfigurationError
from alarmd.health import Health
from consumer.membership import GroupMember

SCRAM_REFUSAL = (
    "sasl_ssl://kafka:9094/bootstrap: SASL authentication error: Authentication "
    "failed during authentication due to invalid credentials with SASL mechanism "
    "SCRAM-SHA-512"
)
CERTIFICATE_REFUSAL = (
    "sasl_ssl://kafka:9094/bootstrap: SSL handshake failed: error:0A000086:SSL "
    "routines::certificate verify failed: broker certificate could not be verified"
)


@pytest.fixture
def member():
    """A member whose consumer never reaches a broker: nothing listens there."""
    member = GroupMember(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "unit", "log_level": 0},
        Health(lambda: True),
        on_fatal=lambda: None,
    )
    yield member
    member.close()


@pytest.mark.parametrize(
    ("code", "text", "setting"),
    [
        (KafkaError._AUTHENTICATION, SCRAM_REFUSAL, "ALARMD_KAFKA_SASL_PASSWORD"),
        (KafkaError._SSL, CERTIFICATE_REFUSAL, "ALARMD_KAFKA_SSL_CA_LOCATION"),
    ],
    ids=["refused credentials", "unverified certificate"],
)
def test_refused_connection_ends_consumption_with_the_setting_to_fix(
    member, code, text, setting
):
    """The librdkafka error arrives through the error callback; the next
    consume raises a ConfigurationError naming the error and the setting."""
    member._on_kafka_error(KafkaError(code, text))

    with pytest.raises(ConfigurationError) as raised:
        member.consume(1, 0.01)

    assert text in str(raised.value) and setting in str(raised.value)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (KafkaError._TRANSPORT, "kafka:9094/bootstrap: Connection refused"),
        (KafkaError._SSL, "kafka:9094/bootstrap: SSL handshake failed: Disconnected"),
        (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
    ],
    ids=["transport", "handshake cut short", "all brokers down"],
)
def test_an_unavailable_broker_is_not_a_refusal(member, code, text):
    """A broker that is away, or cuts a handshake short, is waited for."""
    member._on_kafka_error(KafkaError(code, text))

    assert member.consume(1, 0.01) == []
