"""create dead_letter_replays

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_replays",
        sa.Column("dlq_topic", sa.Text(), nullable=False),
        sa.Column("dlq_partition", sa.Integer(), nullable=False),
        sa.Column("dlq_offset", sa.BigInteger(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=True),
        sa.Column("source_partition", sa.Integer(), nullable=True),
        sa.Column("source_offset", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("replay_topic", sa.Text(), nullable=False),
        sa.Column("replay_partition", sa.Integer(), nullable=True),
        sa.Column("replay_offset", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column(
            "replayed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "dlq_topic",
            "dlq_partition",
            "dlq_offset",
            name=op.f("pk_dead_letter_replays"),
        ),
    )


def downgrade() -> None:
    op.drop_table("dead_letter_replays")
