"""What the sidecar records in PostgreSQL: emails, the requests each carries,
and requests that were dead-lettered.

An email is recorded with its exact bytes and its requests *before* it is sent,
and marked sent once the server accepted it. So a request is in exactly one
email row; a crash between the server's acceptance and the mark leaves the row
unsent, and it is sent again with the same bytes and Message-ID.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json, execute_values
from sqlalchemy import Engine

from db.connection import translated_connection
from notifier.render import Email
from notifier.request import Coordinates, Received


@dataclass(frozen=True, slots=True)
class StoredRequest:
    event_id: str
    payload: bytes
    coordinates: Coordinates


@dataclass(frozen=True, slots=True)
class StoredEmail:
    id: int
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    requests: tuple[StoredRequest, ...]


@dataclass(frozen=True, slots=True)
class Failed:
    """A request on its way to the dead-letter topic."""

    event_id: str
    coordinates: Coordinates
    key: bytes | None
    payload: bytes | None
    headers: list[tuple[str, bytes]]
    reason: str
    detail: str


def transaction(engine: Engine) -> AbstractContextManager[Connection]:
    """A raw psycopg2 connection, committed on success. Unavailability errors
    become TransientError("database"); a broken connection is never reused."""
    return translated_connection(engine, commit=True)


def already_handled(cur: Cursor, event_ids: list[str]) -> set[str]:
    """The ids among these that are in an email or were dead-lettered."""
    if not event_ids:
        return set()
    cur.execute(
        "SELECT event_id FROM notification_requests_sent WHERE event_id = ANY(%s) "
        "UNION SELECT event_id FROM notification_errors WHERE event_id = ANY(%s)",
        (event_ids, event_ids),
    )
    return {row[0] for row in cur.fetchall()}


def record_email(cur: Cursor, email: Email, key_text: str, received) -> StoredEmail:
    """Inserts an email, unsent, and its requests; returns it as stored."""
    cur.execute(
        "INSERT INTO notification_emails (message_id, group_key, recipients, subject, "
        "raw_message) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (message_id) DO NOTHING RETURNING id",
        (email.message_id, key_text, Json(list(email.recipients)), email.subject,
         email.raw),
    )  # fmt: skip
    row = cur.fetchone()
    if row is None:
        # The same key and requests were recorded before (a retried insert whose
        # commit did succeed): that row, with its bytes, is the email.
        cur.execute(
            "SELECT id FROM notification_emails WHERE message_id = %s",
            (email.message_id,),
        )
        return load_email(cur, cur.fetchone()[0], email.sender)
    email_id = row[0]
    execute_values(
        cur,
        "INSERT INTO notification_requests_sent (event_id, email_id, payload, "
        "source_topic, source_partition, source_offset) VALUES %s "
        "ON CONFLICT (event_id) DO NOTHING",
        [_request_row(email_id, r) for r in received],
    )
    requests = tuple(
        StoredRequest(r.request.event_id, r.payload, r.coordinates) for r in received
    )
    return StoredEmail(
        email_id, email.message_id, email.sender, email.recipients, email.raw, requests
    )


def lock_unsent(cur: Cursor, email_id: int) -> bool:
    """Locks the email for sending; False when it is sent, failed, or being sent
    by another instance. Hold the transaction until the outcome is marked."""
    cur.execute(
        "SELECT id FROM notification_emails WHERE id = %s AND sent_at IS NULL "
        "AND failed_at IS NULL FOR UPDATE SKIP LOCKED",
        (email_id,),
    )
    return cur.fetchone() is not None


def mark_sent(cur: Cursor, email_id: int) -> None:
    cur.execute(
        "UPDATE notification_emails SET sent_at = now() "
        "WHERE id = %s AND sent_at IS NULL",
        (email_id,),
    )


def mark_failed(cur: Cursor, email_id: int, reason: str, detail: str) -> None:
    cur.execute(
        "UPDATE notification_emails SET failed_at = now(), failure_reason = %s "
        "WHERE id = %s",
        (f"{reason}: {detail}", email_id),
    )


def record_errors(cur: Cursor, failed: list[Failed]) -> None:
    if not failed:
        return
    execute_values(
        cur,
        "INSERT INTO notification_errors (event_id, source_topic, source_partition, "
        "source_offset, reason, detail) VALUES %s ON CONFLICT (event_id) DO NOTHING",
        [
            (
                f.event_id,
                f.coordinates.topic,
                f.coordinates.partition,
                f.coordinates.offset,
                f.reason,
                f.detail,
            )
            for f in failed
        ],  # fmt: skip
    )


def unsent_ids(cur: Cursor, min_age_s: float) -> list[int]:
    """Emails recorded more than `min_age_s` ago and neither sent nor failed."""
    cur.execute(
        "SELECT id FROM notification_emails WHERE sent_at IS NULL AND failed_at IS "
        "NULL AND created_at <= now() - make_interval(secs => %s) ORDER BY id",
        (min_age_s,),
    )
    return [row[0] for row in cur.fetchall()]


def count_unsent(cur: Cursor) -> int:
    cur.execute(
        "SELECT count(*) FROM notification_emails "
        "WHERE sent_at IS NULL AND failed_at IS NULL"
    )
    return int(cur.fetchone()[0])


def load_email(cur: Cursor, email_id: int, sender: str) -> StoredEmail:
    cur.execute(
        "SELECT message_id, recipients, raw_message FROM notification_emails "
        "WHERE id = %s",
        (email_id,),
    )
    message_id, recipients, raw = cur.fetchone()
    cur.execute(
        "SELECT event_id, payload, source_topic, source_partition, source_offset "
        "FROM notification_requests_sent WHERE email_id = %s ORDER BY id",
        (email_id,),
    )
    requests = tuple(
        StoredRequest(eid, bytes(payload), Coordinates(topic, partition, offset))
        for eid, payload, topic, partition, offset in cur.fetchall()
    )
    return StoredEmail(
        email_id, message_id, sender, tuple(recipients), bytes(raw), requests
    )


def _request_row(email_id: int, r: Received) -> tuple:
    c = r.coordinates
    return (r.request.event_id, email_id, r.payload, c.topic, c.partition, c.offset)
