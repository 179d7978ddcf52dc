"""The tables alarmd owns. Migrations in db/migrations create them; the hot path
writes them with batched statements (db/events.py, db/outbox.py), and queries
and the status command read them through these models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class AlarmEvent(Base):
    """One distinct alarm event. `event_id` is the SHA-256 of its content, so a
    redelivered or repeated event is stored once; the source coordinates are
    those of the first message that carried it."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    iactoken: Mapped[str] = mapped_column(Text, index=True)
    ticket_id: Mapped[str] = mapped_column(Text)
    additional_info: Mapped[str] = mapped_column(Text)
    bcf_id: Mapped[str] = mapped_column(Text)
    node_name: Mapped[str] = mapped_column(Text)
    customer: Mapped[str] = mapped_column(Text)
    vendor_type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    node_type: Mapped[str] = mapped_column(Text)
    alarm_number: Mapped[str] = mapped_column(Text)
    alarm_text: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scope: Mapped[str] = mapped_column(Text)
    iac_alarm_id: Mapped[str] = mapped_column(Text)
    parent_alarm: Mapped[bool] = mapped_column(Boolean)
    parent_id: Mapped[str] = mapped_column(Text)
    execution_mode: Mapped[str] = mapped_column(Text)
    node_group: Mapped[str] = mapped_column(Text)
    robot_uid: Mapped[str] = mapped_column(Text)
    final: Mapped[bool] = mapped_column(Boolean)
    additional_fields: Mapped[dict[str, str]] = mapped_column(JSONB)
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class AlarmCycle(Base):
    """The automation cycle of one alarm, started by its first in-scope final
    event, which `alarm_event_id` points at."""

    __tablename__ = "alarm_cycles"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    iactoken: Mapped[str] = mapped_column(Text, unique=True)
    alarm_event_id: Mapped[int] = mapped_column(ForeignKey("alarm_events.id"))
    state: Mapped[str] = mapped_column(Text, server_default="Cycle Start")
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class CycleTask(Base):
    """A task recorded for a cycle, such as "Alarm to Predictive Service"."""

    __tablename__ = "cycle_tasks"
    __table_args__ = (UniqueConstraint("cycle_id", "task"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("alarm_cycles.id"))
    task: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class OutboxMessage(Base):
    """A downstream message written in the same transaction as the rows it comes
    from, published afterwards. `event_id` is stable, so republishing after a
    crash sends the same id and bytes."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    topic: Mapped[str] = mapped_column(Text)
    message_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    headers: Mapped[list[list[str]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProcessingError(Base):
    """A message that could not be processed, with where it came from and why.
    Its original bytes went to the dead-letter topic through the outbox."""

    __tablename__ = "processing_errors"
    __table_args__ = (
        UniqueConstraint("source_topic", "source_partition", "source_offset", "stage"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    stage: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class NotificationEmail(Base):
    """One email of the sidecar, recorded with its exact bytes before it is sent.

    `sent_at` is set once the SMTP server accepted it; a row left without it by a
    crash is sent again with the same bytes, so the Message-ID stays the same.
    """

    __tablename__ = "notification_emails"
    __table_args__ = (
        Index(
            "ix_notification_emails_unsent",
            "id",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    group_key: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSONB)
    subject: Mapped[str] = mapped_column(Text)
    raw_message: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str | None] = mapped_column(Text)


class NotificationRequestSent(Base):
    """A notification request and the one email that carries it. The request's
    original bytes are kept, so a failed email can still dead-letter them."""

    __tablename__ = "notification_requests_sent"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    email_id: Mapped[int] = mapped_column(
        ForeignKey("notification_emails.id"), index=True
    )
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)


class NotificationError(Base):
    """A notification request that went to `notification.dlq`, and why."""

    __tablename__ = "notification_errors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DeadLetterReplay(Base):
    """A dead letter that `alarmd dlq replay` produced again, keyed by where it
    is on the dead-letter topic, so no replay sends it twice. The row is
    written in the same PostgreSQL transaction that is committed only after
    the Kafka transaction carrying the replay has committed."""

    __tablename__ = "dead_letter_replays"

    dlq_topic: Mapped[str] = mapped_column(Text, primary_key=True)
    dlq_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    dlq_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_topic: Mapped[str | None] = mapped_column(Text)
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    replay_topic: Mapped[str] = mapped_column(Text)
    replay_partition: Mapped[int | None] = mapped_column(Integer)
    replay_offset: Mapped[int | None] = mapped_column(BigInteger)
    run_id: Mapped[str] = mapped_column(Text)
    replayed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
