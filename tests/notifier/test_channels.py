"""Routes and the webhook channel end to end, and a disconnect mid-DATA: Kafka
`notification` in, a real SMTP server and a real local HTTP server out."""

from __future__ import annotations

import pytest

from .webhook_server import ScriptedWebhookServer


@pytest.fixture
def webhook():
    server = ScriptedWebhookServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _sent_ids(stack) -> list[str]:
    rows = stack.query(
        "SELECT r.event_id FROM notification_requests_sent r "
        "JOIN notification_emails e ON e.id = r.email_id WHERE e.sent_at IS NOT NULL"
    )
    return sorted(row[0] for row in rows)


def test_disconnect_mid_data_is_retried_and_sent_once(stack, smtp):
    """The server drops the connection while the message body is arriving:
    transient, retried, and the server ends up with the message once."""
    smtp.handler.disconnects_mid_data = 1
    ids = stack.produce([stack.request() for _ in range(2)])

    assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0

    assert smtp.handler.dropped_mid_data == 1
    assert len(smtp.handler.messages()) == 1
    assert _sent_ids(stack) == sorted(ids)


def test_webhook_route_gets_the_digest_as_json_after_a_5xx(stack, smtp, webhook):
    """A route with a webhook gets the digest posted as JSON, keyed by the
    email's Message-ID; a 503 first is transient and retried; other customers'
    digests post nothing."""
    webhook.statuses = [503]
    settings = stack.settings(
        **smtp.settings(), notify_webhooks={"customer-w": webhook.url}
    )
    ids = stack.produce([stack.request(customer="customer-w") for _ in range(3)])
    stack.produce([stack.request(customer="customer-a")])

    assert stack.run_until_idle(settings) == 0

    refused, accepted = webhook.received()
    assert (refused.status, accepted.status) == (503, 200)
    assert accepted.body == refused.body
    assert accepted.body["group"] == {"customer": "customer-w",
                                      "alarmText": "BCF FAULTY"}  # fmt: skip
    assert accepted.body["total"] == 3
    assert len(accepted.body["alarms"]) == 3
    emails = {m.message["Message-ID"]: m for m in smtp.handler.messages()}
    assert len(emails) == 2
    assert accepted.headers["Idempotency-Key"] == accepted.body["message_id"]
    assert accepted.body["message_id"] in emails
    assert set(ids) <= set(_sent_ids(stack))


def test_webhook_4xx_dead_letters_the_digest_and_sends_no_email(stack, smtp, webhook):
    """A 4xx from the webhook is permanent: the digest's requests go to
    notification.dlq as webhook_refused, with an error row each, unsent."""
    webhook.statuses = [400]
    settings = stack.settings(
        **smtp.settings(), notify_webhooks={"customer-w/BCF FAULTY": webhook.url}
    )
    bad = stack.produce([stack.request(customer="customer-w") for _ in range(2)])

    assert stack.run_until_idle(settings) == 0

    assert len(webhook.received()) == 1
    assert smtp.handler.messages() == []
    letters = stack.dead_letters(expected=2)
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        assert headers["alarmd-error-reason"] == "webhook_refused"
        assert "400" in headers["alarmd-error-detail"]
    errors = stack.query("SELECT event_id, reason FROM notification_errors")
    assert sorted(errors) == sorted((i, "webhook_refused") for i in bad)


def test_recipients_and_templates_follow_the_route(stack, smtp, tmp_path):
    """Per group key and per customer: the route's recipients and its own
    subject template; files it lacks, and unrouted groups, fall back to the
    global override, then templates/."""
    route_dir = tmp_path / "route"
    route_dir.mkdir()
    (route_dir / "subject.txt.j2").write_text("ROUTE {{ customer }}")
    global_dir = tmp_path / "global"
    global_dir.mkdir()
    (global_dir / "subject.txt.j2").write_text("GLOBAL {{ customer }}")
    (global_dir / "body.txt.j2").write_text("global text for {{ total }}")
    settings = stack.settings(
        **smtp.settings(),
        notify_template_dir=global_dir,
        notify_route_template_dirs={"customer-r/GSM Cell out of Service": route_dir},
        notify_routes={
            "customer-r/GSM Cell out of Service": ["r-key@example.com"],
            "customer-r": ["r-customer@example.com"],
        },
    )
    stack.produce([stack.request(customer="customer-r",
                                 alarmText="GSM Cell out of Service")])  # fmt: skip
    stack.produce([stack.request(customer="customer-r")])
    stack.produce([stack.request(customer="customer-a")])

    assert stack.run_until_idle(settings) == 0

    by_subject = {m.message["Subject"]: m for m in smtp.handler.messages()}
    assert set(by_subject) == {"ROUTE customer-r", "GLOBAL customer-r",
                               "GLOBAL customer-a"}  # fmt: skip
    assert by_subject["ROUTE customer-r"].recipients == ["r-key@example.com"]
    assert by_subject["GLOBAL customer-r"].recipients == ["r-customer@example.com"]
    assert by_subject["GLOBAL customer-a"].recipients == ["noc@example.com"]
    routed = by_subject["ROUTE customer-r"].message
    assert routed.get_body(("plain",)).get_content().strip() == "global text for 1"
    assert "<table" in routed.get_body(("html",)).get_content()
