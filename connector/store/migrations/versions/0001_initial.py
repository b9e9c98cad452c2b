"""Initial schema: connections, credentials, id links, audit events, Xero snapshots, Zoho channels.

Revision ID: 0001
Revises:
Create Date: 2026-01-05

Written out by hand rather than imported from the models, so this revision keeps meaning
the same thing after the models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _connection_fk(table: str) -> sa.Column:
    return sa.Column(
        "connection_id",
        sa.Integer(),
        sa.ForeignKey("connections.id", ondelete="CASCADE", name=f"fk_{table}_connection_id_connections"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("xero_tenant_id", sa.String(64), nullable=False),
        sa.Column("xero_tenant_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("zoho_org_id", sa.String(64)),
        sa.Column("zoho_api_domain", sa.String(255)),
        sa.Column("zoho_accounts_url", sa.String(255)),
        sa.Column("state", sa.String(20), nullable=False, server_default="active"),
        sa.Column("state_reason", sa.Text()),
        sa.Column("xero_daily_limit", sa.Integer(), nullable=False, server_default="5000"),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
        sa.UniqueConstraint("xero_tenant_id", name="uq_connections_xero_tenant_id"),
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), primary_key=True),
        _connection_fk("credentials"),
        sa.Column("system", sa.String(10), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("access_expires_at", _utc()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credentials"),
        sa.UniqueConstraint("connection_id", "system", name="uq_credentials_connection_system"),
    )
    op.create_table(
        "id_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        _connection_fk("id_links"),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("xero_id", sa.String(300), nullable=False),
        sa.Column("zoho_module", sa.String(64), nullable=False),
        sa.Column("zoho_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("source_updated_at", _utc()),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_id_links"),
        sa.UniqueConstraint("connection_id", "kind", "xero_id", name="uq_id_links_connection_kind_xero"),
    )
    op.create_index("ix_id_links_zoho", "id_links", ["connection_id", "zoho_module", "zoho_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("connection_id", sa.Integer()),
        sa.Column("sync_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("record_type", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("detail", JSON_DOCUMENT),
        sa.Column("task_id", sa.String(255)),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_record", "audit_events", ["connection_id", "record_type", "record_id"])
    op.create_table(
        "xero_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        _connection_fk("xero_snapshots"),
        sa.Column("resource", sa.String(40), nullable=False),
        sa.Column("xero_id", sa.String(64), nullable=False),
        sa.Column("source_updated_at", _utc(), nullable=False),
        sa.Column("payload", JSON_DOCUMENT, nullable=False),
        sa.Column("fetched_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_xero_snapshots"),
        sa.UniqueConstraint(
            "connection_id", "resource", "xero_id", name="uq_xero_snapshots_connection_resource_xero"
        ),
    )
    op.create_table(
        "zoho_channels",
        sa.Column("id", sa.Integer(), primary_key=True),
        _connection_fk("zoho_channels"),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("events", JSON_DOCUMENT, nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("renewed_at", _utc()),
        sa.PrimaryKeyConstraint("id", name="pk_zoho_channels"),
        sa.UniqueConstraint("channel_id", name="uq_zoho_channels_channel_id"),
    )


def downgrade() -> None:
    for table in ("zoho_channels", "xero_snapshots", "audit_events", "id_links", "credentials", "connections"):
        op.drop_table(table)
