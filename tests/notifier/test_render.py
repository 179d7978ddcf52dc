"""Rendering a digest into MIME: no services."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from alarmd.errors import ConfigurationError
from notifier.errors import FailureReason, PermanentFailure
from notifier.grouping import Grouper
from notifier.render import Renderer, clean_header, header_address, stable_message_id

from .test_grouping import received


def digest_of(*items):
    grouper = Grouper(["customer", "alarmText"], 0.0, 0.0)
    for item in items:
        grouper.add(item, now=0.0)
    [digest] = grouper.due(now=0.0)
    return digest


def renderer(**overrides) -> Renderer:
    args = dict(template_dir=None, sender="alarmd <alarmd@example.com>",
                message_id_domain="test.local", max_rows=50, field_max_chars=120)  # fmt: skip
    args.update(overrides)
    return Renderer(**args)


def test_message_id_is_stable_for_the_same_key_and_requests():
    digest = digest_of(received(1), received(2))
    again = digest_of(received(2), received(1))

    first = renderer().render(digest, ["noc@example.com"])
    second = renderer().render(again, ["noc@example.com"])

    assert first.message_id == second.message_id
    assert first.message_id == stable_message_id(
        digest.key_text, ["id-2", "id-1"], "test.local"
    )


def test_email_is_multipart_alternative_with_text_then_html():
    email = renderer().render(digest_of(received(1)), ["NOC <noc@example.com>"])

    message = BytesParser(policy=policy.default).parsebytes(email.raw)

    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["To"] == "NOC <noc@example.com>"


@pytest.mark.parametrize(
    "value", ["noc@example.com\r\nBcc: x@example.com", "not-an-address", ""]
)
def test_bad_recipient_is_a_permanent_invalid_address(value):
    with pytest.raises(PermanentFailure) as caught:
        header_address(value)
    assert caught.value.reason is FailureReason.INVALID_ADDRESS


def test_clean_header_removes_control_characters():
    assert clean_header("a\r\nb\x00c\td\u2028e") == "a b c d e"


def test_operator_template_wins_over_the_builtin(tmp_path):
    (tmp_path / "subject.txt.j2").write_text("OPS {{ total }} {{ first.alarm_text }}")

    email = renderer(template_dir=tmp_path).render(
        digest_of(received(1)), ["noc@example.com"]
    )

    assert email.subject == "OPS 1 BCF FAULTY"


def test_template_that_does_not_parse_stops_start_up(tmp_path):
    (tmp_path / "body.html.j2").write_text("{% for %}")

    with pytest.raises(ConfigurationError, match="body.html.j2"):
        renderer(template_dir=tmp_path)


def test_template_error_at_render_is_permanent(tmp_path):
    (tmp_path / "subject.txt.j2").write_text("{{ no_such_value }}")

    with pytest.raises(PermanentFailure) as caught:
        renderer(template_dir=tmp_path).render(digest_of(received(1)), ["a@b.c"])

    assert caught.value.reason is FailureReason.TEMPLATE_ERROR


@pytest.mark.parametrize(
    "text",
    [
        "=?utf-8?q?x=0D=0ABcc:_victim@example.com?=",
        "=?utf-8?b?eA0KUmVwbHktVG86IGF0dGFja2VyQGV2aWwuZXhhbXBsZQ0KDQpDbGljaw==?=",
    ],
)
def test_an_encoded_word_in_alarm_text_cannot_become_a_header(text):
    """RFC 2047 words in alarm text are kept as text: the email package would
    otherwise decode them into CR/LF and a header of the sender's choosing."""
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    message = EmailMessage(policy=policy.SMTP)
    message["Subject"] = clean_header(text)
    message["To"] = "noc@example.com"
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert set(parsed.keys()) == {"Subject", "To"}
    assert "\n" not in parsed["Subject"] and "\r" not in parsed["Subject"]
