"""Names shared by every stage of the pipeline."""

from __future__ import annotations

import os

# Webhook eventCategory → our resource name (the Xero endpoint, lower-case).
XERO_CATEGORIES = {"CONTACT": "contacts", "INVOICE": "invoices", "CREDITNOTE": "creditnotes"}
RECORD_TYPES = {"contacts": "contact", "invoices": "invoice", "creditnotes": "creditnote", "payments": "payment",
                "overpayments": "overpayment", "prepayments": "prepayment"}
ID_FIELDS = {"contacts": "ContactID", "invoices": "InvoiceID", "creditnotes": "CreditNoteID", "payments": "PaymentID",
             "overpayments": "OverpaymentID", "prepayments": "PrepaymentID"}


def new_sync_ids(count: int) -> list[str]:
    """``count`` fresh sync ids (32 random hex digits each) from one read of the system's randomness:
    a webhook of 50 events costs one system call, not 50."""
    digits = os.urandom(16 * count).hex()
    return [digits[start:start + 32] for start in range(0, 32 * count, 32)]


def new_sync_id() -> str:
    return new_sync_ids(1)[0]
