"""What one Xero organisation holds: contacts, invoices, credit notes, payments, overpayments,
prepayments and allocations,
with the indexes that keep lookups by name, number and contact from scanning, and the derived
amounts (allocated, remaining credit) that both the rules and the renderers read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from connector.sandbox.xero.formats import RATE_1, ZERO

_CREATION_ORDER = itertools.count()  # lists filtered by id keep the order in which records were created


class XeroValidationError(ValueError):
    """A write the real API would refuse with a ValidationException; ``messages`` as Xero words them."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass
class Contact:
    id: str
    status: str
    fields: dict
    addresses: dict
    phones: dict
    persons: list
    updated: datetime
    groups: list = field(default_factory=list)
    created_order: int = field(default_factory=lambda: next(_CREATION_ORDER))


@dataclass
class Document:
    """An invoice or a credit note (they share line items and totals)."""

    id: str
    type: str
    number: str
    contact_id: str
    status: str
    line_amount_types: str
    date: date
    updated: datetime
    due_date: date | None = None
    reference: str = ""
    currency: str = "NZD"
    rate: Decimal = RATE_1  # CurrencyRate: foreign units one base unit buys (1 in the base currency)
    line_items: list = field(default_factory=list)
    sub_total: Decimal = ZERO
    total_tax: Decimal = ZERO
    total: Decimal = ZERO
    total_discount: Decimal = ZERO
    amount_paid: Decimal = ZERO
    amount_credited: Decimal = ZERO
    fully_paid_on: date | None = None
    sent_to_contact: bool = False
    created_order: int = field(default_factory=lambda: next(_CREATION_ORDER))

    @property
    def is_credit_note(self) -> bool:
        return self.type.endswith("CREDIT")

    @property
    def amount_due(self) -> Decimal:
        return self.total - self.amount_paid - self.amount_credited


@dataclass
class Payment:
    """A payment on an invoice, or a refund paid out of a credit note, an overpayment or a prepayment
    (https://developer.xero.com/documentation/api/accounting/payments: a payment names one of Invoice,
    CreditNote, Prepayment or Overpayment)."""

    id: str
    document_id: str  # the id of the invoice paid, or of the credit refunded
    account_code: str
    amount: Decimal
    date: date
    reference: str
    status: str
    updated: datetime
    rate: Decimal = RATE_1  # the rate on the payment day; Amount is in the invoice's currency
    kind: str = "Invoice"  # Invoice | CreditNote | Overpayment | Prepayment: what ``document_id`` names


@dataclass
class ReceivedCredit:
    """An overpayment or a prepayment received from a customer: money held as credit until allocated to
    invoices (https://developer.xero.com/documentation/api/accounting/overpayments,
    https://developer.xero.com/documentation/api/accounting/prepayments), or refunded (a Payment naming it)."""

    id: str
    kind: str  # "Overpayment" | "Prepayment": the resource, and the prefix of its id field
    type: str  # RECEIVE-OVERPAYMENT | RECEIVE-PREPAYMENT
    contact_id: str
    status: str  # AUTHORISED, PAID (fully allocated), VOIDED
    date: date
    updated: datetime
    currency: str
    rate: Decimal
    line_amount_types: str
    line_items: list
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    reference: str = ""
    amount_paid: Decimal = ZERO  # refunded: keeps remaining_credit one formula
    created_order: int = field(default_factory=lambda: next(_CREATION_ORDER))


@dataclass
class Allocation:
    id: str
    credit_note_id: str  # the credit's id: a credit note's, an overpayment's or a prepayment's
    invoice_id: str
    amount: Decimal
    date: date
    kind: str = "CreditNote"  # CreditNote | Overpayment | Prepayment


@dataclass
class Org:
    id: str
    name: str
    created: datetime
    currency: str = "NZD"  # BaseCurrency: a record in it has CurrencyRate 1 (accounting.py ``currency_rate``)
    # GET /Organisation's settings (https://developer.xero.com/documentation/api/accounting/organisation):
    # the plan (``Class``), the country and the rest of what the fit report reads.
    plan: str = "STANDARD"
    country: str = "NZ"
    edition: str = "BUSINESS"
    organisation_type: str = "COMPANY"
    timezone: str = "NEWZEALANDSTANDARDTIME"
    financial_year_end: tuple[int, int] = (31, 3)  # (day, month)
    contacts: dict = field(default_factory=dict)
    # Indexes for the uniqueness checks, so an org of tens of thousands of contacts is seeded in seconds.
    contacts_by_name: dict = field(default_factory=dict)  # lower-case Name of ACTIVE contacts -> ids
    contacts_by_number: dict = field(default_factory=dict)  # ContactNumber -> ids
    invoices: dict = field(default_factory=dict)
    credit_notes: dict = field(default_factory=dict)
    # A contact's invoices and credit notes (ids), and documents by lower-case number: rendering a
    # contact's balances, listing by ContactIDs and checking a number's uniqueness scan nothing.
    documents_by_contact: dict = field(default_factory=dict)
    documents_by_number: dict = field(default_factory=dict)  # ("invoices"|"credit_notes", number) -> ids
    payments: dict = field(default_factory=dict)
    overpayments: dict = field(default_factory=dict)
    prepayments: dict = field(default_factory=dict)
    credits_by_contact: dict = field(default_factory=dict)  # contact id -> its overpayments' and prepayments' ids
    allocations: list = field(default_factory=list)
    # The rate a foreign document or payment gets when the request names none (Xero uses the XE.com day
    # rate; here a table tests set). Currency code -> CurrencyRate.
    day_rates: dict = field(default_factory=dict)
    next_invoice_number: int = 1
    next_credit_note_number: int = 1


def index_contact(org: Org, contact: Contact, *, add: bool) -> None:
    keys = [(org.contacts_by_number, contact.fields.get("ContactNumber"))]
    if contact.status == "ACTIVE":
        keys.append((org.contacts_by_name, contact.fields.get("Name", "").lower()))
    for index, key in keys:
        if key:
            ids = index.setdefault(key, set())
            ids.add(contact.id) if add else ids.discard(contact.id)


def numbered(org: Org, store_name: str, number) -> list[Document]:
    """The documents (``store_name``: invoices or credit_notes) whose number is exactly ``number``."""
    if not number:
        return []
    store = getattr(org, store_name)
    ids = org.documents_by_number.get((store_name, str(number).lower()), ())
    return [store[i] for i in ids if store[i].number == number]


def received_credits(org: Org, contact_id: str) -> list[ReceivedCredit]:
    """A contact's overpayments and prepayments, in the order they were received."""
    ids = org.credits_by_contact.get(contact_id, ())
    found = [org.overpayments.get(i) or org.prepayments[i] for i in ids]
    return sorted(found, key=lambda c: c.created_order)


def allocated(org: Org, doc: Document | ReceivedCredit) -> Decimal:
    return sum((a.amount for a in org.allocations if a.credit_note_id == doc.id), ZERO)


def remaining_credit(org: Org, doc: Document | ReceivedCredit) -> Decimal:
    return doc.total - allocated(org, doc) - doc.amount_paid
