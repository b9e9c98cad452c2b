"""``invoice_deals``: the index of a deal's invoices is led by the deal id, and on PostgreSQL the table is
analysed after every 1,000 new rows (and 2 %), as migration 0011 set for the other tables every record writes.

Led by connection_id, the deal index also matched a lookup of invoices' decisions on its first column; while
the table grew from empty (no statistics yet) the planner took it for each invoice of a batch, reading every
decision of the connection each time (a batch's decisions read the whole table fifty times over). Led by
deal_id it serves only what it is for: a deal's invoices, and the unassigned ones (deal_id IS NULL).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_invoice_deals_deal", table_name="invoice_deals")
    op.create_index("ix_invoice_deals_deal", "invoice_deals", ["deal_id", "connection_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoice_deals SET (autovacuum_analyze_threshold = 1000, "
                   "autovacuum_analyze_scale_factor = 0.02)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoice_deals RESET (autovacuum_analyze_threshold, autovacuum_analyze_scale_factor)")
    op.drop_index("ix_invoice_deals_deal", table_name="invoice_deals")
    op.create_index("ix_invoice_deals_deal", "invoice_deals", ["connection_id", "deal_id"])
