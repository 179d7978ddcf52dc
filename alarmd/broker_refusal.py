"""Recognising a Kafka broker that refuses alarmd's credentials or does not
prove itself with a certificate alarmd trusts: a setting to fix, which no
retry cures, unlike a broker that is merely away."""

from __future__ import annotations

from confluent_kafka import KafkaError

from alarmd import logs
from alarmd.errors import ConfigurationError

log = logs.get(__name__)

# What to check, per librdkafka error that means "refused".
ADVICE = {
    KafkaError._AUTHENTICATION: (
        "check ALARMD_KAFKA_SASL_USERNAME, ALARMD_KAFKA_SASL_PASSWORD and "
        "ALARMD_KAFKA_SASL_MECHANISM (or the sasl.* entries of ALARMD_KAFKA_PROPERTIES)"
    ),
    KafkaError._SSL: (
        "check ALARMD_KAFKA_SSL_CA_LOCATION (or ssl.ca.location in "
        "ALARMD_KAFKA_PROPERTIES) and that the broker's certificate names the host "
        "in ALARMD_KAFKA_BOOTSTRAP_SERVERS"
    ),
}


def is_refusal(error: KafkaError) -> bool:
    """True when the error says the settings are wrong, not that the broker is
    away: refused credentials, or a certificate that does not verify. Other
    _SSL failures, such as a handshake a restarting broker cuts short, are
    retried like any disconnect."""
    if error.code() == KafkaError._AUTHENTICATION:
        return True
    return error.code() == KafkaError._SSL and "certificate" in error.str().lower()


class RefusalWatch:
    """Remembers the first refusal a librdkafka client reports.

    `notice` is the client's error callback (or part of it) and runs on the
    thread that polls; `raise_if_refused` turns the refusal into a
    ConfigurationError for the caller to exit with.
    """

    def __init__(self) -> None:
        self._sentence: str | None = None

    def notice(self, error: KafkaError) -> bool:
        """True when the error is a refusal; the first one is logged once."""
        if not is_refusal(error):
            return False
        if self._sentence is None:
            log.error("kafka_connection_refused", error=error.str())
            self._sentence = (
                f"the Kafka broker refused the connection: {error.str()}; "
                f"{ADVICE[error.code()]}"
            )
        return True

    def raise_if_refused(self) -> None:
        if self._sentence is not None:
            raise ConfigurationError(self._sentence)
