"""The sidecar end to end: Kafka `notification` in, emails out through a real
SMTP server with STARTTLS and AUTH, records in PostgreSQL."""

from __future__ import annotations

import re
import threading
import time

from confluent_kafka import Producer

from notifier.render import TRUNCATION_MARKER

from .smtp_server import REFUSED_LOCAL_PART

ROW = re.compile(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>")


def _bodies(received):
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return message, text, html


def test_requests_of_one_key_arrive_in_one_email_with_both_bodies(stack, smtp):
    """Three requests of one customer and alarm become one email whose text and
    HTML parts both list them, with the table's columns."""
    ids = stack.produce([stack.request() for _ in range(3)])

    assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0

    [email] = smtp.handler.messages()
    assert email.recipients == ["noc@example.com"]
    message, text, html = _bodies(email)
    assert message["Message-ID"].startswith("<") and message["Date"]
    assert "BCF FAULTY" in message["Subject"] and "and 2 more" in message["Subject"]
    for column in ("TT Number", "Alarm Name", "Node Id", "IAC Token", "Event Time"):
        assert f"<th>{column}</th>" in html
    assert len(ROW.findall(html)) == 3
    assert "customer-a" in html and "RAN-2G" in html
    assert text.count("IAC Token:") == 3
    assert stack.query("SELECT count(*) FROM notification_requests_sent") == [(3,)]
    sent = stack.query("SELECT event_id FROM notification_requests_sent")
    assert {row[0] for row in sent} == set(ids)


def test_group_wait_holds_the_first_email_and_keys_split_emails(stack, smtp):
    """Nothing goes out before group_wait; two keys give two emails."""
    settings = stack.settings(**smtp.settings(), notify_group_wait_s=3.0)
    stack.produce([stack.request(), stack.request(customer="customer-b")])
    worker, thread = stack.start(settings)
    try:
        time.sleep(2.0)
        assert smtp.handler.messages() == []
        deadline = time.monotonic() + 30
        while len(smtp.handler.messages()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.request_stop()
        thread.join(30)
    subjects = sorted(r.message["Subject"] for r in smtp.handler.messages())
    assert len(subjects) == 2
    assert "(customer-a)" in subjects[0] and "(customer-b)" in subjects[1]


def test_group_interval_sends_late_siblings_in_a_second_email(stack, smtp):
    """A request joining an open group after its first email waits for the
    interval and goes out alone, not with the first ones again."""
    settings = stack.settings(
        **smtp.settings(), notify_group_wait_s=0.5, notify_group_interval_s=3.0
    )
    stack.produce([stack.request(), stack.request()])
    worker, thread = stack.start(settings)
    try:
        deadline = time.monotonic() + 30
        while not smtp.handler.messages() and time.monotonic() < deadline:
            time.sleep(0.1)
        first_at = time.monotonic()
        stack.produce([stack.request()])
        while len(smtp.handler.messages()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        second_at = time.monotonic()
    finally:
        worker.request_stop()
        thread.join(30)
    first, second = smtp.handler.messages()
    assert len(ROW.findall(_bodies(first)[2])) == 2
    assert len(ROW.findall(_bodies(second)[2])) == 1
    assert second_at - first_at > 2.0


def test_more_alarms_than_the_limit_end_with_and_n_more(stack, smtp):
    stack.produce([stack.request() for _ in range(5)])

    stack.run_until_idle(
        stack.settings(**smtp.settings(), notify_max_alarms_per_email=2)
    )

    [email] = smtp.handler.messages()
    _, text, html = _bodies(email)
    assert len(ROW.findall(html)) == 2
    assert "and 3 more" in html and "and 3 more" in text
    assert stack.query("SELECT count(*) FROM notification_requests_sent") == [(5,)]


def test_markup_in_alarm_fields_arrives_as_text(stack, smtp):
    """<script> and <img onerror> are escaped in HTML; the text part keeps them."""
    stack.produce([stack.request(alarmText="<script>alert(1)</script>",
                                 nodeName='<img src=x onerror="alert(2)">')])  # fmt: skip

    stack.run_until_idle(stack.settings(**smtp.settings()))

    [email] = smtp.handler.messages()
    _, text, html = _bodies(email)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    assert "<script>alert(1)</script>" in text


def test_cr_lf_in_fields_never_reach_a_header(stack, smtp):
    """An alarm text carrying CR/LF and a Bcc line cannot add a header or a
    recipient; non-ASCII text is encoded and decodes back."""
    stack.produce([stack.request(alarmText="BCF\r\nBcc: victim@example.com\r\nX: y",
                                 customer="Khách hàng ü")])  # fmt: skip

    stack.run_until_idle(stack.settings(**smtp.settings()))

    [email] = smtp.handler.messages()
    message = email.message
    assert email.recipients == ["noc@example.com"]
    assert message["Bcc"] is None and message["X"] is None
    subject = message["Subject"]
    assert "\r" not in subject and "\n" not in subject
    assert "Bcc: victim@example.com" in subject and "Khách hàng ü" in subject
    raw_headers = email.raw.split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii()


def test_long_fields_are_cut_in_the_table_with_a_marker(stack, smtp):
    stack.produce([stack.request(nodeName="n" * 500)])

    stack.run_until_idle(stack.settings(**smtp.settings(), notify_field_max_chars=40))

    [email] = smtp.handler.messages()
    _, _, html = _bodies(email)
    [row] = ROW.findall(html)
    assert row[2].endswith(TRUNCATION_MARKER) and len(row[2]) == 40


def test_server_down_then_back_delays_and_loses_nothing(stack, smtp):
    """With the server stopped the worker retries; once it is back every request
    goes out exactly once."""
    smtp.stop()
    ids = stack.produce([stack.request(customer=f"c{i}") for i in range(4)])
    restart = threading.Timer(4.0, smtp.start)
    restart.start()
    try:
        assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0
    finally:
        restart.join()
    messages = smtp.handler.messages()
    assert len(messages) == 4
    sent = stack.query(
        "SELECT r.event_id FROM notification_requests_sent r "
        "JOIN notification_emails e ON e.id = r.email_id WHERE e.sent_at IS NOT NULL"
    )
    assert sorted(row[0] for row in sent) == sorted(ids)
    assert len({m.message["Message-ID"] for m in messages}) == 4


def test_refused_recipient_sends_requests_to_the_dead_letter_topic(stack, smtp):
    """A 550 to every recipient is permanent: the group's requests go to
    notification.dlq with the reason, an error row each, and other groups go on."""
    settings = stack.settings(
        **smtp.settings(),
        notify_routes={"customer-x": [f"{REFUSED_LOCAL_PART}@example.com"]},
    )
    bad = stack.produce([stack.request(customer="customer-x") for _ in range(2)])
    stack.produce([stack.request()])

    assert stack.run_until_idle(settings) == 0

    assert len(smtp.handler.messages()) == 1
    letters = stack.dead_letters(expected=2)
    assert len(letters) == 2
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        assert headers["alarmd-error-reason"] == "recipient_refused"
        assert "550" in headers["alarmd-error-detail"]
        assert headers["alarmd-source-topic"] == stack.topic
    errors = stack.query("SELECT event_id, reason FROM notification_errors")
    assert sorted(errors) == sorted((i, "recipient_refused") for i in bad)


def test_undecodable_request_is_dead_lettered(stack, smtp):
    stack.produce_raw(b"not avro at all")
    stack.produce([stack.request()])

    assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0

    [letter] = stack.dead_letters(expected=1)
    assert dict(letter.headers())["alarmd-error-reason"] == b"invalid_request"
    assert letter.value() == b"not avro at all"
    assert len(smtp.handler.messages()) == 1


def test_garbage_claiming_a_requests_event_id_does_not_silence_that_request(
    stack, smtp
):
    """An undecodable message is recorded under its own coordinates, never under
    the event id its headers claim: the real request with that id still goes
    out in an email."""
    record = stack.request()
    real = stack._writer.for_email(record, "alarm-event-claimed")
    stack.produce_raw(
        b"not avro at all", headers=[("alarmd-event-id", real.event_id.encode())]
    )
    assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0
    stack.dead_letters(expected=1)

    producer = Producer({"bootstrap.servers": stack.bootstrap})
    producer.produce(real.topic, key=real.key, value=real.payload, headers=real.headers)
    assert producer.flush(30) == 0
    assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0

    assert len(smtp.handler.messages()) == 1
    rows = stack.query("SELECT event_id FROM notification_requests_sent")
    assert [r[0] for r in rows] == [real.event_id]


def test_redelivery_of_the_whole_topic_sends_nothing_twice(stack, smtp):
    """Each request published twice, then the whole topic read again by a new
    group: every request is in exactly one email."""
    ids = stack.produce([stack.request(customer=f"c{i % 3}") for i in range(9)],
                        copies=2)  # fmt: skip

    assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0
    first_round = smtp.handler.messages()
    assert len(first_round) == 3

    again = stack.settings(**smtp.settings(), notify_group_id=f"{stack.group_id}-2")
    assert stack.run_until_idle(again) == 0

    assert len(smtp.handler.messages()) == 3
    rows = stack.query("SELECT event_id FROM notification_requests_sent")
    assert sorted(r[0] for r in rows) == sorted(ids)
    listed = [row for m in first_round for row in ROW.findall(_bodies(m)[2])]
    assert len(listed) == 9 and len(set(listed)) == 9


def test_disconnect_after_data_is_retried_and_sent_once(stack, smtp):
    """The connection drops after DATA, before the reply: transient, retried, and
    the server ends up with the message once."""
    smtp.handler.disconnects_after_data = 1
    stack.produce([stack.request()])

    assert stack.run_until_idle(stack.settings(**smtp.settings())) == 0

    assert len(smtp.handler.messages()) == 1
    assert stack.query("SELECT count(*) FROM notification_emails "
                       "WHERE sent_at IS NOT NULL") == [(1,)]  # fmt: skip


def test_sigkill_between_send_and_record_resends_once_with_the_same_message_id(
    stack, smtp, tmp_path
):
    """The server accepts the email and the sidecar is killed before it records
    that: after a restart no request is missing, and the one repeat is the same
    message with the same Message-ID (the documented window)."""
    settings = stack.settings(**smtp.settings())
    ids = stack.produce([stack.request() for _ in range(3)])
    log_path = tmp_path / "notify.log"

    first = stack.spawn(settings, log_path)
    smtp.handler.kill_on_data = first.pid
    assert first.wait(timeout=90) == -9
    assert stack.query("SELECT count(*) FROM notification_emails "
                       "WHERE sent_at IS NULL") == [(1,)]  # fmt: skip

    second = stack.spawn(settings, log_path)
    assert second.wait(timeout=90) == 0, log_path.read_text()

    original, repeat = smtp.handler.messages()
    assert repeat.raw == original.raw
    assert repeat.message["Message-ID"] == original.message["Message-ID"]
    rows = stack.query(
        "SELECT r.event_id FROM notification_requests_sent r "
        "JOIN notification_emails e ON e.id = r.email_id WHERE e.sent_at IS NOT NULL"
    )
    assert sorted(r[0] for r in rows) == sorted(ids)


def test_database_lost_while_sending_records_without_sending_again(stack, smtp):
    """PostgreSQL drops the worker's connections while it waits for the SMTP
    server: once the server takes the email, the worker records it on a new
    connection instead of sending it a second time."""
    smtp.stop()
    stack.produce([stack.request()])
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(
            stack.run_until_idle(stack.settings(**smtp.settings()))
        )
    )
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not stack.backends_locking_an_email():
            assert time.monotonic() < deadline, "the worker never locked the email"
            time.sleep(0.1)
        stack.terminate_backends()
        smtp.start()
    finally:
        runner.join(120)
    assert codes == [0]
    assert len(smtp.handler.messages()) == 1
    assert stack.query("SELECT count(*) FROM notification_emails "
                       "WHERE sent_at IS NOT NULL") == [(1,)]  # fmt: skip
