"""create notification tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_emails",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column(
            "recipients", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("raw_message", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_emails")),
        sa.UniqueConstraint(
            "message_id", name=op.f("uq_notification_emails_message_id")
        ),
    )
    op.create_index(
        "ix_notification_emails_unsent",
        "notification_emails",
        ["id"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
    )
    op.create_table(
        "notification_requests_sent",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("email_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["notification_emails.id"],
            name=op.f("fk_notification_requests_sent_email_id_notification_emails"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_requests_sent")),
        sa.UniqueConstraint(
            "event_id", name=op.f("uq_notification_requests_sent_event_id")
        ),
    )
    op.create_index(
        op.f("ix_notification_requests_sent_email_id"),
        "notification_requests_sent",
        ["email_id"],
        unique=False,
    )
    op.create_table(
        "notification_errors",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_errors")),
        sa.UniqueConstraint("event_id", name=op.f("uq_notification_errors_event_id")),
    )


def downgrade() -> None:
    op.drop_table("notification_errors")
    op.drop_index(
        op.f("ix_notification_requests_sent_email_id"),
        table_name="notification_requests_sent",
    )
    op.drop_table("notification_requests_sent")
    op.drop_index("ix_notification_emails_unsent", table_name="notification_emails")
    op.drop_table("notification_emails")
