"""The console's record search reads indexed key columns, not the payloads: ``search_number`` (an invoice's or
credit note's number), ``search_email`` and ``search_name`` (a contact's), trimmed and case folded as the store
writes them on every upsert (connector/store/snapshots.py ``search_keys``).

Existing rows are filled in keyset batches of 2,000 ids: each batch reads only the four fields out of the JSON
and writes the keys by id, so no statement runs long and memory stays flat however big the table. Adding the
nullable columns is a catalog change (no rewrite). The batches share the migration's transaction (``migrate``
holds its advisory lock in it), so the rows filled stay locked to other writers until it commits; every process
of this version waits for that lock before it writes anything, so only a process of the previous version still
running could wait.

Indexes: btree on the number and the email (exact), and on the name with text_pattern_ops (prefix, whatever
the collation). On PostgreSQL also a pg_trgm GIN index for a part of a name, when the extension is there or can
be created (a contrib extension, https://www.postgresql.org/docs/current/pgtrgm.html; trusted since
PostgreSQL 13, so a database owner may create it); without it a name search matches a prefix.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BATCH = 2_000
KEY_LENGTH = 255
TRIGRAM_INDEX = "ix_xero_snapshots_search_name_trgm"
# The payload field each column is read from, per resource (as snapshots.SEARCH_FIELDS).
FIELDS = {"invoices": {"search_number": "InvoiceNumber"}, "creditnotes": {"search_number": "CreditNoteNumber"},
          "contacts": {"search_email": "EmailAddress", "search_name": "Name"}}
PAYLOAD_FIELDS = ("InvoiceNumber", "CreditNoteNumber", "EmailAddress", "Name")


def _key(value) -> str | None:
    key = str(value).strip().casefold()[:KEY_LENGTH] if value is not None else ""
    return key or None


def _fill(bind) -> None:
    if bind.dialect.name == "postgresql":
        fields = ", ".join(f"payload ->> '{name}'" for name in PAYLOAD_FIELDS)
    else:
        fields = ", ".join(f"json_extract(payload, '$.{name}')" for name in PAYLOAD_FIELDS)
    read = sa.text(f"SELECT id, resource, {fields} FROM xero_snapshots WHERE id > :after"
                   f" AND resource IN ('invoices', 'creditnotes', 'contacts') ORDER BY id LIMIT {BATCH}")
    write = sa.text("UPDATE xero_snapshots SET search_number = :search_number, search_email = :search_email,"
                    " search_name = :search_name WHERE id = :id")
    after = 0
    while rows := bind.execute(read, {"after": after}).all():
        updates = []
        for row_id, resource, *values in rows:
            payload = dict(zip(PAYLOAD_FIELDS, values))
            keys = {"id": row_id, "search_number": None, "search_email": None, "search_name": None}
            keys.update({column: _key(payload[name]) for column, name in FIELDS[resource].items()})
            updates.append(keys)
        bind.execute(write, updates)
        after = rows[-1][0]


def _trigram_available(bind) -> bool:
    """pg_trgm is installed, or could be created now (a savepoint keeps a refusal from aborting the migration)."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first():
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:  # not allowed to: the name search falls back to prefixes
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    for column in ("search_number", "search_email", "search_name"):
        op.add_column("xero_snapshots", sa.Column(column, sa.String(255), nullable=True))
    _fill(bind)
    op.create_index("ix_xero_snapshots_search_number", "xero_snapshots", ["search_number", "connection_id"])
    op.create_index("ix_xero_snapshots_search_email", "xero_snapshots", ["search_email", "connection_id"])
    op.create_index("ix_xero_snapshots_search_name", "xero_snapshots", ["search_name"],
                    postgresql_ops={"search_name": "text_pattern_ops"})
    if bind.dialect.name == "postgresql" and _trigram_available(bind):
        op.execute(f"CREATE INDEX {TRIGRAM_INDEX} ON xero_snapshots USING gin (search_name gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")
    for index in ("ix_xero_snapshots_search_name", "ix_xero_snapshots_search_email", "ix_xero_snapshots_search_number"):
        op.drop_index(index, table_name="xero_snapshots")
    with op.batch_alter_table("xero_snapshots") as batch:
        for column in ("search_name", "search_email", "search_number"):
            batch.drop_column(column)
