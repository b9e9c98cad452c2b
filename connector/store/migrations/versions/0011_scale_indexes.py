"""Indexes for scale: the audit trail by age (retention deletes the oldest rows in batches), and the
Zoho-side link index led by the Zoho id.

Led by connection_id, the Zoho-side index also matched a lookup by Xero id on its first column, and
with statistics older than the rows (a first import, a burst) the planner took it: every lookup then
read all of the connection's links. Led by zoho_id it serves only what it is for.

On PostgreSQL the tables every record writes are analysed after every 1,000 new rows (and 2 %),
not only after 10 % growth: with statistics that still describe an empty or much smaller table,
the planner turns a batch lookup's IN list into a filter over all of a connection's rows.

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


FRESH_STATISTICS = ("id_links", "xero_snapshots", "write_ledger", "write_intents", "audit_events")


def upgrade() -> None:
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])
    op.drop_index("ix_id_links_zoho", table_name="id_links")
    op.create_index("ix_id_links_zoho", "id_links", ["zoho_id", "zoho_module", "connection_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in FRESH_STATISTICS:
            op.execute(f"ALTER TABLE {table} SET (autovacuum_analyze_threshold = 1000, "
                       "autovacuum_analyze_scale_factor = 0.02)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in FRESH_STATISTICS:
            op.execute(f"ALTER TABLE {table} RESET (autovacuum_analyze_threshold, autovacuum_analyze_scale_factor)")
    op.drop_index("ix_id_links_zoho", table_name="id_links")
    op.create_index("ix_id_links_zoho", "id_links", ["connection_id", "zoho_module", "zoho_id"])
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
