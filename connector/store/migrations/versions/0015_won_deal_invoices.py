"""The one Xero invoice each won Zoho deal became (``won_deal_invoices``), and where it stands.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "won_deal_invoices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("connection_id", sa.Integer(), sa.ForeignKey("connections.id", ondelete="CASCADE",
                                                               name="fk_won_deal_invoices_connection_id_connections"),
                  nullable=False),
        sa.Column("deal_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=True),
        sa.Column("invoice_number", sa.String(255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_won_deal_invoices"),
        sa.UniqueConstraint("connection_id", "deal_id", name="uq_won_deal_invoices_connection_deal"),
    )


def downgrade() -> None:
    op.drop_table("won_deal_invoices")
