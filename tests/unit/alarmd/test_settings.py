"""alarmd/settings.py: ALARMD_* variables into one frozen settings object, and
secrets that never show."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from alarmd.errors import ConfigurationError
from alarmd.settings import Settings, load_settings, mask_url

DATABASE_PASSWORD = "Db-pa55word-4711"
KAFKA_SECRET = "sasl-S3cret-0815"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No ALARMD_* variable of the machine running the tests leaks in."""
    for name in [n for n in os.environ if n.startswith("ALARMD_")]:
        monkeypatch.delenv(name)


def test_email_alarm_types_are_a_json_list(monkeypatch):
    """ALARMD_EMAIL_ALARM_TYPES is read as a JSON list of alarmText values."""
    monkeypatch.setenv(
        "ALARMD_EMAIL_ALARM_TYPES", '["BCF FAULTY", "Mains Input Out of Range"]'
    )

    assert Settings().email_alarm_types == ["BCF FAULTY", "Mains Input Out of Range"]


def test_email_alarm_types_that_are_not_json_are_refused(monkeypatch):
    """A bare alarmText is not a JSON list; start-up fails with a ValueError, which
    the command line reports as unusable settings."""
    monkeypatch.setenv("ALARMD_EMAIL_ALARM_TYPES", "BCF FAULTY")

    with pytest.raises(ValueError, match="email_alarm_types"):
        Settings()


def test_kafka_properties_are_a_json_object_of_strings(monkeypatch):
    """ALARMD_KAFKA_PROPERTIES is a JSON object; values become the strings
    librdkafka takes."""
    monkeypatch.setenv(
        "ALARMD_KAFKA_PROPERTIES",
        '{"security.protocol": "SASL_SSL", "queue.buffering.max.ms": 5}',
    )

    assert Settings().kafka_properties == {
        "security.protocol": "SASL_SSL",
        "queue.buffering.max.ms": "5",
    }


def test_every_client_gets_bootstrap_servers_and_the_properties(monkeypatch):
    """kafka_common() is the bootstrap servers plus every extra property."""
    monkeypatch.setenv("ALARMD_KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9093,kafka-2:9093")
    monkeypatch.setenv("ALARMD_KAFKA_PROPERTIES", '{"client.rack": "eu-1a"}')

    assert Settings().kafka_common() == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093",
        "client.rack": "eu-1a",
    }


def test_kafka_properties_that_are_not_json_are_refused(monkeypatch):
    """A properties value that is not JSON stops start-up."""
    monkeypatch.setenv("ALARMD_KAFKA_PROPERTIES", "security.protocol=SASL_SSL")

    with pytest.raises(ValueError):
        Settings()


def _secret_settings(monkeypatch) -> Settings:
    monkeypatch.setenv(
        "ALARMD_DATABASE_URL",
        f"postgresql+psycopg2://alarmd:{DATABASE_PASSWORD}@db.internal:5432/alarmd",
    )
    monkeypatch.setenv(
        "ALARMD_KAFKA_PROPERTIES",
        json.dumps(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "alarmd",
                "sasl.password": KAFKA_SECRET,
                "ssl.key.password": KAFKA_SECRET + "-key",
                "ssl.keystore.password": KAFKA_SECRET + "-keystore",
                "sasl.oauthbearer.client.secret": KAFKA_SECRET + "-oauth",
                "ssl.key.location": "/etc/alarmd/kafka-tls/tls.key",
                "ssl.keystore.location": "/etc/alarmd/kafka-tls/client.p12",
            }
        ),
    )
    return Settings()


def test_masked_hides_the_database_password(monkeypatch):
    """The URL is shown with user and host, its password masked."""
    masked = _secret_settings(monkeypatch).masked()

    assert masked["database_url"].startswith("postgresql+psycopg2://alarmd:")
    assert masked["database_url"].endswith("@db.internal:5432/alarmd")
    assert DATABASE_PASSWORD not in masked["database_url"]


