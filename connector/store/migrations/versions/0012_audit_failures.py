"""An index of the audit trail's failed rows, by connection and age: `connector failures`, `replay
--failed` and the status counts read them, few among millions of rows. Partial (PostgreSQL and SQLite
both), so the rows every record writes cost it nothing.

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
    op.create_index("ix_audit_events_failed", "audit_events", ["connection_id", "created_at"],
                    postgresql_where=FAILED_ROWS, sqlite_where=FAILED_ROWS)


def downgrade() -> None:
    op.drop_index("ix_audit_events_failed", table_name="audit_events")
