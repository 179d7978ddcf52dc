"""The transactional outbox: downstream messages are rows first, Kafka records
second.

Rows are written in the batch's transaction, published after it commits, and
marked published once the broker has acknowledged them. A row left unpublished
by a crash is found by the sweep and published again with the same event id and
bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

import orjson
from psycopg2.extensions import cursor as Cursor

from db import staging

EVENT_ID_HEADER = "alarmd-event-id"
_COLUMNS = "event_id, topic, message_key, payload, headers"
_STAGING = "outbox_staging"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    event_id: str
    topic: str
    key: bytes | None
    payload: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    message: OutboxMessage


def insert(cur: Cursor, messages: list[OutboxMessage]) -> list[OutboxRow]:
    """Inserts messages, skipping any whose event id is already there; returns
    the rows inserted, which are the ones this transaction must publish. One
    COPY and one INSERT, whatever the number of messages."""
    if not messages:
        return []
    by_event = {m.event_id: m for m in messages}
    staging.create(cur, _STAGING, "outbox", _COLUMNS)
    staging.copy_lines(cur, _STAGING, _COLUMNS, map(_copy_line, messages))
    cur.execute(
        staging.insert_sql(
            _STAGING, "outbox", _COLUMNS,
            "ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id",
        )
    )  # fmt: skip
    # The server returns inserted rows in no promised order; publish in id order,
    # the order the sweep would use.
    return [OutboxRow(row_id, by_event[eid]) for row_id, eid in sorted(cur.fetchall())]


def _copy_line(m: OutboxMessage) -> str:
    """The message's row of _COLUMNS as a line of COPY text: its text values
    as they are, when none needs escaping, and key and payload in bytea hex."""
    headers = orjson.dumps(_encode_headers(m.headers)).decode()
    text = f"{m.event_id}\t{m.topic}\t{headers}"
    if m.key is None or m.payload is None or not staging.is_plain(text, 3):
        return staging.copy_line((m.event_id, m.topic, m.key, m.payload, headers))
    return (
        f"{m.event_id}\t{m.topic}\t\\\\x{m.key.hex()}\t\\\\x{m.payload.hex()}\t"
        f"{headers}\n"
    )


# Its one parameter is the list of row ids.
MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)"


def mark_published(cur: Cursor, ids: list[int]) -> None:
    if ids:
        cur.execute(MARK_PUBLISHED, (ids,))


def claim_unpublished(cur: Cursor, min_age_s: float, limit: int) -> list[OutboxRow]:
    """Locks up to `limit` unpublished rows older than `min_age_s`, oldest first.

    Rows locked by another instance's sweep are skipped, not waited for. Call in
    a transaction that marks the rows published before it commits.
    """
    cur.execute(
        "SELECT id, event_id, topic, message_key, payload, headers FROM outbox "
        "WHERE published_at IS NULL AND created_at < now() - make_interval(secs => %s) "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (min_age_s, limit),
    )
    return [
        OutboxRow(
            row_id,
            OutboxMessage(
                eid,
                topic,
                bytes(key) if key is not None else None,
                bytes(payload) if payload is not None else None,
                _decode_headers(headers),
            ),
        )
        for row_id, eid, topic, key, payload, headers in cur.fetchall()
    ]


def oldest_unpublished(cur: Cursor) -> datetime | None:
    cur.execute("SELECT min(created_at) FROM outbox WHERE published_at IS NULL")
    return cur.fetchone()[0]


def count_unpublished(cur: Cursor) -> int:
    cur.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return int(cur.fetchone()[0])


# Header values are arbitrary bytes, or null; JSONB holds them as base64 or null.
def _encode_headers(headers: list[tuple[str, bytes]]) -> list[list[str | None]]:
    return [
        [name, None if value is None else base64.b64encode(value).decode("ascii")]
        for name, value in headers
    ]


def _decode_headers(stored: list[list[str]]) -> list[tuple[str, bytes]]:
    return [
        (name, None if value is None else base64.b64decode(value))  # type: ignore[misc]
        for name, value in stored
    ]