def test_masked_hides_secret_kafka_properties_and_shows_the_rest(monkeypatch):
    """Properties that hold a secret are masked; the others, paths to key files
    included, are shown as set."""
    properties = _secret_settings(monkeypatch).masked()["kafka_properties"]

    shown = {k: v for k, v in properties.items() if v != "********"}
    assert shown == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alarmd",
        "ssl.key.location": "/etc/alarmd/kafka-tls/tls.key",
        "ssl.keystore.location": "/etc/alarmd/kafka-tls/client.p12",
    }
    assert set(properties) - set(shown) == {
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
    }


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("sasl.password", True),
        ("ssl.key.password", True),
        ("ssl.keystore.password", True),
        ("ssl.key.pem", True),
        ("sasl.oauthbearer.client.secret", True),
        ("sasl.oauthbearer.config", True),
        ("ssl.key.location", False),
        ("ssl.keystore.location", False),
        ("ssl.certificate.location", False),
        ("sasl.kerberos.keytab", False),
        ("client.id", False),
        ("api_key", True),
        ("apikey", True),
        ("sslpassword", True),
        ("sslkey", False),
        ("sslrootcert", False),
    ],
)
def test_secret_properties_are_known_by_what_they_hold(name, secret):
    """A property is a secret because of what it holds, not because its name
    contains "key": a key file's path is shown, a key's password is not."""
    from alarmd.settings import is_secret_property

    assert is_secret_property(name) is secret


def test_a_url_with_credentials_in_a_kafka_property_is_masked(monkeypatch):
    """A property value that is a URL with user:password keeps its host and
    loses the password."""
    monkeypatch.setenv(
        "ALARMD_KAFKA_PROPERTIES",
        json.dumps({"https.proxy": f"http://proxy:{KAFKA_SECRET}@proxy.internal:3128"}),
    )

    shown = Settings().masked()["kafka_properties"]["https.proxy"]

    assert KAFKA_SECRET not in shown and "proxy.internal:3128" in shown


def _typed_kafka_settings(monkeypatch, tmp_path) -> Settings:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    for name, value in {
        "ALARMD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ALARMD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ALARMD_KAFKA_SASL_USERNAME": "alarmd",
        "ALARMD_KAFKA_SASL_PASSWORD": KAFKA_SECRET,
        "ALARMD_KAFKA_SSL_CA_LOCATION": str(ca),
    }.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_typed_kafka_security_settings_reach_every_client(monkeypatch, tmp_path):
    """ALARMD_KAFKA_SECURITY_PROTOCOL, _SASL_* and _SSL_CA_LOCATION become the
    librdkafka properties of the same meaning."""
    common = _typed_kafka_settings(monkeypatch, tmp_path).kafka_common()

    assert {k: v for k, v in common.items() if k != "bootstrap.servers"} == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alarmd",
        "sasl.password": KAFKA_SECRET,
        "ssl.ca.location": str(tmp_path / "ca.crt"),
    }


def test_typed_sasl_password_is_masked_and_kept_out_of_repr(monkeypatch, tmp_path):
    """The SASL password is a secret type: `alarmd config` and repr() hide it."""
    settings = _typed_kafka_settings(monkeypatch, tmp_path)

    masked = settings.masked()

    assert masked["kafka_sasl_password"] == "********"
    assert masked["kafka_sasl_username"] == "alarmd"
    assert KAFKA_SECRET not in json.dumps(masked) + repr(settings) + str(settings)


def test_a_property_set_both_typed_and_in_kafka_properties_is_refused(
    monkeypatch, tmp_path
):
    """Two settings for one property would leave the winner to chance; start-up
    names both."""
    monkeypatch.setenv("ALARMD_KAFKA_PROPERTIES", '{"sasl.password": "other"}')

    with pytest.raises(ValidationError, match="ALARMD_KAFKA_SASL_PASSWORD and sasl"):
        _typed_kafka_settings(monkeypatch, tmp_path)


def test_a_sasl_username_without_a_password_is_refused(monkeypatch):
    """A username alone cannot log in; start-up says both are needed."""
    monkeypatch.setenv("ALARMD_KAFKA_SASL_USERNAME", "alarmd")

    with pytest.raises(ValidationError, match="set both or neither"):
        Settings()


def test_a_ca_location_that_is_not_a_file_is_refused(monkeypatch, tmp_path):
    """A CA path that does not exist stops start-up with the variable's name."""
    monkeypatch.setenv("ALARMD_KAFKA_SSL_CA_LOCATION", str(tmp_path / "missing.crt"))

    with pytest.raises(ValidationError, match="kafka_ssl_ca_location"):
        Settings()


def test_no_secret_appears_in_masked_output(monkeypatch):
    """Neither password is anywhere in what `alarmd config` prints."""
    printed = json.dumps(_secret_settings(monkeypatch).masked())

    assert DATABASE_PASSWORD not in printed
    assert KAFKA_SECRET not in printed


def test_no_secret_appears_in_repr_or_str(monkeypatch):
    """A settings object that ends up in a log line or traceback shows no secret."""
    settings = _secret_settings(monkeypatch)

    for text in (repr(settings), str(settings)):
        assert DATABASE_PASSWORD not in text
        assert KAFKA_SECRET not in text


