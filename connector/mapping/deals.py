"""Deals: which deal an invoice belongs to, a deal's money, and each payment as a note. Pure: dicts in,
dicts out, no I/O.

Which deal. An ordered rule list (mapping.yaml ``deals.rules``); the first rule that names exactly one
deal decides, and the decision says which rule made it, so the audit trail can show it. Never a guess:
a rule that finds two candidates decides nothing.

- ``kept``: the invoice's deal lookup in Zoho is already set (by us earlier, by ``connector deals link``
  or by a person in Zoho): it stays, whatever the other rules would say. A link we made that a person
  has since emptied in Zoho stays empty (``cleared_in_zoho``): the connector never relinks it by itself.
  Always the first rule (mapping_config.py refuses a list without it first). One exception: when the
  invoice moved to another customer in Xero, a link the connector's own rule made to the former
  customer's deal is dropped and the rules decide again (a person's link stays, whatever the customer).
- ``reference``: the Xero invoice's ``Reference`` names a deal: the first group of
  ``deals.reference_pattern`` (by default a Zoho record id, 18 or 19 digits: UNVERIFIED that every Zoho id
  has that length) is the id of a deal of the invoice's account.
- ``sales_order``: the Zoho invoice's standard ``Sales_Order`` lookup names a sales order whose
  ``Deal_Name`` is set (Zoho's Sales Orders carry a Deal_Name lookup; Invoices do not).
- ``only_open_deal``: the invoice's account has exactly one deal that is not in a closed stage.
Otherwise the invoice stays unassigned, with the reason each rule gave, for a person to link.

A deal's money is ``money.money_figures`` over its linked invoices (base currency, voided and deleted
invoices left out) plus what was paid and credited on them (``AmountPaid``, ``AmountCredited``).

Each Xero payment, and each credit note allocated, on an invoice is one Zoho Note on that invoice
(Zoho has no Payments module; Notes attach to any record: https://www.zoho.com/crm/developer/docs/api/create-notes.html),
keyed by the Xero payment id (credit note: its id and the invoice's), so a replay finds the note it wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from connector.mapping.money import ZERO, money_figures, to_base
from connector.mapping.xero_values import parse_xero_day, to_money, xero_deep_link
from connector.mapping.zoho_records import REFUND_TYPES, REFUNDED_DOCUMENTS, refunded_credit

RULES = ("kept", "reference", "sales_order", "only_open_deal")
DEFAULT_RULES = RULES
DEFAULT_REFERENCE_PATTERN = r"(?<!\d)(\d{18,19})(?!\d)"
# Zoho's default closed stages (help page "Standard Fields in Deals"; an org's own stages: UNVERIFIED).
DEFAULT_CLOSED_STAGES = ("Closed Won", "Closed Lost", "Closed Lost to Competition")
CLEARED_IN_ZOHO = "cleared_in_zoho"
# The rules that link by themselves: a link one of them made is the connector's own, not a person's.
AUTOMATIC_RULES = ("reference", "sales_order", "only_open_deal")
UNASSIGNED = "unassigned"

# The Deal's figures and the Zoho field each goes to by default (mapping.yaml ``deals.fields`` renames).
DEAL_MONEY_FIELDS = {
    "invoiced": "Xero_Invoiced", "paid": "Xero_Paid", "outstanding": "Xero_Outstanding",
    "credited": "Xero_Credited", "last_payment_date": "Xero_Last_Payment_Date", "payment_status": "Xero_Payment_Status",
}
DEAL_MONEY_TYPES = {"invoiced": "currency", "paid": "currency", "outstanding": "currency", "credited": "currency",
                    "last_payment_date": "date", "payment_status": "text"}


def referenced_deal_ids(reference: object, pattern: str = DEFAULT_REFERENCE_PATTERN) -> list[str]:
    """The deal ids a Xero Reference names (first group of each match), in order, once each."""
    if not isinstance(reference, str) or not reference:
        return []
    found = [m.group(1) if m.groups() else m.group(0) for m in re.finditer(pattern, reference)]
    return list(dict.fromkeys(found))


def decide_deal(
    invoice: Mapping[str, Any],
    *,
    zoho_deal: str | None,
    stored: Mapping[str, Any] | None,
    account_id: str | None,
    deals: Mapping[str, Mapping[str, Any]],
    sales_order_deal: str | None = None,
    rules: Sequence[str] = DEFAULT_RULES,
    reference_pattern: str = DEFAULT_REFERENCE_PATTERN,
    closed_stages: Iterable[str] = DEFAULT_CLOSED_STAGES,
) -> dict[str, Any]:
    """The deal this Xero ``invoice`` belongs to: ``{"deal_id", "rule", "reason"}``.

    ``zoho_deal``: the deal its Zoho invoice's lookup holds now (None when empty or no Invoices module);
    ``stored``: the connector's last decision for it (``{"deal_id", "rule"}``) or None; ``account_id``:
    the Zoho Account of its contact; ``deals``: the Zoho deals that may be named, by id (the account's,
    and any the Reference names), each with ``Account_Name`` and ``Stage``; ``sales_order_deal``: the
    deal of the sales order its Zoho invoice names.
    """
    reasons: list[str] = []
    closed = set(closed_stages)
    dropped = None
    for rule in rules:
        if rule == "kept":
            ours = bool(stored and stored.get("deal_id") == zoho_deal and stored.get("rule") in AUTOMATIC_RULES)
            if zoho_deal and ours and account_id and zoho_deal in deals and account_of(deals[zoho_deal]) != account_id:
                # The invoice moved to another customer in Xero: a link the connector's own rule made to the
                # old customer's deal goes (a person's link would stay); the other rules decide again.
                reasons.append(f"kept: deal {zoho_deal} belongs to the invoice's former account; link dropped")
                dropped = zoho_deal
                continue
            if zoho_deal:
                return _decision(zoho_deal, "kept", "the invoice's deal lookup in Zoho is set")
            if stored and stored.get("deal_id") and stored.get("rule") != CLEARED_IN_ZOHO:
                return _decision(None, CLEARED_IN_ZOHO, f"a person removed the link to deal {stored['deal_id']} in Zoho")
            if stored and stored.get("rule") == CLEARED_IN_ZOHO:
                return _decision(None, CLEARED_IN_ZOHO, "a person removed the link in Zoho; link it again by hand")
            reasons.append("kept: no link yet")
        elif rule == "reference":
            named = [d for d in referenced_deal_ids(invoice.get("Reference"), reference_pattern)
                     if d in deals and account_of(deals[d]) == account_id]
            if len(named) == 1:
                return _decision(named[0], "reference", f"the Xero Reference {invoice.get('Reference')!r} names it",
                                 dropped)
            reasons.append("reference: names several deals of this account" if named else
                           "reference: names no deal of this account")
        elif rule == "sales_order":
            if sales_order_deal and sales_order_deal in deals:
                return _decision(sales_order_deal, "sales_order", "the deal of the invoice's sales order in Zoho",
                                 dropped)
            reasons.append("sales_order: no sales order with a deal")
        elif rule == "only_open_deal":
            open_deals = sorted(i for i, d in deals.items() if account_of(d) == account_id
                                and d.get("Stage") not in closed)
            if len(open_deals) == 1:
                return _decision(open_deals[0], "only_open_deal", "the account's only open deal", dropped)
            reasons.append(f"only_open_deal: the account has {len(open_deals)} open deals")
    return _decision(None, UNASSIGNED, "; ".join(reasons) or "no rule configured", dropped)


def _decision(deal_id: str | None, rule: str, reason: str, dropped: str | None = None) -> dict[str, Any]:
    """``dropped``: the deal whose link (the connector's own) is to be removed from the invoice in Zoho."""
    decision = {"deal_id": deal_id, "rule": rule, "reason": reason}
    if dropped:
        decision["dropped"] = dropped
    return decision


def account_of(deal: Mapping[str, Any]) -> str | None:
    account = deal.get("Account_Name")
    return str(account.get("id")) if isinstance(account, Mapping) and account.get("id") else None


def deal_figures(invoices: Iterable[Mapping[str, Any]], *, payments: Iterable[Mapping[str, Any]] = (),
                 base_currency: str | None, today: date) -> dict[str, Any]:
    """A deal's money from its linked Xero invoices (and the payments on them), in base currency."""
    invoices = list(invoices)
    figures = money_figures(invoices=invoices, payments=payments, base_currency=base_currency, today=today)
    paid = credited = ZERO
    for index, invoice in enumerate(invoices):
        if invoice.get("Type") != "ACCREC" or invoice.get("Status") not in ("AUTHORISED", "PAID"):
            continue
        field = f"Invoice[{invoice.get('InvoiceID', index)}]"
        paid += _in_base(invoice, "AmountPaid", base_currency, field)
        credited += _in_base(invoice, "AmountCredited", base_currency, field)
    return {"invoiced": figures["total_invoiced"], "paid": paid, "outstanding": figures["outstanding"],
            "credited": credited, "last_payment_date": figures["last_payment_date"],
            "payment_status": figures["payment_status"]}


def _in_base(document: Mapping[str, Any], key: str, base_currency: str | None, field: str) -> Decimal:
    value = document.get(key)
    if value in (None, ""):
        return ZERO
    return to_base(value, currency=document.get("CurrencyCode"), rate=document.get("CurrencyRate"),
                   base_currency=base_currency, field=f"{field}.{key}")


def deal_record(figures: Mapping[str, Any], field_names: Mapping[str, str] = DEAL_MONEY_FIELDS) -> dict[str, Any]:
    """The Deal's figures under their Zoho field names (dates as ISO text, money as Decimal)."""
    record = {}
    for key, name in field_names.items():
        value = figures.get(key)
        record[name] = value.isoformat() if isinstance(value, date) else value
    return record


def payment_notes(invoice: Mapping[str, Any], payments: Iterable[Mapping[str, Any]], *,
                  xero_base: str = "https://go.xero.com") -> dict[str, dict[str, str]]:
    """The notes an invoice carries, by key: one per Xero payment (its PaymentID) and one per credit note
    allocated to it (``<CreditNoteID>:<InvoiceID>``), each ``{"Note_Title", "Note_Content"}``.

    ``payments``: the stored payment records that name this invoice. A payment the invoice still embeds
    but the payment list has not delivered yet counts as it is embedded; a payment the list says is
    DELETED is shown as reversed. Refunds (ARCREDITPAYMENT and the like) pay out of a credit, not into an
    invoice: they are noted on the customer's Account (``refund_notes``), not here.
    """
    invoice_id = str(invoice.get("InvoiceID"))
    number = invoice.get("InvoiceNumber") or invoice_id
    currency = invoice.get("CurrencyCode") or ""
    found: dict[str, Mapping[str, Any]] = {}
    for embedded in invoice.get("Payments") or ():
        if embedded.get("PaymentID"):
            found[str(embedded["PaymentID"])] = embedded
    for listed in payments:
        if listed.get("PaymentID") and str((listed.get("Invoice") or {}).get("InvoiceID")) == invoice_id:
            found[str(listed["PaymentID"])] = listed
    notes: dict[str, dict[str, str]] = {}
    for payment_id, payment in found.items():
        reversed_ = payment.get("Status") == "DELETED"
        amount = to_money(payment.get("Amount") or 0, field=f"Payment[{payment_id}].Amount")
        day = parse_xero_day(payment.get("Date"), field=f"Payment[{payment_id}].Date")
        title = f"Xero payment {amount} {currency}".rstrip() + (" (REVERSED in Xero)" if reversed_ else "")
        link = xero_deep_link(f"/Bank/ViewTransaction.aspx?bankTransactionID={payment_id}", base=xero_base)
        notes[payment_id] = {"Note_Title": title, "Note_Content": _lines(
            ("Invoice", number), ("Date", day.isoformat() if day else ""), ("Amount", f"{amount} {currency}".strip()),
            ("Reference", payment.get("Reference") or ""),
            ("Status", "reversed (deleted in Xero): no longer counts" if reversed_ else "received"),
            ("Xero payment id", payment_id), ("Open in Xero", link)) + "\n" + note_key_line(payment_id)}
    for credit in invoice.get("CreditNotes") or ():
        credit_id = credit.get("CreditNoteID")
        if not credit_id:
            continue
        amount = to_money(credit.get("AppliedAmount") or 0, field=f"CreditNote[{credit_id}].AppliedAmount")
        day = parse_xero_day(credit.get("Date"), field=f"CreditNote[{credit_id}].Date")
        link = xero_deep_link(f"/AccountsReceivable/ViewCreditNote.aspx?creditNoteID={credit_id}", base=xero_base)
        notes[f"{credit_id}:{invoice_id}"] = {
            "Note_Title": f"Xero credit note {credit.get('CreditNoteNumber') or credit_id} applied {amount} {currency}".rstrip(),
            "Note_Content": _lines(("Invoice", number), ("Date", day.isoformat() if day else ""),
                                   ("Amount", f"{amount} {currency}".strip()),
                                   ("Reference", credit.get("CreditNoteNumber") or ""),
                                   ("Status", "credit allocated"), ("Xero credit note id", str(credit_id)),
                                   ("Open in Xero", link)) + "\n" + note_key_line(f"{credit_id}:{invoice_id}")}
    return notes


def refund_notes(payments: Iterable[Mapping[str, Any]], *,
                 xero_base: str = "https://go.xero.com") -> dict[str, dict[str, str]]:
    """The notes a customer's Account carries for its refunds, by Xero payment id: one per payment that pays
    money back out of a credit note, an overpayment or a prepayment (``REFUND_TYPES``; there is no invoice to
    attach it to), each ``{"Note_Title", "Note_Content"}``. A refund Xero lists as DELETED is shown reversed."""
    notes: dict[str, dict[str, str]] = {}
    for payment in payments:
        payment_id = payment.get("PaymentID")
        refunded = refunded_credit(payment)
        if not payment_id or refunded is None or payment.get("PaymentType") not in REFUND_TYPES:
            continue
        payment_id = str(payment_id)
        resource, credit_id = refunded
        credit = payment.get(REFUNDED_DOCUMENTS[resource]) or {}
        what = {"creditnotes": f"credit note {credit.get('CreditNoteNumber') or credit_id}",
                "overpayments": f"overpayment {credit_id}", "prepayments": f"prepayment {credit_id}"}[resource]
        currency = credit.get("CurrencyCode") or ""
        reversed_ = payment.get("Status") == "DELETED"
        amount = to_money(payment.get("Amount") or 0, field=f"Payment[{payment_id}].Amount")
        day = parse_xero_day(payment.get("Date"), field=f"Payment[{payment_id}].Date")
        # The same deep link as a payment's (UNVERIFIED that Xero opens a refund there: a real org would need
        # a refund's link followed once).
        link = xero_deep_link(f"/Bank/ViewTransaction.aspx?bankTransactionID={payment_id}", base=xero_base)
        notes[payment_id] = {
            "Note_Title": f"Xero refund {amount} {currency}".rstrip() + (" (REVERSED in Xero)" if reversed_ else ""),
            "Note_Content": _lines(
                ("Refund of", what), ("Date", day.isoformat() if day else ""), ("Amount", f"{amount} {currency}".strip()),
                ("Reference", payment.get("Reference") or ""),
                ("Status", "reversed (deleted in Xero): no longer counts" if reversed_ else "paid out to the customer"),
                ("Xero payment id", payment_id), ("Open in Xero", link)) + "\n" + note_key_line(payment_id)}
    return notes


def note_key_line(key: str) -> str:
    """The line of a note's content that names its key (a payment id, or credit note id:invoice id)."""
    return f"Xero key: {key}"


def _lines(*pairs: tuple[str, str]) -> str:
    return "\n".join(f"{label}: {value}" for label, value in pairs)


__all__ = ["CLEARED_IN_ZOHO", "DEAL_MONEY_FIELDS", "DEAL_MONEY_TYPES", "DEFAULT_CLOSED_STAGES",
           "DEFAULT_REFERENCE_PATTERN", "DEFAULT_RULES", "RULES", "UNASSIGNED", "deal_figures",
           "deal_record", "decide_deal", "note_key_line", "payment_notes", "referenced_deal_ids", "refund_notes"]
