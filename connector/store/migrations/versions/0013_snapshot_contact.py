"""Each Xero snapshot names the contact it belongs to (``contact_id``), indexed, so a customer's money
figures read all their invoices, credit notes and payments in one query instead of one per record.

Existing rows are filled from their stored JSON, with the same paths the store uses on every upsert
(connector/store/snapshots.py ``contact_of``): a contact is its own ``ContactID``; an invoice, credit
note, overpayment or prepayment has ``Contact.ContactID``; a payment has it on the document it pays.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Where a payment names its contact, in order: the document it pays (one of these is set).
PAYMENT_DOCUMENTS = ("Invoice", "CreditNote", "Overpayment", "Prepayment")


def _fill_sql(dialect: str) -> str:
    if dialect == "postgresql":
        def path(*keys: str) -> str:
            return "payload #>> '{" + ",".join(keys) + "}'"
    else:
        def path(*keys: str) -> str:
            return "json_extract(payload, '$." + ".".join(keys) + "')"
    payment = ", ".join(path(document, "Contact", "ContactID") for document in PAYMENT_DOCUMENTS)
    return ("UPDATE xero_snapshots SET contact_id = CASE resource"
            f" WHEN 'contacts' THEN {path('ContactID')}"
            f" WHEN 'payments' THEN COALESCE({payment})"
            f" ELSE {path('Contact', 'ContactID')} END")


def upgrade() -> None:
    op.add_column("xero_snapshots", sa.Column("contact_id", sa.String(64), nullable=True))
    op.execute(_fill_sql(op.get_bind().dialect.name))
    op.create_index("ix_xero_snapshots_contact", "xero_snapshots", ["connection_id", "contact_id", "resource"])


def downgrade() -> None:
    op.drop_index("ix_xero_snapshots_contact", table_name="xero_snapshots")
    with op.batch_alter_table("xero_snapshots") as batch:
        batch.drop_column("contact_id")