def test_secret_stays_usable_for_the_connection(monkeypatch):
    """Masking is for showing only: the engine still gets the real URL."""
    settings = _secret_settings(monkeypatch)

    assert DATABASE_PASSWORD in settings.database_url.get_secret_value()
    assert settings.kafka_common()["sasl.password"] == KAFKA_SECRET


def test_unparsable_database_url_is_shown_as_asterisks():
    """A URL SQLAlchemy cannot parse is masked entirely rather than shown."""
    assert mask_url(f"not a url {DATABASE_PASSWORD}") == "********"


def test_settings_are_frozen():
    """Settings are built once; changing one afterwards is refused."""
    settings = Settings()

    with pytest.raises(ValidationError):
        settings.group_id = "other"


def test_unknown_input_encoding_is_refused(monkeypatch):
    """ALARMD_INPUT_ENCODING accepts only the three framings."""
    monkeypatch.setenv("ALARMD_INPUT_ENCODING", "json")

    with pytest.raises(ValidationError, match="input_encoding"):
        Settings()


def test_config_file_supplies_what_the_environment_does_not_set(monkeypatch, tmp_path):
    """A dotenv file named by ALARMD_CONFIG_FILE fills in; the environment wins."""
    config = tmp_path / "alarmd.env"
    config.write_text(
        "ALARMD_GROUP_ID=alarmd-from-file\nALARMD_INPUT_TOPIC=alarms-from-file\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ALARMD_CONFIG_FILE", str(config))
    monkeypatch.setenv("ALARMD_INPUT_TOPIC", "alarms-from-env")

    settings = load_settings()

    assert (settings.group_id, settings.input_topic) == (
        "alarmd-from-file",
        "alarms-from-env",
    )


def test_config_file_that_does_not_exist_is_a_configuration_error(
    monkeypatch, tmp_path
):
    """Naming a config file that is not there fails start-up with the path."""
    missing = tmp_path / "nowhere.env"
    monkeypatch.setenv("ALARMD_CONFIG_FILE", str(missing))

    with pytest.raises(ConfigurationError, match="nowhere.env"):
        load_settings()


def test_topics_named_in_settings_are_all_listed(monkeypatch):
    """all_topics() is the input, the three downstream topics and the DLQ."""
    monkeypatch.setenv("ALARMD_NOTIFICATION_TOPIC", "mail")

    assert Settings().all_topics() == [
        "alarms",
        "predictive",
        "iac1",
        "mail",
        "alarms.dlq",
    ]


def test_sidecar_topics_are_its_dead_letter_topic():
    """`alarmd topics create` and `status` add the sidecar's notification.dlq."""
    assert Settings().sidecar_topics() == ["notification.dlq"]


def test_webhook_urls_are_masked(monkeypatch):
    monkeypatch.setenv("ALARMD_NOTIFY_WEBHOOKS", '{"a": "https://h/t0ken"}')
    shown = Settings().masked()
    assert shown["notify_webhooks"] == {"a": "********"}
    assert "t0ken" not in repr(Settings())


def test_a_password_in_the_url_query_is_masked_too():
    """psycopg2 accepts ?password=; that spelling is hidden like user:password."""
    from alarmd.settings import mask_url

    shown = mask_url("postgresql+psycopg2://alarmd@db/alarmd?password=s3cr3tPW")
    assert "s3cr3tPW" not in shown and shown.startswith(
        "postgresql+psycopg2://alarmd@db"
    )


def test_max_event_bytes_above_the_input_topic_limit_is_refused(monkeypatch):
    """ALARMD_MAX_EVENT_BYTES cannot exceed what the input topic accepts (8 MiB),
    since no larger value could ever reach the daemon; the error names it."""
    from alarmd.settings import INPUT_TOPIC_MAX_MESSAGE_BYTES, describe_settings_error

    monkeypatch.setenv("ALARMD_MAX_EVENT_BYTES", str(INPUT_TOPIC_MAX_MESSAGE_BYTES + 1))

    with pytest.raises(ValueError) as caught:
        load_settings()

    assert describe_settings_error(caught.value).startswith("ALARMD_MAX_EVENT_BYTES:")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg2://alarmd:{DATABASE_PASSWORD}@db:notaport/alarmd",
        f"not a url {DATABASE_PASSWORD}",
        f"postgresql+psycopg2://alarmd:Pg@{DATABASE_PASSWORD}@db:5432/alarmd",
        f"postgresql+psycopg2://alarmd@db:5432/alarmd?password=x@{DATABASE_PASSWORD}",
    ],
    ids=["port not a number", "no scheme", "@ in the password", "@ in ?password="],
)
def test_database_url_that_does_not_parse_is_refused_without_showing_it(
    monkeypatch, url
):
    """A URL SQLAlchemy cannot parse stops start-up with a sentence naming the
    variable, and the sentence does not quote the URL or its password."""
    from alarmd.settings import describe_settings_error

    monkeypatch.setenv("ALARMD_DATABASE_URL", url)

    with pytest.raises(ValidationError) as raised:
        Settings()

    sentence = describe_settings_error(raised.value)
    assert sentence.startswith("ALARMD_DATABASE_URL: ")
    assert DATABASE_PASSWORD not in sentence


