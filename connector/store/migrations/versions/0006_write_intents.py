"""Write intents: a Zoho write was started for a record whose id link is not saved yet.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_intents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE", name="fk_write_intents_connection_id_connections"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("xero_id", sa.String(300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_write_intents"),
        sa.UniqueConstraint("connection_id", "kind", "xero_id", name="uq_write_intents_connection_kind_xero"),
    )


def downgrade() -> None:
    op.drop_table("write_intents")
