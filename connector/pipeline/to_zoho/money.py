"""The payments, credit-notes, overpayments and prepayments round. None has a Zoho module: each re-reads from Xero and re-pushes
the invoices it touches (amount paid, amount due, status), then re-pushes the contact's Account, whose
money figures come from the stored documents (no contact re-read). A refund (a payment out of a credit note,
overpayment or prepayment) re-reads the credit it lowers instead, and is noted on the Account (ZohoPush.related)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from connector.mapping.zoho_records import refunded_credit, touched_by
from connector.pipeline.common import RECORD_TYPES
from connector.pipeline.to_zoho.core import RETRYABLE_CODES, WAITING_FOR_CONTACT, BatchOutcome, PushCore
from connector.store import audit as stages

PushRecords = Callable[[list[str]], BatchOutcome]  # ZohoPush.contacts or ZohoPush.invoices


def push_related(push: PushCore, resource: str, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None,
                 *, contacts: PushRecords, invoices: PushRecords) -> BatchOutcome:
    """Payments / credit notes / overpayments / prepayments: re-read and re-push the invoices and contacts
    they change."""
    record_type = RECORD_TYPES[resource]
    sync_ids = dict(sync_ids or {})
    outcome = BatchOutcome()
    touches: dict[str, tuple[list[str], str | None]] = {}
    refunded: dict[str, list[str]] = {}  # resource -> the credits refunds paid out of
    for xid, snapshot in push.fetched(resource, record_type, xero_ids, sync_ids, outcome).items():
        touched_invoices, contact, sales = touched_by(resource, snapshot.payload)
        if resource == "payments" and (credit := refunded_credit(snapshot.payload)):
            refunded.setdefault(credit[0], []).append(credit[1])
        if not sales and not push.config.sync_bills:
            push.audit_stage(record_type, xid, sync_ids, stages.SKIPPED, {"reason": "bills (ACCPAY) are not synced"})
            outcome.skipped.append(xid)
            continue
        touches[xid] = (touched_invoices, contact)
        push.audit_stage(record_type, xid, sync_ids, stages.MAPPED, {"invoices": touched_invoices, "contact": contact})
    invoice_ids = list(dict.fromkeys(i for touched, _ in touches.values() for i in touched))
    contact_ids = list(dict.fromkeys(c for _, c in touches.values() if c))
    if push.refresh is not None:
        # An invoice's amounts paid and due are only current in a fresh read from Xero; the contact's
        # money figures are computed from the stored documents, so the contact is not read again.
        push.refresh("invoices", invoice_ids)
        for credit_resource, credit_ids in refunded.items():  # a refund lowers its credit's RemainingCredit
            push.refresh(credit_resource, list(dict.fromkeys(credit_ids)))
    invoices_outcome = invoices(invoice_ids) if invoice_ids and push.invoices_enabled else BatchOutcome()
    contacts_outcome = contacts(contact_ids) if contact_ids else BatchOutcome()
    for xid, (touched_invoices, contact) in touches.items():
        problems = {i: invoices_outcome.failed[i] for i in touched_invoices if i in invoices_outcome.failed}
        if contact in contacts_outcome.failed:
            problems[contact] = contacts_outcome.failed[contact]
        detail = {"invoices": touched_invoices, "contact": contact}
        if problems:
            if any(p.get("error_code") in RETRYABLE_CODES | {WAITING_FOR_CONTACT} for p in problems.values()):
                outcome.retry.append(xid)
            push.fail(record_type, xid, sync_ids, outcome, {**detail, "reason": "a related record failed",
                                                            "related": problems})
            continue
        wrote = any(i in invoices_outcome.written for i in touched_invoices) or contact in contacts_outcome.written
        (outcome.written if wrote else outcome.skipped).append(xid)
        push.audit_stage(record_type, xid, sync_ids, stages.WRITTEN if wrote else stages.SKIPPED, detail)
    return outcome
