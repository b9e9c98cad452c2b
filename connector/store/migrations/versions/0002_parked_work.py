"""Parked work: records waiting for a reconnect or for the daily budget to reset.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_work",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE", name="fk_parked_work_connection_id_connections"),
            nullable=False,
        ),
        sa.Column("resource", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(300), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("sync_id", sa.String(64)),
        sa.Column("resume_after", sa.DateTime(timezone=True)),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parked_work"),
        sa.UniqueConstraint("connection_id", "resource", "record_id", name="uq_parked_work_connection_resource_record"),
    )
    op.create_index("ix_parked_work_resume", "parked_work", ["connection_id", "resume_after"])


def downgrade() -> None:
    op.drop_index("ix_parked_work_resume", table_name="parked_work")
    op.drop_table("parked_work")
