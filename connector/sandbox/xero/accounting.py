"""Xero's accounting rules: what a write to contacts, invoices, credit notes, payments and
allocations may do, the line and document arithmetic, and the status moves (DRAFT, AUTHORISED,
PAID, VOIDED...). Each write returns ``(record, [])`` or ``(None, messages as Xero words them)``
and queues the webhook event the change causes.

Sources: the OAS-ACC spec (https://github.com/XeroAPI/Xero-OpenAPI) and
https://developer.xero.com/documentation/api/accounting/invoices,
https://developer.xero.com/documentation/api/accounting/payments,
https://developer.xero.com/documentation/api/accounting/creditnotes,
https://developer.xero.com/documentation/api/accounting/contacts,
https://developer.xero.com/documentation/api/accounting/overpayments,
https://developer.xero.com/documentation/api/accounting/prepayments,
https://developer.xero.com/documentation/api/accounting/banktransactions.

Currencies: ``CurrencyRate`` is the "Exchange rate to base currency ... e.g. 0.7500" (invoices page):
foreign units that one base unit buys, so a base amount is amount / rate. A base-currency record has
rate 1. A foreign one without a rate in the request gets the organisation's day rate (Xero: "If no rate
is specified, the XE.com day rate is used"; here ``Org.day_rates``, which tests set).
The caller holds the sandbox's lock; nothing here does I/O.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Callable

from connector.clock import Clock
from connector.sandbox.xero.formats import CENT, RATE_1, ZERO, cents, parse_body_date, to_decimal
from connector.sandbox.xero.state import (
    Allocation,
    Contact,
    Document,
    Org,
    Payment,
    ReceivedCredit,
    allocated,
    index_contact,
    numbered,
    remaining_credit,
)

# Simple NZ-style rate table; the real one is per organisation (GET /TaxRates).
TAX_RATES = {
    "OUTPUT": Decimal(15), "OUTPUT2": Decimal(15), "INPUT": Decimal(15), "INPUT2": Decimal(15),
    "NONE": Decimal(0), "EXEMPTOUTPUT": Decimal(0), "EXEMPTINPUT": Decimal(0),
    "ZERORATEDOUTPUT": Decimal(0), "ZERORATEDINPUT": Decimal(0), "EXEMPTEXPENSES": Decimal(0),
}
CONTACT_TEXT_FIELDS = (
    "ContactNumber", "AccountNumber", "Name", "FirstName", "LastName", "CompanyNumber", "EmailAddress",
    "BankAccountDetails", "TaxNumber", "TaxNumberType", "AccountsReceivableTaxType",
    "AccountsPayableTaxType", "DefaultCurrency", "Website",
)
CONTACT_READ_ONLY = ("Website",)  # settable in Xero's UI only; the API ignores it on write
INVOICE_STATUS_MOVES = {  # allowed target statuses per current status
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
    "PAID": set(),
    "VOIDED": set(),
    "DELETED": set(),
}
# What a refund may name instead of an Invoice (payments page), and how messages call it.
REFUNDABLE = {"CreditNote": "Credit note", "Overpayment": "Overpayment", "Prepayment": "Prepayment"}
RECEIVED_CREDIT_TYPES = {"RECEIVE-OVERPAYMENT": "Overpayment", "RECEIVE-PREPAYMENT": "Prepayment"}
RATE_PLACES = Decimal("0.000001")  # CurrencyRate has 6 decimal places (OAS-ACC examples)
LOCKED_BY_PAYMENT = "This document cannot be edited as it has a payment or credit note allocated to it."

# (org, eventCategory, resourceId, eventType, data or None): queues one webhook event
EmitEvent = Callable[[Org, str, str, str, "dict | None"], None]


class Books:
    """The write rules over an organisation's records, stamped with ``clock``; changes go to ``emit``."""

    def __init__(self, clock: Clock, emit: EmitEvent) -> None:
        self.clock = clock
        self.emit = emit
        # Whether applying a payment/allocation also queues an INVOICE UPDATE event (UNVERIFIED: the
        # webhooks overview does not say whether a payment counts as an invoice update).
        self.invoice_event_on_payment = False

    # ------------------------------------------------------------------ contacts

    def save_contact(self, org: Org, element: dict, *, create_only: bool = False,
                     via_api: bool = False) -> tuple[Contact | None, list[str]]:
        """``via_api``: sent over HTTP, where Xero ignores read-only elements (Website is read-only in the
        Contacts API; people set it in Xero's UI, which the Python hooks stand for)."""
        if via_api:
            element = {k: v for k, v in element.items() if k not in CONTACT_READ_ONLY}
        contact_id = element.get("ContactID")
        existing = org.contacts.get(contact_id) if contact_id else None
        if contact_id and existing is None:
            return None, [f"Contact with ID {contact_id} could not be found" if not create_only
                          else "ContactID cannot be set on a new contact"]
        if create_only and existing is not None:
            return None, ["A contact with this ContactID already exists"]
        errors = []
        fields = dict(existing.fields) if existing else {}
        for key in CONTACT_TEXT_FIELDS:
            if key in element:
                fields[key] = "" if element[key] is None else str(element[key])
        status = str(element.get("ContactStatus") or (existing.status if existing else "ACTIVE")).upper()
        name = fields.get("Name", "").strip()
        if not name:
            errors.append("The contact name must be specified.")
        elif len(name) > 255:
            errors.append("The contact name must be 255 characters or fewer.")
        elif status == "ACTIVE" and org.contacts_by_name.get(name.lower(), set()) - {contact_id}:
            errors.append(f"The contact name {name} is already assigned to another contact. "
                          "The contact name must be unique across all active contacts.")
        number = fields.get("ContactNumber")
        # ContactNumber: "max length = 50", settable only through the API (Contacts page,
        # https://developer.xero.com/documentation/api/accounting/contacts). That a PUT whose ContactNumber
        # another contact (archived ones too) holds is refused, and these messages' wording, are UNVERIFIED:
        # a real org's test would PUT two contacts with one ContactNumber, then one of 51 characters.
        if number and len(number) > 50:
            errors.append("The contact number must be 50 characters or fewer.")
        elif number and org.contacts_by_number.get(number, set()) - {contact_id}:
            errors.append(f"The contact number {number} is already assigned to another contact.")
        email = fields.get("EmailAddress", "")
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            errors.append("Email address must be valid.")
        if status not in ("ACTIVE", "ARCHIVED", "GDPRREQUEST"):
            errors.append(f"ContactStatus {status} is not valid.")
        if errors:
            return None, errors
        addresses = {t: dict(v) for t, v in (existing.addresses if existing else {}).items()}
        for address in element.get("Addresses") or []:  # merged by AddressType
            kind = str(address.get("AddressType", "STREET")).upper()
            addresses.setdefault(kind, {}).update({k: v for k, v in address.items() if k != "AddressType"})
        phones = {t: dict(v) for t, v in (existing.phones if existing else {}).items()}
        for phone in element.get("Phones") or []:
            kind = str(phone.get("PhoneType", "DEFAULT")).upper()
            phones.setdefault(kind, {}).update({k: v for k, v in phone.items() if k != "PhoneType"})
        persons = element["ContactPersons"] if "ContactPersons" in element else (existing.persons if existing else [])
        now = self.clock.now()
        if existing is None:
            contact = Contact(str(uuid.uuid4()), status, fields, addresses, phones, list(persons), now)
            org.contacts[contact.id] = contact
            self.emit(org, "CONTACT", contact.id, "CREATE", None)
        else:
            contact = existing
            index_contact(org, contact, add=False)
            contact.status, contact.fields, contact.addresses, contact.phones = status, fields, addresses, phones
            contact.persons, contact.updated = list(persons), now
            self.emit(org, "CONTACT", contact.id, "UPDATE", None)
        index_contact(org, contact, add=True)
        return contact, []

    # ------------------------------------------------------------------ invoices and credit notes

    def save_document(self, org: Org, element: dict, *, credit_note: bool, create_only: bool = False):
        id_key, number_key = ("CreditNoteID", "CreditNoteNumber") if credit_note else ("InvoiceID", "InvoiceNumber")
        store = org.credit_notes if credit_note else org.invoices
        doc_id = element.get(id_key)
        existing = store.get(doc_id) if doc_id else None
        if doc_id and (existing is None or create_only):
            return None, [f"{id_key} {doc_id} could not be found" if existing is None
                          else f"{id_key} cannot be set when creating"]
        errors: list[str] = []
        if existing is None:
            allowed_types = ("ACCRECCREDIT", "ACCPAYCREDIT") if credit_note else ("ACCREC", "ACCPAY")
            doc_type = str(element.get("Type", "")).upper()
            if doc_type not in allowed_types:
                errors.append(f"Type must be one of {', '.join(allowed_types)}")
            contact, contact_errors = self._document_contact(org, element.get("Contact"))
            errors += contact_errors
            status = str(element.get("Status", "DRAFT")).upper()
            if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
                errors.append(f"A new document cannot be created with status {status}")
        else:
            doc_type, contact, status = existing.type, org.contacts[existing.contact_id], existing.status
            target = str(element.get("Status", status)).upper()
            changes_content = any(k in element for k in ("LineItems", "LineAmountTypes", "Contact", "CurrencyCode",
                                                         "CurrencyRate"))
            locked = existing.amount_paid > 0 or existing.amount_credited > 0 or allocated(org, existing) > 0
            if status in ("VOIDED", "DELETED") or (status == "PAID" and len(set(element) - {id_key}) > 0):
                errors.append(LOCKED_BY_PAYMENT if status == "PAID" else "Invoice not of valid status for modification")
            elif target not in INVOICE_STATUS_MOVES[status]:
                errors.append(f"Cannot change status from {status} to {target}")
            elif locked and (changes_content or target == "VOIDED"):
                errors.append(LOCKED_BY_PAYMENT)
            status = target
        number = element.get(number_key)
        numbers = org.documents_by_number
        store_name = "credit_notes" if credit_note else "invoices"
        if number and doc_type in ("ACCREC", "ACCRECCREDIT") and any(
            store[i].status != "DELETED" for i in numbers.get((store_name, str(number).lower()), ()) if i != doc_id
        ):
            errors.append(f"{'Credit Note' if credit_note else 'Invoice'} # must be unique.")
        line_amount_types = str(element.get("LineAmountTypes", existing.line_amount_types if existing else "Exclusive"))
        if line_amount_types not in ("Exclusive", "Inclusive", "NoTax"):
            errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax")
        raw_lines = element.get("LineItems")
        lines: list | None = None
        if raw_lines is not None and not errors:
            lines, line_errors = compute_lines(raw_lines, line_amount_types, doc_type,
                                               existing.line_items if existing else [])
            errors += line_errors
        elif existing is not None and "LineAmountTypes" in element and not errors:
            lines, line_errors = compute_lines(existing.line_items, line_amount_types, doc_type, existing.line_items)
            errors += line_errors
        try:
            doc_date = parse_body_date(element["Date"]) if element.get("Date") else None
            due_date = parse_body_date(element["DueDate"]) if element.get("DueDate") else None
        except ValueError:
            errors.append("Date could not be parsed")
            doc_date = due_date = None
        currency = str(element.get("CurrencyCode") or (existing.currency if existing else org.currency)).upper()
        rate = None
        if existing is None or "CurrencyCode" in element or "CurrencyRate" in element:
            rate = currency_rate(org, currency, element.get("CurrencyRate"), errors)
        if errors:
            return None, errors
        now = self.clock.now()
        if existing is None:
            if not number and doc_type == "ACCREC":
                number, org.next_invoice_number = f"INV-{org.next_invoice_number:04d}", org.next_invoice_number + 1
            elif not number and doc_type == "ACCRECCREDIT":
                number, org.next_credit_note_number = f"CN-{org.next_credit_note_number:04d}", org.next_credit_note_number + 1
            doc = Document(str(uuid.uuid4()), doc_type, str(number or ""), contact.id, status, line_amount_types,
                           doc_date or now.date(), now, currency=currency, rate=rate)
            store[doc.id] = doc
            org.documents_by_contact.setdefault(contact.id, set()).add(doc.id)  # a document keeps its contact
            numbers.setdefault((store_name, doc.number.lower()), set()).add(doc.id)
            event_type = "CREATE"
        else:
            doc, event_type = existing, "UPDATE"
            doc.status, doc.line_amount_types, doc.updated = status, line_amount_types, now
            if number:
                numbers[(store_name, doc.number.lower())].discard(doc.id)
                doc.number = str(number)
                numbers.setdefault((store_name, doc.number.lower()), set()).add(doc.id)
            if doc_date:
                doc.date = doc_date
        if due_date:
            doc.due_date = due_date
        if rate is not None:
            doc.currency, doc.rate = currency, rate
        if "Reference" in element:
            doc.reference = str(element["Reference"] or "")
        if "SentToContact" in element:
            doc.sent_to_contact = bool(element["SentToContact"])
        if lines is not None:
            doc.line_items = lines
            total_up(doc)
        if credit_note:
            self.emit(org, "CREDITNOTE", doc.id, event_type, {"Type": doc.type, "Status": doc.status})
        else:
            self.emit(org, "INVOICE", doc.id, event_type, None)
        return doc, []

    def merge_contacts(self, org: Org, source_id: str, into_id: str) -> None:
        """A person merges contact ``source_id`` into ``into_id`` in Xero (a web-app action: the Accounting
        API has no merge). Xero's help: the merged contact is archived and its transactions move to the
        contact kept (https://central.xero.com/s/article/Merge-contacts); the API then shows
        ``MergedToContactID`` on it ("ID for the destination of a merged contact", Contacts:
        https://developer.xero.com/documentation/api/accounting/contacts). UNVERIFIED: that each moved
        document's UpdatedDateUTC changes and that Xero sends webhooks for them; simulated as if it did (an
        organisation where it does not needs a backfill, README)."""
        source, into = org.contacts[source_id], org.contacts[into_id]
        now = self.clock.now()
        index_contact(org, source, add=False)
        source.status, source.updated = "ARCHIVED", now
        source.fields = {**source.fields, "MergedToContactID": into.id}
        index_contact(org, source, add=True)
        self.emit(org, "CONTACT", source.id, "UPDATE", None)
        for doc_id in sorted(org.documents_by_contact.pop(source.id, set())):
            doc = org.invoices.get(doc_id) or org.credit_notes[doc_id]
            doc.contact_id, doc.updated = into.id, now
            org.documents_by_contact.setdefault(into.id, set()).add(doc.id)
            if doc_id in org.credit_notes:
                self.emit(org, "CREDITNOTE", doc.id, "UPDATE", {"Type": doc.type, "Status": doc.status})
            else:
                self.emit(org, "INVOICE", doc.id, "UPDATE", None)

    def _document_contact(self, org: Org, ref) -> tuple[Contact | None, list[str]]:
        """Contact by ContactID, else by Name; an unknown Name creates the contact, as Xero does."""
        if not isinstance(ref, dict) or not (ref.get("ContactID") or ref.get("Name")):
            return None, ["A Contact must be specified for this type of transaction"]
        if ref.get("ContactID"):
            contact = org.contacts.get(ref["ContactID"])
            return (contact, []) if contact else (None, [f"Contact with ID {ref['ContactID']} could not be found"])
        match = next((c for c in org.contacts.values()
                      if c.status == "ACTIVE" and c.fields.get("Name", "").lower() == str(ref["Name"]).lower()), None)
        if match:
            return match, []
        return self.save_contact(org, ref, create_only=True)

    # ------------------------------------------------------------------ payments and allocations

    def save_payment(self, org: Org, element: dict) -> tuple[Payment | None, list[str]]:
        if not element.get("Invoice") and any(element.get(kind) for kind in REFUNDABLE):
            return self._refund(org, element)
        ref = element.get("Invoice") or {}
        invoice = org.invoices.get(ref.get("InvoiceID", "")) or min(
            numbered(org, "invoices", ref.get("InvoiceNumber")), key=lambda i: i.created_order, default=None)
        account = element.get("Account") or {}
        errors = []
        if invoice is None:
            errors.append("Invoice could not be found")
        elif invoice.status != "AUTHORISED":
            errors.append("Payment can only be made against an Authorised invoice")
        amount = _account_and_amount(element, None if invoice is None else invoice.amount_due, errors)
        paid_on = self._date_of(element, errors)
        # A payment is in its invoice's currency, at the rate of the day it was received ("Exchange rate when
        # payment is received", payments page); without one: the day rate, else the invoice's own
        # (that fallback is UNVERIFIED).
        rate = None if invoice is None else currency_rate(
            org, invoice.currency, element.get("CurrencyRate"), errors,
            fallback=invoice.rate)
        if errors:
            return None, errors
        now = self.clock.now()
        payment = Payment(str(uuid.uuid4()), invoice.id, str(account.get("Code") or account.get("AccountID")),
                          amount, paid_on, str(element.get("Reference") or ""), "AUTHORISED", now, rate=rate)
        org.payments[payment.id] = payment
        invoice.amount_paid += amount
        self._settle(org, invoice, paid_on, now)
        return payment, []

    def _refund(self, org: Org, element: dict) -> tuple[Payment | None, list[str]]:
        """A refund: money paid back out of a credit note, an overpayment or a prepayment. The payments page
        (https://developer.xero.com/documentation/api/accounting/payments) creates one as a payment naming the
        CreditNote, Prepayment or Overpayment (by its id) instead of an Invoice, with an Account, Date and
        Amount; its PaymentType is then ARCREDITPAYMENT, ARPREPAYMENTPAYMENT or AROVERPAYMENTPAYMENT (sales
        side; AP* for bills' credits, which the sandbox does not refund). The refund lowers the credit's
        RemainingCredit; a credit refunded in full is PAID. The error wordings are UNVERIFIED (a real org would
        need a test refunding more than the remaining credit, and a draft credit note)."""
        kind = next(k for k in REFUNDABLE if element.get(k))
        store = {"CreditNote": org.credit_notes, "Overpayment": org.overpayments, "Prepayment": org.prepayments}[kind]
        credit = store.get(str((element.get(kind) or {}).get(f"{kind}ID") or ""))
        label = REFUNDABLE[kind]
        account = element.get("Account") or {}
        errors = []
        if credit is None:
            errors.append(f"{label} could not be found")
        elif credit.status != "AUTHORISED":
            errors.append(f"A refund can only be made against an Authorised {label.lower()}")
        elif kind == "CreditNote" and credit.type != "ACCRECCREDIT":
            errors.append("Refunds of bills' credit notes are not simulated")
        amount = _account_and_amount(element, None if credit is None else remaining_credit(org, credit), errors)
        paid_on = self._date_of(element, errors)
        rate = None if credit is None else currency_rate(org, credit.currency, element.get("CurrencyRate"), errors,
                                                          fallback=credit.rate)
        if errors:
            return None, errors
        now = self.clock.now()
        payment = Payment(str(uuid.uuid4()), credit.id, str(account.get("Code") or account.get("AccountID")),
                          amount, paid_on, str(element.get("Reference") or ""), "AUTHORISED", now, rate=rate,
                          kind=kind)
        org.payments[payment.id] = payment
        credit.amount_paid += amount
        self._credit_changed(org, credit, kind, now)
        return payment, []

    def _credit_changed(self, org: Org, credit, kind: str, now: datetime) -> None:
        """A credit whose remaining amount changed: PAID when none is left, AUTHORISED again when some is."""
        left = remaining_credit(org, credit)
        if left <= 0 and credit.status == "AUTHORISED":
            credit.status = "PAID"
        elif left > 0 and credit.status == "PAID":
            credit.status = "AUTHORISED"
        credit.updated = now
        if kind == "CreditNote":  # overpayments and prepayments have no webhooks
            self.emit(org, "CREDITNOTE", credit.id, "UPDATE", {"Type": credit.type, "Status": credit.status})

    def delete_payment(self, org: Org, payment_id: str) -> tuple[Payment | None, list[str]]:
        payment = org.payments.get(payment_id)
        if payment is None:
            return None, ["Payment could not be found"]
        if payment.status == "DELETED":
            return None, ["Payment has already been deleted"]
        now = self.clock.now()
        payment.status, payment.updated = "DELETED", now
        if payment.kind != "Invoice":  # a refund reversed: the credit is back
            credit = {"CreditNote": org.credit_notes, "Overpayment": org.overpayments,
                      "Prepayment": org.prepayments}[payment.kind][payment.document_id]
            credit.amount_paid -= payment.amount
            self._credit_changed(org, credit, payment.kind, now)
            return payment, []
        invoice = org.invoices[payment.document_id]
        invoice.amount_paid -= payment.amount
        self._settle(org, invoice, None, now)
        return payment, []

    def allocate(self, org: Org, credit_note_id: str, element: dict, *, kind: str = "CreditNote"
                 ) -> tuple[Allocation | None, list[str]]:
        """Apply part of a credit (``kind``: CreditNote, Overpayment or Prepayment) to an invoice of the same
        contact and currency. The invoice's AmountCredited counts all three ("Sum of all credit notes,
        over-payments and pre-payments applied to invoice", invoices page)."""
        store = {"CreditNote": org.credit_notes, "Overpayment": org.overpayments, "Prepayment": org.prepayments}[kind]
        label = {"CreditNote": "Credit note", "Overpayment": "Overpayment", "Prepayment": "Prepayment"}[kind]
        credit = store.get(credit_note_id)
        invoice = org.invoices.get((element.get("Invoice") or {}).get("InvoiceID", ""))
        errors = []
        amount = _amount(element)
        if credit is None or credit.status != "AUTHORISED":
            errors.append(f"{label} must be Authorised to be allocated")
        if invoice is None or invoice.status != "AUTHORISED":
            errors.append("Invoice must be Authorised to receive an allocation")
        elif credit is not None and invoice.contact_id != credit.contact_id:
            errors.append(f"The {label.lower()} and invoice must belong to the same contact")
        elif credit is not None and invoice.currency != credit.currency:  # wording UNVERIFIED
            errors.append(f"The {label.lower()} and invoice must be in the same currency")
        if amount is None or amount <= 0:
            errors.append("Allocation amount must be greater than zero")
        elif credit is not None and invoice is not None and not errors:
            if amount > remaining_credit(org, credit):
                errors.append(f"The amount allocated exceeds the remaining credit on the {label.lower()}")
            elif amount > invoice.amount_due:
                errors.append("The amount allocated exceeds the outstanding amount on the invoice")
        on = self._date_of(element, errors)
        if errors:
            return None, errors
        now = self.clock.now()
        allocation = Allocation(str(uuid.uuid4()), credit.id, invoice.id, amount, on, kind=kind)
        org.allocations.append(allocation)
        invoice.amount_credited += amount
        self._settle(org, invoice, on, now)
        credit.updated = now
        if remaining_credit(org, credit) <= 0:
            credit.status = "PAID"
        if kind == "CreditNote":  # overpayments and prepayments have no webhooks
            self.emit(org, "CREDITNOTE", credit.id, "UPDATE", {"Type": credit.type, "Status": credit.status})
        return allocation, []

    # ------------------------------------------------------------------ overpayments and prepayments

    def receive_credit(self, org: Org, element: dict) -> tuple[ReceivedCredit | None, list[str]]:
        """A bank transaction of Type RECEIVE-OVERPAYMENT or RECEIVE-PREPAYMENT (PUT /BankTransactions) creates
        the overpayment or prepayment, whose id the bank transaction carries (OAS-ACC ``BankTransaction``:
        OverpaymentID "will be returned on BankTransactions with a Type of SPEND-OVERPAYMENT or
        RECEIVE-OVERPAYMENT", likewise PrepaymentID). Other bank transactions are not simulated."""
        errors: list[str] = []
        credit_type = str(element.get("Type", "")).upper()
        kind = RECEIVED_CREDIT_TYPES.get(credit_type)
        if kind is None:
            return None, [f"Bank transactions of Type {credit_type or '(none)'} are not simulated"]
        contact, contact_errors = self._document_contact(org, element.get("Contact"))
        errors += contact_errors
        bank = element.get("BankAccount") or {}
        if not (bank.get("Code") or bank.get("AccountID")):
            errors.append("A bank account must be specified")
        line_amount_types = str(element.get("LineAmountTypes") or "Exclusive")
        lines, line_errors = compute_lines(element.get("LineItems") or [], line_amount_types, "ACCREC", [])
        errors += line_errors
        if not element.get("LineItems"):
            errors.append("At least one line item is required")
        currency = str(element.get("CurrencyCode") or org.currency).upper()
        rate = currency_rate(org, currency, element.get("CurrencyRate"), errors)
        on = self._date_of(element, errors)
        if errors:
            return None, errors
        tax = cents(sum((line["TaxAmount"] for line in lines), ZERO))
        line_sum = cents(sum((line["LineAmount"] for line in lines), ZERO))
        sub_total = line_sum - tax if line_amount_types == "Inclusive" else line_sum
        if sub_total + tax <= 0:
            return None, ["The total of a bank transaction must be greater than zero"]
        credit = ReceivedCredit(str(uuid.uuid4()), kind, credit_type, contact.id, "AUTHORISED", on, self.clock.now(),
                                currency, rate, line_amount_types, lines, sub_total, tax, sub_total + tax,
                                reference=str(element.get("Reference") or ""))
        (org.overpayments if kind == "Overpayment" else org.prepayments)[credit.id] = credit
        org.credits_by_contact.setdefault(contact.id, set()).add(credit.id)
        return credit, []

    def _settle(self, org: Org, doc: Document, paid_on: date | None, now: datetime) -> None:
        """Move between AUTHORISED and PAID as the amount due reaches or leaves zero."""
        if doc.amount_due <= 0 and doc.status == "AUTHORISED":
            doc.status, doc.fully_paid_on = "PAID", paid_on or now.date()
        elif doc.amount_due > 0 and doc.status == "PAID":
            doc.status, doc.fully_paid_on = "AUTHORISED", None
        doc.updated = now  # applying or removing a payment bumps the invoice's UpdatedDateUTC
        if self.invoice_event_on_payment:
            self.emit(org, "INVOICE", doc.id, "UPDATE", None)

    def _date_of(self, element: dict, errors: list[str]) -> date | None:
        """The element's Date (today when absent); a message added to ``errors`` when unreadable."""
        try:
            return parse_body_date(element["Date"]) if element.get("Date") else self.clock.now().date()
        except ValueError:
            errors.append("Date could not be parsed")
            return None


