"""Backfill: one durable checkpoint per connection and resource, so an import resumes after a crash.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill_checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE",
                          name="fk_backfill_checkpoints_connection_id_connections"),
            nullable=False,
        ),
        sa.Column("resource", sa.String(40), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("anchor", sa.DateTime(timezone=True)),
        sa.Column("page", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("remaining", sa.Integer()),
        sa.Column("calls_per_day", sa.Integer()),
        sa.Column("resume_after", sa.DateTime(timezone=True)),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_backfill_checkpoints"),
        sa.UniqueConstraint("connection_id", "resource", name="uq_backfill_checkpoints_connection_resource"),
    )


def downgrade() -> None:
    op.drop_table("backfill_checkpoints")
