"""An index of the audit trail's failed rows, by connection and age: `connector failures`, `replay
--failed` and the status counts read them, few among millions of rows. Partial (PostgreSQL and SQLite
both), so the rows every record writes cost it nothing.

A row counts how many times in a row its record reached its stage (``times``, and ``last_at`` the
last of them): a run of retries is one row, not one per retry.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FAILED_ROWS = sa.text("stage = 'failed'")


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table, SQLite with ALTER TABLE.
    op.add_column("audit_events", sa.Column("times", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("audit_events", sa.Column("last_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_audit_events_failed", "audit_events", ["connection_id", "created_at"],
                    postgresql_where=FAILED_ROWS, sqlite_where=FAILED_ROWS)


def downgrade() -> None:
    op.drop_index("ix_audit_events_failed", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("last_at")
        batch.drop_column("times")
