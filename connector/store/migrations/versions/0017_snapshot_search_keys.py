"""The console's record search reads indexed key columns, not the payloads: ``search_number`` (an invoice's or
credit note's number), ``search_email`` and ``search_name`` (a contact's), trimmed and case folded as the store
writes them on every upsert (connector/store/snapshots.py ``search_keys``).

Existing rows are filled in keyset batches of 2,000 ids: each batch reads only the four fields out of the JSON
and writes the keys by id in one statement, so no statement runs long and memory stays flat however big the
table. On PostgreSQL the columns are added and committed first (nullable, no default: a catalog change, no
rewrite, its exclusive lock held for an instant), then each batch commits on its own (an autocommit block), so
no lock is held across the fill: readers and writers of other rows never wait, and a writer of a row waits at
most for one batch. The other processes of this version wait for the migration lock (``db.migrate``, held by
the session) before they write. Stopped part-way, the migration starts again where it is safe to: columns
that exist are kept, and the fill is written again whole. The indexes are built at the end in the migration's
transaction (a build holds writes, not reads, back for its few seconds).

Indexes: btree on the number and the email (exact), and on the name with text_pattern_ops (prefix, whatever
the collation). On PostgreSQL also a pg_trgm GIN index for a part of a name, when the extension is there or can
be created (a contrib extension, https://www.postgresql.org/docs/current/pgtrgm.html; trusted since
PostgreSQL 13, so a database owner may create it); without it a name search matches a prefix.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import json

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


COLUMNS = ("search_number", "search_email", "search_name")


def _fill(bind) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        fields = ", ".join(f"payload ->> '{name}'" for name in PAYLOAD_FIELDS)
        # A batch's keys travel as one JSON parameter: one statement (one commit) per batch.
        write = sa.text("UPDATE xero_snapshots SET search_number = k.search_number, search_email = k.search_email,"
                        " search_name = k.search_name FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
                        " AS k(id integer, search_number text, search_email text, search_name text)"
                        " WHERE xero_snapshots.id = k.id")
    else:
        fields = ", ".join(f"json_extract(payload, '$.{name}')" for name in PAYLOAD_FIELDS)
        write = sa.text("UPDATE xero_snapshots SET search_number = :search_number, search_email = :search_email,"
                        " search_name = :search_name WHERE id = :id")
    read = sa.text(f"SELECT id, resource, {fields} FROM xero_snapshots WHERE id > :after"
                   f" AND resource IN ('invoices', 'creditnotes', 'contacts') ORDER BY id LIMIT {BATCH}")
    after = 0
    while rows := bind.execute(read, {"after": after}).all():
        updates = []
        for row_id, resource, *values in rows:
            payload = dict(zip(PAYLOAD_FIELDS, values))
            keys = {"id": row_id, "search_number": None, "search_email": None, "search_name": None}
            keys.update({column: _key(payload[name]) for column, name in FIELDS[resource].items()})
            updates.append(keys)
        bind.execute(write, {"rows": json.dumps(updates)} if postgres else updates)
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
    present = {column["name"] for column in sa.inspect(bind).get_columns("xero_snapshots")}
    for column in COLUMNS:
        if column not in present:  # a run stopped after the columns were committed
            op.add_column("xero_snapshots", sa.Column(column, sa.String(255), nullable=True))
    context = op.get_context()
    # Alembic owns the transaction when db.migrate runs it; one begun by the caller cannot be committed part-way.
    if bind.dialect.name == "postgresql" and not context._in_external_transaction:
        with context.autocommit_block():
            _fill(op.get_bind())
    else:
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
