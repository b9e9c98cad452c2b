"""Records as we write them to Zoho, and which Zoho records a Xero document touches: pure, dicts in.

Used by both directions: the push (pipeline/to_zoho) writes these records; the pull (pipeline/from_zoho)
compares a person's edit with them and recognises the notification of our own write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from connector.mapping.formulas import neutralise_record
from connector.mapping.overrides import apply_field_overrides

if TYPE_CHECKING:
    from connector.mapping_config import SyncConfig


def as_written(module: str, record: dict, config: SyncConfig) -> dict:
    """The last step of mapping a record for Zoho: formulas neutralised when the config asks for it."""
    return neutralise_record(module, record) if config.neutralise_formulas else record


def zoho_contact_records(
    mapped: Mapping[str, Any], payload: Mapping[str, Any], config: SyncConfig, account_zoho_id: str | None = None
) -> tuple[dict, list[dict]]:
    """The Account and Contacts exactly as we write them (overrides applied, Account_Name lookup set)."""
    account = as_written("Accounts", apply_field_overrides(mapped["account"], payload, "Accounts",
                                                           config.field_overrides), config)
    people = [
        as_written("Contacts", apply_field_overrides({**person, "Account_Name": {"id": account_zoho_id}}, payload,
                                                     "Contacts", config.field_overrides), config)
        for person in mapped["contacts"]
    ] if account_zoho_id else []
    return account, people


def owned_projection(record: Mapping[str, Any], owned: Iterable[str]) -> dict[str, Any]:
    """The CRM-owned fields of a Zoho record, absent ones as None (what the write ledger hashes)."""
    return {name: record.get(name) or None for name in owned}


def invoice_contact_id(invoice: Mapping[str, Any]) -> str | None:
    """The Xero ContactID of an invoice's contact."""
    contact = invoice.get("Contact")
    return str(contact["ContactID"]) if isinstance(contact, Mapping) and contact.get("ContactID") else None


def primary_person_key(invoice: Mapping[str, Any]) -> str | None:
    """The id-link key of the primary contact person of an invoice's contact (as mapping/contacts.py keys it)."""
    contact_id = invoice_contact_id(invoice)
    return f"{contact_id}:primary" if contact_id else None


# A refund is a payment naming the credit it pays out of instead of an invoice; its PaymentType on the sales
# side (https://developer.xero.com/documentation/api/accounting/payments).
REFUND_TYPES = frozenset({"ARCREDITPAYMENT", "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT"})
REFUNDED_DOCUMENTS = {"creditnotes": "CreditNote", "overpayments": "Overpayment", "prepayments": "Prepayment"}


def refunded_credit(payment: Mapping[str, Any]) -> tuple[str, str] | None:
    """(resource, id) of the credit note, overpayment or prepayment a refund pays out of; None for a payment
    of an invoice."""
    if payment.get("Invoice"):
        return None
    for resource, key in REFUNDED_DOCUMENTS.items():
        document = payment.get(key) or {}
        if document.get(f"{key}ID"):
            return resource, str(document[f"{key}ID"])
    return None


def touched_by(resource: str, payload: Mapping[str, Any]) -> tuple[list[str], str | None, bool]:
    """(invoice ids, contact id, is it a sales document) of a Xero payment, credit note, overpayment or
    prepayment (the last three list the invoices they are allocated to in ``Allocations``)."""
    if resource == "payments":
        invoice = payload.get("Invoice") or {}
        if not invoice and (refunded := refunded_credit(payload)):  # a refund: no invoice, its credit's contact
            document = payload.get(REFUNDED_DOCUMENTS[refunded[0]]) or {}
            return [], (document.get("Contact") or {}).get("ContactID"), payload.get("PaymentType") in REFUND_TYPES
        contact = (invoice.get("Contact") or {}).get("ContactID")
        sales = invoice.get("Type", "ACCREC") == "ACCREC"
        return ([str(invoice["InvoiceID"])] if invoice.get("InvoiceID") else []), contact, sales
    invoices = [str(a["Invoice"]["InvoiceID"]) for a in payload.get("Allocations") or []
                if (a.get("Invoice") or {}).get("InvoiceID")]
    contact = (payload.get("Contact") or {}).get("ContactID")
    sales_type = {"creditnotes": "ACCRECCREDIT", "overpayments": "RECEIVE-OVERPAYMENT",
                  "prepayments": "RECEIVE-PREPAYMENT"}.get(resource, "ACCRECCREDIT")
    return invoices, contact, payload.get("Type", sales_type) == sales_type
