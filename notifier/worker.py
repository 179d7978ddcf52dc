"""The email sidecar's poll loop: consume `notification`, group, send, record,
commit.

For every digest whose time has come, in this order:

1. render it (a template or address error dead-letters its requests), and
   where its route has a webhook, post the digest there as JSON (a refusal
   dead-letters its requests and no email is sent);
2. one transaction: record the email, unsent, with its bytes and its requests;
3. lock the email row, send it over SMTP, mark it sent, commit;
4. commit the offsets that no unrecorded request holds back.

Requests already recorded are skipped on arrival, so a redelivery sends nothing
twice. Transient failures pause consumption and retry the step; the only repeat
SMTP allows is a crash between the server's acceptance and step 3's commit,
and the resend carries the same bytes and Message-ID.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from sqlalchemy import Engine

from alarmd import logs
from alarmd.errors import TransientError
from alarmd.headers import read_headers
from alarmd.health import Health
from alarmd.settings import Settings
from consumer.membership import GroupMember, Partitions
from db.outbox import EVENT_ID_HEADER
from notifier import metrics, records
from notifier.dead_letter import DeadLetterPublisher
from notifier.errors import PermanentFailure
from notifier.grouping import Digest, Grouper
from notifier.offsets import OffsetTracker
from notifier.records import Failed, StoredEmail
from notifier.render import Renderer
from notifier.request import Coordinates, Received, decode
from notifier.routes import lookup, route_of
from notifier.smtp import SmtpSender
from notifier.webhook import WebhookSender

log = logs.get(__name__)

MIN_POLL_S = 0.01


class NotifyWorker:
    def __init__(self, settings: Settings, engine: Engine, health: Health) -> None:
        self._settings = settings
        self._engine = engine
        self._health = health
        self._grouper = Grouper(
            settings.notify_group_by,
            settings.notify_group_wait_s,
            settings.notify_group_interval_s,
        )
        self._renderer = self._make_renderer(None)
        # Compiled once each, at start-up, like the global templates.
        self._route_renderers = {
            route: self._make_renderer(folder)
            for route, folder in settings.notify_route_template_dirs.items()
        }
        self._webhook = WebhookSender(settings.notify_webhook_timeout_s)
        self._smtp = SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.smtp_username,
            settings.smtp_password.get_secret_value()
            if settings.smtp_password
            else None,
            settings.smtp_ca_file,
            settings.smtp_timeout_s,
        )
        kafka = {**settings.kafka_common(), "logger": logs.librdkafka_logger()}
        self._dead_letters = DeadLetterPublisher(
            kafka, settings.notify_dead_letter_topic, settings.publish_timeout_s
        )
        self._member = GroupMember(
            {**kafka, "group.id": settings.notify_group_id},
            health,
            on_fatal=self._on_fatal_kafka_error,
            # Below the stall deadline, which start-up checks against it.
            commit_timeout_s=settings.publish_timeout_s,
        )
        self._offsets = OffsetTracker()
        self._stopping = threading.Event()
        self._fatal = False
        self._next_sweep = 0.0
        self._retry = self._member.pausing_retry(
            settings.retry_initial_s,
            settings.retry_max_s,
            # Giving up at once on a stop loses nothing here: an email is
            # recorded before it is sent (the sweep resends it) and offsets are
            # committed only after recording.
            give_up=self._stopping.is_set,
        )

    def _make_renderer(self, route_template_dir) -> Renderer:
        return Renderer(
            self._settings.notify_template_dir,
            self._settings.notify_from,
            self._settings.notify_message_id_domain,
            self._settings.notify_max_alarms_per_email,
            self._settings.notify_field_max_chars,
            route_template_dir=route_template_dir,
        )

    # --- lifecycle -------------------------------------------------------------

    def _on_fatal_kafka_error(self) -> None:
        """librdkafka cannot go on: stop after the email in hand and exit 1."""
        self._fatal = True
        self.request_stop()

    def request_stop(self, signum: int | None = None, _frame: Any = None) -> None:
        """Asks the loop to finish the email in hand and exit. Safe from a signal
        handler. Requests still waiting in groups are not committed, so they come
        again after a restart."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        log.info(
            "stop_requested", signal=signal.Signals(signum).name if signum else None
        )

    def run(self, exit_when_idle_s: float | None = None) -> int:
        """Consumes until stopped (or idle for `exit_when_idle_s`); returns the
        process exit code. Blocks."""
        self._dead_letters.ensure_topic(
            self._settings.topic_partitions, self._settings.topic_replication_factor
        )
        topic = self._settings.notification_topic
        self._member.subscribe([topic], on_revoked=self._on_revoked)
        log.info("started", topic=topic, group=self._settings.notify_group_id,
                 group_by=self._grouper.fields,
                 group_wait_s=self._settings.notify_group_wait_s,
                 smtp=f"{self._settings.smtp_host}:{self._settings.smtp_port}")  # fmt: skip
        last_message_at = time.monotonic()
        try:
            while not self._stopping.is_set():
                messages = self._member.consume(
                    self._settings.batch_max_messages, self._poll_timeout()
                )
                if messages:
                    self._health.enter("receive", messages)
                    self._receive(messages)
                    last_message_at = time.monotonic()
                for digest in self._grouper.due(time.monotonic()):
                    if self._stopping.is_set():
                        break  # the rest stay uncommitted and come again
                    self._health.enter("send")
                    self._send(digest)
                    self._health.beat()  # each email is progress
                self._health.enter("commit")
                self._commit()
                self._health.enter("sweep")
                self._sweep_when_due()
                self._retry.resume_if_paused()
                metrics.PENDING.set(self._offsets.outstanding())
                if exit_when_idle_s is not None and self._idle_for(
                    time.monotonic() - last_message_at, exit_when_idle_s
                ):
                    log.info("idle_exit", idle_s=exit_when_idle_s)
                    break
        except TransientError as exc:
            # Only reached on a stop during a retry; what was in hand is recorded
            # or uncommitted, so it is sent after a restart.
            log.warning("stopped_while_retrying", stage=exc.stage, error=exc.detail)
        finally:
            self._member.close()
            self._dead_letters.close(5.0)
            self._webhook.close()
            log.info("stopped", pending=self._grouper.pending())
        return 1 if self._fatal else 0

    # --- receiving -------------------------------------------------------------

    def _receive(self, messages: list[Any]) -> None:
        now = time.monotonic()
        metrics.REQUESTS_RECEIVED.inc(len(messages))
        decoded: list[Received] = []
        failed: list[Failed] = []
        for m in messages:
            c = Coordinates(m.topic(), m.partition(), m.offset())
            self._offsets.seen(c)
            headers, _ = read_headers(m)
            try:
                request = decode(m.value())
            except PermanentFailure as exc:
                # Recorded under its own coordinates: the event id its headers
                # claim is as untrusted as its body, and recording under it
                # would mark a real request with that id as handled.
                event_id = f"undecodable/{c.topic}/{c.partition}/{c.offset}"
                failed.append(Failed(event_id, c, m.key(), m.value(), headers,
                                     exc.reason.value, exc.detail))  # fmt: skip
                continue
            decoded.append(Received(request, c, m.key(), m.value(), headers))

        ids = [r.request.event_id for r in decoded]
        handled = self._retry("database", lambda: self._already_handled(ids))
        for received in decoded:
            if received.request.event_id in handled:
                self._offsets.done(received.coordinates)
                metrics.REQUESTS_SKIPPED.inc()
            elif not self._grouper.add(received, now):
                metrics.REQUESTS_SKIPPED.inc()
        if failed:
            self._dead_letter(failed)

    def _already_handled(self, ids: list[str]) -> set[str]:
        with records.transaction(self._engine) as conn, conn.cursor() as cur:
            return records.already_handled(cur, ids)

    # --- sending ---------------------------------------------------------------

    def _send(self, digest: Digest) -> None:
        recipients = lookup(
            self._settings.notify_routes, digest, self._settings.notify_recipients
        )
        renderer = lookup(self._route_renderers, digest, self._renderer)
        try:
            email = renderer.render(digest, recipients)
            self._post_webhook(renderer, digest, email)
        except PermanentFailure as exc:
            metrics.EMAILS_FAILED.labels(reason=exc.reason.value).inc()
            self._dead_letter(
                [_failed(r, exc.reason.value, exc.detail) for r in digest.received]
            )
            self._done(digest)
            return

        stored = self._retry("database", lambda: self._record(email, digest))
        self._deliver(stored)
        metrics.GROUP_WAIT.observe(time.monotonic() - digest.opened_at)
        self._done(digest)

    def _post_webhook(self, renderer: Renderer, digest: Digest, email) -> None:
        """Posts the digest where its route has a webhook; blocks while retrying.
        Before the email is recorded, so a crash posts it again, with the same
        Idempotency-Key (the Message-ID)."""
        route = route_of(self._settings.notify_webhooks, digest)
        if route is None:
            return
        url = self._settings.notify_webhooks[route].get_secret_value()
        payload = renderer.payload(digest, email)

        def post() -> None:
            try:
                self._webhook.post(route, url, payload, email.message_id)
            except TransientError:
                metrics.RETRIES.labels(stage="webhook").inc()
                raise

        self._retry("webhook", post)
        log.info("webhook_posted", route=route, message_id=email.message_id,
                 requests=len(digest.received))  # fmt: skip

    def _record(self, email, digest: Digest) -> StoredEmail:
        with records.transaction(self._engine) as conn, conn.cursor() as cur:
            return records.record_email(cur, email, digest.key_text, digest.received)

    def _deliver(self, stored: StoredEmail) -> None:
        """Sends a recorded email and marks the outcome; blocks while retrying."""
        accepted: list[bool] = []

        def attempt() -> str:
            if accepted:
                # The server has it; only the record failed. Never send again.
                self._mark_sent(stored.id)
                return "sent"
            return self._deliver_once(stored, accepted)

        outcome = self._retry("database", attempt)
        if outcome == "sent":
            metrics.EMAILS_SENT.inc()
            metrics.REQUESTS_SENT.inc(len(stored.requests))
            log.info("email_sent", message_id=stored.message_id,
                     requests=len(stored.requests))  # fmt: skip

    def _mark_sent(self, email_id: int) -> None:
        with records.transaction(self._engine) as conn, conn.cursor() as cur:
            records.mark_sent(cur, email_id)

    def _deliver_once(self, stored: StoredEmail, accepted: list[bool]) -> str:
        # XXX: the row lock, and so a transaction, stays open while SMTP retries,
        # however long the server is down; it keeps other instances' sweeps off
        # this email. A lease column would free the connection.
        with records.transaction(self._engine) as conn, conn.cursor() as cur:
            if not records.lock_unsent(cur, stored.id):
                return "already_done"
            try:
                refused = self._retry("smtp", lambda: self._smtp_send(stored))
            except PermanentFailure as exc:
                self._fail_email(cur, stored, exc)
                return "failed"
            accepted.append(True)
            if refused:
                log.warning("email_recipients_refused", message_id=stored.message_id,
                            refused=refused)  # fmt: skip
            records.mark_sent(cur, stored.id)
            return "sent"

    def _smtp_send(self, stored: StoredEmail) -> dict[str, str]:
        try:
            return self._smtp.send(
                self._renderer.envelope_sender, list(stored.recipients), stored.raw
            )
        except TransientError:
            metrics.RETRIES.labels(stage="smtp").inc()
            raise

    def _fail_email(self, cur, stored: StoredEmail, exc: PermanentFailure) -> None:
        failed = [
            Failed(r.event_id, r.coordinates, _key_of(r.payload), r.payload,
                   [(EVENT_ID_HEADER, r.event_id.encode("utf-8"))],
                   exc.reason.value, exc.detail)
            for r in stored.requests
        ]  # fmt: skip
        self._retry("dead_letter", lambda: self._dead_letters.publish(failed))
        records.mark_failed(cur, stored.id, exc.reason.value, exc.detail)
        records.record_errors(cur, failed)
        metrics.EMAILS_FAILED.labels(reason=exc.reason.value).inc()
        metrics.REQUESTS_FAILED.labels(reason=exc.reason.value).inc(len(failed))
        log.warning("email_dead_lettered", message_id=stored.message_id,
                    requests=len(failed), reason=exc.reason.value, detail=exc.detail)  # fmt: skip

    def _dead_letter(self, failed: list[Failed]) -> None:
        self._retry("dead_letter", lambda: self._dead_letters.publish(failed))
        self._retry("database", lambda: self._record_errors(failed))
        for f in failed:
            self._offsets.done(f.coordinates)
            metrics.REQUESTS_FAILED.labels(reason=f.reason).inc()
            c = f.coordinates
            log.warning("request_dead_lettered", topic=c.topic, partition=c.partition,
                        offset=c.offset, reason=f.reason, detail=f.detail)  # fmt: skip

    def _record_errors(self, failed: list[Failed]) -> None:
        with records.transaction(self._engine) as conn, conn.cursor() as cur:
            records.record_errors(cur, failed)

    def _done(self, digest: Digest) -> None:
        for received in digest.received:
            self._offsets.done(received.coordinates)
        for coordinates in digest.duplicates:
            self._offsets.done(coordinates)

    # --- emails left unsent by a crash ------------------------------------------

    def _sweep_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._settings.outbox_sweep_interval_s
        try:
            self.sweep_unsent()
        except TransientError as exc:
            log.warning("unsent_sweep_failed", error=exc.detail)

    def sweep_unsent(self) -> int:
        """Sends the emails recorded but never marked sent (a crash between send
        and record) with their stored bytes; returns how many. Raises
        TransientError when the database is unavailable."""
        with records.transaction(self._engine) as conn, conn.cursor() as cur:
            ids = records.unsent_ids(cur, self._settings.notify_sweep_min_age_s)
            emails = [
                records.load_email(cur, i, self._renderer.envelope_sender) for i in ids
            ]
        for stored in emails:
            log.info("email_resending", message_id=stored.message_id,
                     requests=len(stored.requests))  # fmt: skip
            self._deliver(stored)
        return len(emails)

    def _idle_for(self, quiet_s: float, limit_s: float) -> bool:
        if quiet_s < limit_s or not self._member.joined or self._grouper.pending():
            return False
        if self._offsets.committable():
            return False
        try:
            with records.transaction(self._engine) as conn, conn.cursor() as cur:
                unsent = records.count_unsent(cur)
        except TransientError:
            return False
        if unsent:
            self._next_sweep = 0.0
        return unsent == 0

    # --- offsets ---------------------------------------------------------------

    def _commit(self) -> None:
        positions = {
            k: v
            for k, v in self._offsets.committable().items()
            if k in self._member.assigned
        }
        if positions:
            self._retry("commit", lambda: self._commit_positions(positions))
            self._offsets.committed(positions)

    def _commit_positions(self, positions: dict[tuple[str, int], int]) -> None:
        try:
            self._member.commit(positions)
        except TransientError:
            metrics.RETRIES.labels(stage="commit").inc()
            raise

    # --- Kafka callbacks and helpers -------------------------------------------

    def _poll_timeout(self) -> float:
        timeout = self._settings.batch_timeout_s
        next_due = self._grouper.next_due()
        if next_due is not None:
            timeout = min(timeout, max(next_due - time.monotonic(), MIN_POLL_S))
        return timeout

    def _on_revoked(self, removed: Partitions) -> dict[str, Any]:
        dropped = self._grouper.drop_partitions(removed)
        self._offsets.forget(removed)
        return {"requests_dropped": dropped}


def _failed(r: Received, reason: str, detail: str) -> Failed:
    return Failed(
        r.request.event_id, r.coordinates, r.key, r.payload, r.headers, reason, detail
    )


def _key_of(payload: bytes) -> bytes | None:
    try:
        return decode(payload).iactoken.encode("utf-8")
    except PermanentFailure:
        return None
