"""`alarmd status`: what is stored and what is on the topics, read from the
database and the brokers themselves, not from any daemon's counters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from alarmd.settings import Settings
from alarmd.topics import count_records
from db.models import (
    AlarmCycle,
    AlarmEvent,
    NotificationEmail,
    NotificationRequestSent,
    OutboxMessage,
    ProcessingError,
)


def status(settings: Settings, engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        counts: dict[str, Any] = {
            "alarm_events": conn.scalar(select(func.count()).select_from(AlarmEvent)),
            "cycles": conn.scalar(select(func.count()).select_from(AlarmCycle)),
            "processing_errors": conn.scalar(
                select(func.count()).select_from(ProcessingError)
            ),
            "outbox_pending": conn.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
            ),
            "notifications_sent": conn.scalar(
                select(func.count())
                .select_from(NotificationRequestSent)
                .join(NotificationEmail)
                .where(NotificationEmail.sent_at.is_not(None))
            ),
            "emails_sent": conn.scalar(
                select(func.count())
                .select_from(NotificationEmail)
                .where(NotificationEmail.sent_at.is_not(None))
            ),
        }
    counts["topics"] = count_records(
        settings, [*settings.all_topics(), *settings.sidecar_topics()]
    )
    return counts
