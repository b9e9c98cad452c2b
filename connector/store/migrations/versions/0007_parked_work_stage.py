"""Parked work says which stage re-drives it (fetch, push or a Zoho notification) and how often it waited.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parked_work") as batch:
        batch.add_column(sa.Column("stage", sa.String(10), nullable=False, server_default="fetch"))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("parked_work") as batch:
        batch.drop_column("attempts")
        batch.drop_column("stage")
