"""Delta polling: one If-Modified-Since cursor per connection and resource.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xero_poll_cursors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE", name="fk_xero_poll_cursors_connection_id_connections"),
            nullable=False,
        ),
        sa.Column("resource", sa.String(40), nullable=False),
        sa.Column("modified_since", sa.DateTime(timezone=True)),
        sa.Column("polled_at", sa.DateTime(timezone=True)),
        sa.Column("swept_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_xero_poll_cursors"),
        sa.UniqueConstraint("connection_id", "resource", name="uq_xero_poll_cursors_connection_resource"),
    )


def downgrade() -> None:
    op.drop_table("xero_poll_cursors")
