"""A customer's money, from stored Xero documents. Pure: dicts in, a dict out, Decimal, no I/O.

``money_figures`` takes any set of sales documents (one contact's for an Account; a deal's linked
invoices for a Deal) and gives: outstanding, overdue, total invoiced, credit available, last invoice
date, last payment date and amount, and a payment status, all in the organisation's base currency.

Decisions (the why, in one place):
- Which documents count. Xero's contact ``Balances`` are "the raw AccountsReceivable (sales invoices)
  ... outstanding and overdue amounts" (https://developer.xero.com/documentation/api/accounting/contacts,
  schema ``Balances`` in Xero's OpenAPI). Only approved documents post to the ledger: DRAFT and
  SUBMITTED invoices are not in accounts receivable, VOIDED and DELETED never are
  (https://central.xero.com/s/article/Invoice-statuses). So outstanding/overdue count AUTHORISED
  sales invoices (PAID ones have nothing due) and total invoiced counts AUTHORISED and PAID. ACCPAY
  documents (bills) are never a customer's money.
- Credit. Xero's own example contact shows Overdue above Outstanding (760.00 vs 920.00 in the
  Contacts examples): unallocated credit lowers Outstanding, and credit has no due date, so it never
  lowers Overdue. Outstanding = Σ AmountDue of authorised invoices − Σ RemainingCredit of authorised
  credit notes, overpayments and prepayments. That overpayments and prepayments count in Balances
  like credit notes is UNVERIFIED (the docs do not say); the Xero sandbox counts them so.
- Overdue: AmountDue of authorised invoices whose DueDate is before ``today`` (due today is not yet
  overdue). ``today`` is the organisation's calendar day; the caller decides it.
- Currency. Balances are "not converted to base currency" (same schema), which sums unlike units;
  these figures convert each document to base currency instead, so they equal Balances for a
  single-currency customer and are meaningful for a mixed one. Xero's ``CurrencyRate`` is the
  number of foreign-currency units one base unit buys ("1 NZD = 0.75 USD" is rate 0.75; the API
  describes it as "Exchange rate to base currency ... e.g. 0.7500",
  https://developer.xero.com/documentation/api/accounting/invoices), so base = amount / rate. A
  document in the base currency (or with no CurrencyCode) uses 1 whatever rate it carries. When the
  base currency is not known (``base_currency=None``), a document's own CurrencyRate converts it and
  a missing rate counts as 1: Xero gives base-currency documents CurrencyRate 1 (its OpenAPI examples;
  UNVERIFIED for every document type), so no GET /Organisation is needed for the figures.
- Rounding: each document's base amount is rounded to the cent (half-up, as ``to_money``) before
  summing, as Xero shows a base amount per document; sums of cents stay exact.
- Payments. The last payment is the latest-dated authorised payment received: payments on sales
  invoices (from the payments list, and the invoices' embedded ``Payments[]`` for any the list has
  not delivered yet; the list's record wins, so a DELETED payment is not counted) and overpayments /
  prepayments received. Several payments on that same day are one figure (their sum). Refunds out of a
  credit note, an overpayment or a prepayment (ARCREDITPAYMENT, AROVERPAYMENTPAYMENT, ARPREPAYMENTPAYMENT)
  are money paid out, not received, and are left out.
- Status, for a person at a glance: "Overdue" when anything is overdue, else "Outstanding" when any
  invoice has money due, else "Paid up"; "No invoices" when no invoice counts at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connector.errors import DataError
from connector.mapping.xero_values import CENT, clean_text, parse_xero_day, to_decimal, to_money, xero_deep_link

__all__ = [
    "NO_INVOICES", "OUTSTANDING", "OVERDUE", "PAID_UP", "PAYMENT_STATUSES",
    "MONEY_DOCUMENT_KEYS", "contact_xero_link", "money_figures", "to_base",
]

PAID_UP = "Paid up"
OUTSTANDING = "Outstanding"
OVERDUE = "Overdue"
NO_INVOICES = "No invoices"
PAYMENT_STATUSES = (OVERDUE, OUTSTANDING, PAID_UP, NO_INVOICES)

ZERO = Decimal("0.00")
_POSTED = {"AUTHORISED", "PAID"}
_SALES_INVOICE = "ACCREC"
_SALES_CREDIT = "ACCRECCREDIT"
_RECEIVED_CREDIT_TYPES = {"RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT", "AROVERPAYMENT", "ARPREPAYMENT"}
# Payments that bring money in against a sales document. ARCREDITPAYMENT, AROVERPAYMENTPAYMENT and
# ARPREPAYMENTPAYMENT are refunds paid out of a credit note, an overpayment or a prepayment
# (https://developer.xero.com/documentation/api/accounting/payments); an overpayment or prepayment received
# counts from its own document.
_RECEIVED_PAYMENT_TYPES = {"ACCRECPAYMENT"}

# Every top-level key money_figures reads of any document it takes (nested values are read whole). A store
# may hand it documents cut down to these keys: the figures are the same, and the rest is not decoded.
# tests/mapping/test_money_document_keys.py records the keys read and fails when one is missing here.
MONEY_DOCUMENT_KEYS = (
    "Type", "Status", "Date", "DueDate", "Total", "AmountDue", "RemainingCredit", "Amount", "CurrencyCode",
    "CurrencyRate", "Payments", "Invoice", "PaymentType",
    "InvoiceID", "CreditNoteID", "OverpaymentID", "PrepaymentID", "PaymentID",
)


def contact_xero_link(contact_id: str, *, base: str = "https://go.xero.com", short_code: str | None = None) -> str:
    """The link that opens this contact in Xero (``/Contacts/View/<ContactID>``, Xero's "Deep link to
    Xero" guide: https://developer.xero.com/documentation/guides/how-to-guides/deep-link-xero/)."""
    return xero_deep_link(f"/Contacts/View/{contact_id}", base=base, short_code=short_code)


def to_base(amount: object, *, currency: object, rate: object, base_currency: str | None, field: str) -> Decimal:
    """``amount`` in base currency, rounded to the cent: ``amount / rate`` for a foreign document."""
    value = to_decimal(amount, field=field)
    code = clean_text(currency, field=f"{field}.CurrencyCode")
    if base_currency is not None and (code is None or code == base_currency):
        return to_money(value, field=field)
    if rate is None or rate == "":
        if base_currency is None:
            return to_money(value, field=field)
        raise DataError(f"{field}: a {code} document without CurrencyRate", field=field)
    divisor = to_decimal(rate, field=f"{field}.CurrencyRate")
    if divisor <= 0:
        raise DataError(f"{field}: CurrencyRate must be positive, got {rate!r}", field=field)
    return (value / divisor).quantize(CENT, rounding=ROUND_HALF_UP)


def money_figures(
    *,
    invoices: Iterable[Mapping[str, Any]],
    credit_notes: Iterable[Mapping[str, Any]] = (),
    payments: Iterable[Mapping[str, Any]] = (),
    overpayments: Iterable[Mapping[str, Any]] = (),
    prepayments: Iterable[Mapping[str, Any]] = (),
    base_currency: str | None,
    today: date,
) -> dict[str, Any]:
    """The money figures of a set of Xero sales documents, in ``base_currency`` (see the module doc).

    Returns ``outstanding``, ``overdue``, ``total_invoiced``, ``credit_available`` (Decimal, 2 dp),
    ``last_invoice_date`` / ``last_payment_date`` (date or None), ``last_payment_amount`` (Decimal or
    None), ``payment_status`` (one of PAYMENT_STATUSES) and ``currency`` (the base currency, as given).
    Documents of other types (bills, supplier credit) and statuses are ignored.
    """
    due = overdue = invoiced = credit = ZERO
    counted = 0
    last_invoice: date | None = None
    embedded: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}

    for index, invoice in enumerate(invoices):
        if invoice.get("Type") != _SALES_INVOICE or invoice.get("Status") not in _POSTED:
            continue
        field = f"Invoice[{invoice.get('InvoiceID', index)}]"
        counted += 1
        invoiced += _base(invoice, "Total", base_currency, field)
        day = parse_xero_day(invoice.get("Date"), field=f"{field}.Date")
        if day is not None and (last_invoice is None or day > last_invoice):
            last_invoice = day
        for paid in invoice.get("Payments") or ():
            if paid.get("PaymentID"):
                embedded[str(paid["PaymentID"])] = (paid, invoice)
        if invoice.get("Status") != "AUTHORISED":
            continue
        amount_due = _base(invoice, "AmountDue", base_currency, field)
        due += amount_due
        due_day = parse_xero_day(invoice.get("DueDate"), field=f"{field}.DueDate")
        if due_day is not None and due_day < today:
            overdue += amount_due

    for index, note in enumerate(credit_notes):
        if note.get("Type") == _SALES_CREDIT and note.get("Status") == "AUTHORISED":
            credit += _base(note, "RemainingCredit", base_currency, f"CreditNote[{note.get('CreditNoteID', index)}]")

    received: list[tuple[date, Decimal]] = []
    for kind, documents in (("Overpayment", overpayments), ("Prepayment", prepayments)):
        for index, document in enumerate(documents):
            if document.get("Type") not in _RECEIVED_CREDIT_TYPES or document.get("Status") not in _POSTED:
                continue
            field = f"{kind}[{document.get(kind + 'ID', index)}]"
            if document.get("Status") == "AUTHORISED":
                credit += _base(document, "RemainingCredit", base_currency, field)
            day = parse_xero_day(document.get("Date"), field=f"{field}.Date")
            if day is not None:
                received.append((day, _base(document, "Total", base_currency, field)))

    received += _payments_received(payments, embedded, base_currency)
    last_payment = max((day for day, _ in received), default=None)
    last_amount = None if last_payment is None else sum(
        (amount for day, amount in received if day == last_payment), ZERO)

    if counted == 0:
        status = NO_INVOICES
    elif overdue > 0:
        status = OVERDUE
    elif due > 0:
        status = OUTSTANDING
    else:
        status = PAID_UP
    return {
        "outstanding": due - credit,
        "overdue": overdue,
        "total_invoiced": invoiced,
        "credit_available": credit,
        "last_invoice_date": last_invoice,
        "last_payment_date": last_payment,
        "last_payment_amount": last_amount,
        "payment_status": status,
        "currency": base_currency,
    }