@pytest.mark.parametrize(
    "variables",
    [
        {"ALARMD_STALL_DEADLINE_S": "30", "ALARMD_PUBLISH_TIMEOUT_S": "30"},
        {"ALARMD_STALL_DEADLINE_S": "20", "ALARMD_SMTP_TIMEOUT_S": "25"},
    ],
    ids=["publish-timeout", "smtp-timeout"],
)
def test_a_stall_deadline_within_a_blocking_wait_is_refused(monkeypatch, variables):
    """A stall deadline no longer than a publish or an SMTP wait would restart a
    healthy process; start-up refuses it, naming the variables."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match="ALARMD_STALL_DEADLINE_S"):
        Settings()


def test_the_default_stall_deadline_exceeds_the_default_waits():
    """The defaults start: the deadline is above every blocking wait."""
    settings = Settings()

    assert settings.stall_deadline_s > max(
        settings.publish_timeout_s, settings.smtp_timeout_s
    )


def test_tls_paths_in_the_database_url_are_shown_and_its_passwords_masked():
    """libpq's sslrootcert and sslkey are paths and stay readable; sslpassword
    and password are masked."""
    shown = mask_url(
        "postgresql+psycopg2://alarmd:pw-in-userinfo@db/alarmd?sslmode=verify-full"
        "&sslrootcert=/etc/alarmd/db-tls/ca.crt&sslkey=/etc/alarmd/db-tls/tls.key"
        "&sslpassword=pw-of-key&password=pw-in-query"
    )

    assert "pw-" not in shown
    assert "sslrootcert=/etc/alarmd/db-tls/ca.crt" in shown
    assert "sslkey=/etc/alarmd/db-tls/tls.key" in shown


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"ALARMD_LOG_LEVEL": "LOUD"}, "ALARMD_LOG_LEVEL"),
        ({"ALARMD_NOTIFY_GROUP_BY": '["nosuchfield"]'}, "ALARMD_NOTIFY_GROUP_BY"),
        ({"ALARMD_NOTIFY_GROUP_BY": "[]"}, "ALARMD_NOTIFY_GROUP_BY"),
        ({"ALARMD_DATABASE_URL": "mysql://x@127.0.0.1/z"}, "ALARMD_DATABASE_URL"),
        ({"ALARMD_RETRY_INITIAL_S": "60", "ALARMD_RETRY_MAX_S": "30"}, "ALARMD_RETRY_INITIAL_S"),
        ({"ALARMD_KAFKA_PROPERTIES": '{"bootstrap.servers": "x:1"}'}, "ALARMD_KAFKA_BOOTSTRAP_SERVERS"),
        ({"ALARMD_KAFKA_PROPERTIES": '{"group.id": "other"}'}, "ALARMD_GROUP_ID"),
    ],
    ids=["log level", "grouping field", "no grouping field", "not postgresql",
         "retry bounds", "bootstrap in properties", "group in properties"],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_naming_the_variable(
    monkeypatch, variables, named
):
    """Each of these would fail later, or be silently overridden; start-up
    refuses it with a sentence that names the variable to fix."""
    from alarmd.settings import describe_settings_error

    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as raised:
        Settings()

    assert named in describe_settings_error(raised.value)


def test_the_log_level_is_read_in_any_case(monkeypatch):
    monkeypatch.setenv("ALARMD_LOG_LEVEL", "debug")

    assert Settings().log_level == "DEBUG"


@pytest.mark.parametrize("timeout_s", ["25", "100000"])
def test_a_batch_timeout_a_stop_could_not_wait_for_is_refused(monkeypatch, timeout_s):
    """A stop is seen between consume calls: a batch timeout at or past the
    shutdown deadline (25 s by default) would run every stop into the
    watchdog, so start-up refuses it, naming both variables."""
    monkeypatch.setenv("ALARMD_BATCH_TIMEOUT_S", timeout_s)

    with pytest.raises(
        ValidationError, match="ALARMD_BATCH_TIMEOUT_S.*ALARMD_SHUTDOWN"
    ):
        Settings()
