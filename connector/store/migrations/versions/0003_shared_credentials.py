"""Shared credentials: connections that use another connection's token set.

One Xero consent can cover several tenants (one rotating refresh token for all of them), and one
Zoho org can receive several tenants (Zoho allows 10 refreshes per refresh token per 10 minutes);
each such token set is stored once, under its owner connection, and refreshed once.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_credentials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE", name="fk_shared_credentials_connection_id_connections"),
            nullable=False,
        ),
        sa.Column("system", sa.String(10), nullable=False),
        sa.Column(
            "owner_connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE",
                          name="fk_shared_credentials_owner_connection_id_connections"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_shared_credentials"),
        sa.UniqueConstraint("connection_id", "system", name="uq_shared_credentials_connection_system"),
    )


def downgrade() -> None:
    op.drop_table("shared_credentials")
