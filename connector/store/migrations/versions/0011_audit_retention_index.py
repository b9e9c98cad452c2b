"""Audit trail by age: the index the retention job deletes by (oldest first, in batches).

Revision ID: 0011
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
