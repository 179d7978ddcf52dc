"""The SMTP transaction against a real server: a recipient deferred with a 4xx
holds the whole message back, so the retry reaches every recipient once."""

from __future__ import annotations

import pytest

from alarmd.errors import TransientError
from notifier.smtp import SmtpSender

from .smtp_server import DEFERRED_LOCAL_PART

RAW = b"Subject: test\r\nMessage-ID: <m1@alarmd.local>\r\n\r\nbody\r\n"


def _sender(smtp) -> SmtpSender:
    s = smtp.settings()
    return SmtpSender(
        s["smtp_host"], s["smtp_port"], s["smtp_security"], s["smtp_username"],
        s["smtp_password"], s["smtp_ca_file"], s["smtp_timeout_s"],
    )  # fmt: skip


def test_a_deferred_recipient_sends_nothing_until_the_retry_reaches_everyone(smtp):
    recipients = ["noc@example.com", f"{DEFERRED_LOCAL_PART}@example.com"]
    smtp.handler.defers = 1
    sender = _sender(smtp)

    with pytest.raises(TransientError, match="450"):
        sender.send("alarmd@example.com", recipients, RAW)
    assert smtp.handler.messages() == []

    assert sender.send("alarmd@example.com", recipients, RAW) == {}
    (received,) = smtp.handler.messages()
    assert sorted(received.recipients) == sorted(recipients)