def currency_rate(org: Org, currency: str, requested, errors: list[str], *, fallback: Decimal | None = None
                  ) -> Decimal:
    """The CurrencyRate a record in ``currency`` gets: 1 in the base currency; else the requested rate,
    the organisation's day rate, or ``fallback`` (a message added to ``errors`` when there is none)."""
    if currency == org.currency:
        return RATE_1
    if requested not in (None, ""):
        try:
            rate = to_decimal(requested).quantize(RATE_PLACES, ROUND_HALF_UP)
        except (InvalidOperation, TypeError, ValueError):
            rate = ZERO
        if rate > 0:
            return rate
        errors.append("CurrencyRate must be a positive number")
        return RATE_1
    rate = org.day_rates.get(currency, fallback)
    if rate is None:  # Xero would fetch the XE.com rate; the sandbox has no feed
        errors.append(f"No exchange rate is available for {currency}")
        return RATE_1
    return rate


def _account_and_amount(element: dict, outstanding: Decimal | None, errors: list[str]) -> Decimal | None:
    """A payment's (or refund's) Account and Amount checked as Xero refuses them, against what the document
    has ``outstanding`` (None: the document was not found, so only the amount's sign is checked)."""
    account = element.get("Account") or {}
    if not (account.get("Code") or account.get("AccountID")):
        errors.append("You must specify an Account code or AccountID for the payment")
    amount = _amount(element)
    if amount is None or amount <= 0:
        errors.append("Payment amount must be greater than zero")
    elif outstanding is not None and amount > outstanding:
        errors.append("Payment amount exceeds the amount outstanding on this document")
    return amount