def _base(document: Mapping[str, Any], key: str, base_currency: str | None, field: str) -> Decimal:
    value = document.get(key)
    if value is None or value == "":
        return ZERO
    return to_base(value, currency=document.get("CurrencyCode"), rate=document.get("CurrencyRate"),
                   base_currency=base_currency, field=f"{field}.{key}")


def _payments_received(
    payments: Iterable[Mapping[str, Any]],
    embedded: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]],
    base_currency: str | None,
) -> list[tuple[date, Decimal]]:
    """(day, base amount) of each live payment received; a listed payment overrides its embedded copy."""
    found: dict[str, tuple[date, Decimal] | None] = {}
    for index, payment in enumerate(payments):
        payment_id = str(payment.get("PaymentID") or f"#{index}")
        field = f"Payment[{payment_id}]"
        invoice = payment.get("Invoice") or {}
        kind = payment.get("PaymentType") or ("ACCRECPAYMENT" if invoice.get("Type") == _SALES_INVOICE else None)
        if payment.get("Status", "AUTHORISED") != "AUTHORISED" or kind not in _RECEIVED_PAYMENT_TYPES:
            found[payment_id] = None  # deleted, or not money received: its embedded copy must not count
            continue
        found[payment_id] = _dated_amount(payment, invoice.get("CurrencyCode"), base_currency, field)
    for payment_id, (payment, invoice) in embedded.items():
        if payment_id not in found:
            found[payment_id] = _dated_amount(payment, invoice.get("CurrencyCode"), base_currency,
                                              f"Invoice[{invoice.get('InvoiceID')}].Payments[{payment_id}]")
    return [value for value in found.values() if value is not None]


def _dated_amount(payment: Mapping[str, Any], currency: object, base_currency: str | None, field: str):
    day = parse_xero_day(payment.get("Date"), field=f"{field}.Date")
    if day is None:
        return None
    # A payment's Amount is in its invoice's currency; its CurrencyRate is the rate on the payment day.
    amount = to_base(payment.get("Amount", 0), currency=currency, rate=payment.get("CurrencyRate"),
                     base_currency=base_currency, field=f"{field}.Amount")
    return day, amount
