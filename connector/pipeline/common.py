"""Names shared by every stage of the pipeline."""

from __future__ import annotations

import uuid

# Webhook eventCategory → our resource name (the Xero endpoint, lower-case).
XERO_CATEGORIES = {"CONTACT": "contacts", "INVOICE": "invoices", "CREDITNOTE": "creditnotes"}
RECORD_TYPES = {"contacts": "contact", "invoices": "invoice", "creditnotes": "creditnote", "payments": "payment"}
ID_FIELDS = {"contacts": "ContactID", "invoices": "InvoiceID", "creditnotes": "CreditNoteID", "payments": "PaymentID"}


def new_sync_id() -> str:
    return uuid.uuid4().hex
