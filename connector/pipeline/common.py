"""Names shared by every stage of the pipeline."""

from __future__ import annotations

import os
import time

# Webhook eventCategory → our resource name (the Xero endpoint, lower-case).
XERO_CATEGORIES = {"CONTACT": "contacts", "INVOICE": "invoices", "CREDITNOTE": "creditnotes"}
RECORD_TYPES = {"contacts": "contact", "invoices": "invoice", "creditnotes": "creditnote", "payments": "payment",
                "overpayments": "overpayment", "prepayments": "prepayment"}
ID_FIELDS = {"contacts": "ContactID", "invoices": "InvoiceID", "creditnotes": "CreditNoteID", "payments": "PaymentID",
             "overpayments": "OverpaymentID", "prepayments": "PrepaymentID"}


# A trip's sync id is 32 hex digits. One the receiver starts for a webhook carries when it was accepted, laid
# out as a UUIDv7 is: milliseconds since the epoch in the first 12 digits, then "7". Every other trip's is
# random with "4" there. The receipt time so travels with the record, through the buffers and tasks, to its
# Zoho write (the webhook-to-Zoho delay in connector/metrics.py) without a read of the audit trail.
_MARK_AT = 12
WEBHOOK_MARK, RANDOM_MARK = "7", "4"
# A marked id whose time is further back than this (or ahead) is not trusted: an id of a release before the
# mark, whose random digit happened to be "7".
_PLAUSIBLE_AGE_SECONDS = 30 * 86400.0


def new_sync_ids(count: int) -> list[str]:
    """``count`` fresh sync ids (32 hex digits each, random but for the mark) from one read of the system's
    randomness: a webhook of 50 events costs one system call, not 50."""
    digits = os.urandom(16 * count).hex()
    return [f"{digits[start:start + _MARK_AT]}{RANDOM_MARK}{digits[start + _MARK_AT + 1:start + 32]}"
            for start in range(0, 32 * count, 32)]


def new_sync_id() -> str:
    return new_sync_ids(1)[0]


def webhook_sync_ids(count: int, received_at: float | None = None) -> list[str]:
    """``count`` sync ids for the events of one webhook delivery, each carrying ``received_at`` (seconds since
    the epoch; now by default)."""
    stamp = f"{int((time.time() if received_at is None else received_at) * 1000):012x}"[-_MARK_AT:]
    return [f"{stamp}{WEBHOOK_MARK}{random[_MARK_AT + 1:]}" for random in new_sync_ids(count)]


def webhook_received_at(sync_id: str | None, *, now: float) -> float | None:
    """When the receiver accepted the webhook that started this trip (seconds since the epoch), or None when
    a webhook did not start it (a poll, a replay, a backfill) or the time is implausible."""
    if not sync_id or len(sync_id) != 32 or sync_id[_MARK_AT] != WEBHOOK_MARK:
        return None
    try:
        received = int(sync_id[:_MARK_AT], 16) / 1000
    except ValueError:
        return None
    return received if 0 <= now - received <= _PLAUSIBLE_AGE_SECONDS else None
