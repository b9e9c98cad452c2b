"""Which Zoho deal each Xero invoice belongs to (``invoice_deals``), and the rule that decided.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_deals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("connection_id", sa.Integer(), sa.ForeignKey("connections.id", ondelete="CASCADE",
                                                               name="fk_invoice_deals_connection_id_connections"),
                  nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("contact_id", sa.String(64), nullable=True),
        sa.Column("deal_id", sa.String(32), nullable=True),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_deals"),
        sa.UniqueConstraint("connection_id", "invoice_id", name="uq_invoice_deals_connection_invoice"),
    )
    op.create_index("ix_invoice_deals_deal", "invoice_deals", ["connection_id", "deal_id"])


def downgrade() -> None:
    op.drop_index("ix_invoice_deals_deal", table_name="invoice_deals")
    op.drop_table("invoice_deals")
