"""On PostgreSQL ``invoice_deals`` (a row for every invoice pushed) is analysed after every 1,000 new rows
(and 2 %), as migration 0011 set for the other tables every record writes: with statistics that still
describe an empty table the planner reads a connection's every decision for a batch's few.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoice_deals SET (autovacuum_analyze_threshold = 1000, "
                   "autovacuum_analyze_scale_factor = 0.02)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoice_deals RESET (autovacuum_analyze_threshold, autovacuum_analyze_scale_factor)")
