"""create alarm tables

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("iactoken", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("additional_info", sa.Text(), nullable=False),
        sa.Column("bcf_id", sa.Text(), nullable=False),
        sa.Column("node_name", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("vendor_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("node_type", sa.Text(), nullable=False),
        sa.Column("alarm_number", sa.Text(), nullable=False),
        sa.Column("alarm_text", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("iac_alarm_id", sa.Text(), nullable=False),
        sa.Column("parent_alarm", sa.Boolean(), nullable=False),
        sa.Column("parent_id", sa.Text(), nullable=False),
        sa.Column("execution_mode", sa.Text(), nullable=False),
        sa.Column("node_group", sa.Text(), nullable=False),
        sa.Column("robot_uid", sa.Text(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column(
            "additional_fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_alarm_events_event_id")),
    )
    op.create_index(
        op.f("ix_alarm_events_iactoken"), "alarm_events", ["iactoken"], unique=False
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("message_key", sa.LargeBinary(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "processing_errors",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("traceback", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processing_errors")),
        sa.UniqueConstraint(
            "source_topic",
            "source_partition",
            "source_offset",
            "stage",
            name=op.f("uq_processing_errors_source_topic"),
        ),
    )
    op.create_table(
        "alarm_cycles",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("iactoken", sa.Text(), nullable=False),
        sa.Column("alarm_event_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), server_default="Cycle Start", nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["alarm_event_id"],
            ["alarm_events.id"],
            name=op.f("fk_alarm_cycles_alarm_event_id_alarm_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_cycles")),
        sa.UniqueConstraint("iactoken", name=op.f("uq_alarm_cycles_iactoken")),
    )
    op.create_table(
        "cycle_tasks",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("cycle_id", sa.BigInteger(), nullable=False),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["alarm_cycles.id"],
            name=op.f("fk_cycle_tasks_cycle_id_alarm_cycles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cycle_tasks")),
        sa.UniqueConstraint("cycle_id", "task", name=op.f("uq_cycle_tasks_cycle_id")),
    )


def downgrade() -> None:
    op.drop_table("cycle_tasks")
    op.drop_table("alarm_cycles")
    op.drop_table("processing_errors")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox")
    op.drop_index(op.f("ix_alarm_events_iactoken"), table_name="alarm_events")
    op.drop_table("alarm_events")