def _amount(element: dict) -> Decimal | None:
    try:
        return cents(element.get("Amount"))
    except (InvalidOperation, TypeError, ValueError):
        return None


def compute_lines(raw_lines: list, line_amount_types: str, doc_type: str, previous: list) -> tuple[list, list[str]]:
    """Xero's arithmetic (OAS-ACC LineItem): LineAmount = Qty × Unit × (100 − Discount%)/100, tax per line."""
    previous_by_id = {p["LineItemID"]: p for p in previous}
    default_tax = "OUTPUT" if doc_type.startswith("ACCREC") else "INPUT"
    lines, errors = [], []
    for raw in raw_lines:
        base = previous_by_id.get(raw.get("LineItemID"), {})
        raw = {**base, **raw}
        description = str(raw.get("Description") or "")
        if not description and not raw.get("ItemCode"):
            errors.append("The description field is mandatory for each line item.")
            continue
        try:
            quantity = to_decimal(raw.get("Quantity", 1)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            unit = cents(raw.get("UnitAmount", 0))
            discount_rate = to_decimal(raw.get("DiscountRate") or 0)
            discount_amount = cents(raw.get("DiscountAmount") or 0)
        except (InvalidOperation, TypeError, ValueError):
            errors.append("Line item amounts must be numbers")
            continue
        tax_type = "NONE" if line_amount_types == "NoTax" else str(raw.get("TaxType") or default_tax).upper()
        if tax_type not in TAX_RATES:
            errors.append(f"The TaxType code '{tax_type}' does not exist or cannot be used with this type of transaction.")
            continue
        gross = quantity * unit
        line_amount = cents(gross * (100 - discount_rate) / 100 - discount_amount)
        rate = TAX_RATES[tax_type]
        if line_amount_types == "Exclusive":
            tax = cents(line_amount * rate / 100)
        elif line_amount_types == "Inclusive":
            tax = cents(line_amount * rate / (100 + rate))
        else:
            tax = ZERO
        line = {"LineItemID": raw.get("LineItemID") or str(uuid.uuid4()), "Description": description,
                "Quantity": quantity, "UnitAmount": unit}
        for key in ("ItemCode", "AccountCode"):
            if raw.get(key):
                line[key] = str(raw[key])
        line.update(TaxType=tax_type, TaxAmount=tax, LineAmount=line_amount, Tracking=raw.get("Tracking") or [])
        if discount_rate:
            line["DiscountRate"] = discount_rate.quantize(CENT)
        if discount_amount:
            line["DiscountAmount"] = discount_amount
        lines.append(line)
    return lines, errors


def total_up(doc: Document) -> None:
    """SubTotal/TotalTax/Total by LineAmountTypes; Inclusive line amounts already contain the tax."""
    line_sum = sum((line["LineAmount"] for line in doc.line_items), ZERO)
    doc.total_tax = cents(sum((line["TaxAmount"] for line in doc.line_items), ZERO))
    doc.sub_total = cents(line_sum - doc.total_tax if doc.line_amount_types == "Inclusive" else line_sum)
    doc.total = cents(doc.sub_total + doc.total_tax)
    doc.total_discount = cents(sum((line["Quantity"] * line["UnitAmount"] - line["LineAmount"]
                                    for line in doc.line_items), ZERO))
