"""Write ledger: a hash of what we last wrote to each Zoho record, for echo suppression.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_ledger",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE", name="fk_write_ledger_connection_id_connections"),
            nullable=False,
        ),
        sa.Column("system", sa.String(8), nullable=False),
        sa.Column("record_key", sa.String(300), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_write_ledger"),
        sa.UniqueConstraint("connection_id", "system", "record_key", name="uq_write_ledger_connection_system_record"),
    )


def downgrade() -> None:
    op.drop_table("write_ledger")
