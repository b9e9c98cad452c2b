"""Xero's JSON shapes of the records the sandbox holds: contacts (with derived balances),
invoices and credit notes, payments, overpayments and prepayments, allocations, and the list envelope
around them.

Pure: an organisation's state in, dicts out (``to_json`` writes them). Shapes follow the OAS-ACC
spec (https://github.com/XeroAPI/Xero-OpenAPI) and the examples on
https://developer.xero.com/documentation/api/accounting/overview.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from connector.sandbox.xero.formats import ZERO, cents, day_string, ms_date, utc_string
from connector.sandbox.xero.state import (
    Allocation,
    Contact,
    Document,
    Org,
    Payment,
    ReceivedCredit,
    received_credits,
    remaining_credit,
)

ADDRESS_TYPES = ("STREET", "POBOX")
PHONE_TYPES = ("DEFAULT", "DDI", "FAX", "MOBILE")


def envelope(plural: str, items: list, *, provider_name: str, now: datetime, pagination: dict | None = None) -> dict:
    body = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": provider_name,
        "DateTimeUTC": ms_date(now, with_offset=False),
    }
    if pagination is not None:
        body["pagination"] = pagination
    body[plural] = items
    return body


def render_contact(org: Org, contact: Contact, today: date) -> dict:
    """``today`` dates the Overdue balances."""
    f = contact.fields
    out = {"ContactID": contact.id}
    for key in ("ContactNumber", "AccountNumber"):
        if f.get(key):
            out[key] = f[key]
    out["ContactStatus"] = contact.status
    if f.get("MergedToContactID"):  # a contact merged into another (Books.merge_contacts)
        out["MergedToContactID"] = f["MergedToContactID"]
    for key in ("Name", "FirstName", "LastName", "CompanyNumber", "EmailAddress"):
        if f.get(key):
            out[key] = f[key]
    out["BankAccountDetails"] = f.get("BankAccountDetails", "")
    out["TaxNumber"] = f.get("TaxNumber", "")
    for key in ("TaxNumberType", "AccountsReceivableTaxType", "AccountsPayableTaxType", "DefaultCurrency", "Website"):
        if f.get(key):
            out[key] = f[key]
    out["Addresses"] = [
        {"AddressType": kind,
         **{k: str(contact.addresses.get(kind, {}).get(k) or "") for k in
            ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4", "City", "Region", "PostalCode",
             "Country", "AttentionTo")}}
        for kind in ADDRESS_TYPES
    ]
    out["Phones"] = [
        {"PhoneType": kind,
         **{k: str(contact.phones.get(kind, {}).get(k) or "") for k in
            ("PhoneNumber", "PhoneAreaCode", "PhoneCountryCode")}}
        for kind in PHONE_TYPES
    ]
    out["UpdatedDateUTC"] = ms_date(contact.updated)
    out["ContactGroups"] = list(contact.groups)
    documents = [d for d in (org.invoices.get(i) or org.credit_notes[i]
                             for i in org.documents_by_contact.get(contact.id, ())) if d.status != "DELETED"]
    # IsCustomer/IsSupplier and Balances are derived, and do not bump UpdatedDateUTC (RR).
    out["IsSupplier"] = any(d.type.startswith("ACCPAY") for d in documents)
    out["IsCustomer"] = any(d.type.startswith("ACCREC") for d in documents)
    out["ContactPersons"] = [
        {"FirstName": p.get("FirstName", ""), "LastName": p.get("LastName", ""),
         "EmailAddress": p.get("EmailAddress", ""), "IncludeInEmails": bool(p.get("IncludeInEmails", False))}
        for p in contact.persons
    ]
    out["HasAttachments"] = False
    out["HasValidationErrors"] = False
    out["Balances"] = {"AccountsReceivable": _balance(org, contact.id, documents, "ACCREC", today),
                       "AccountsPayable": _balance(org, contact.id, documents, "ACCPAY", today)}
    return out


def _balance(org: Org, contact_id: str, documents: list[Document], side: str, today: date) -> dict:
    """A contact's Balances side: "the raw ... outstanding and overdue amounts, not converted to base
    currency" (Xero OpenAPI schema ``Balances``, https://developer.xero.com/documentation/api/accounting/contacts):
    each document's own amount is summed whatever its currency. Approved documents only; unallocated credit
    lowers Outstanding and, having no due date, never Overdue (Xero's own example contact shows Overdue above
    Outstanding). Received overpayments and prepayments count on the receivable side as credit notes do
    (UNVERIFIED: the docs do not say whether Balances include them)."""
    outstanding = overdue = ZERO
    if side == "ACCREC":
        outstanding -= sum((remaining_credit(org, c) for c in received_credits(org, contact_id)
                            if c.status == "AUTHORISED"), ZERO)
    for doc in documents:
        if doc.type.startswith(side) and doc.status == "AUTHORISED":
            due = doc.amount_due
            if doc.is_credit_note:
                due = -remaining_credit(org, doc)
            outstanding += due
            if doc.due_date and doc.due_date < today:
                overdue += due
    return {"Outstanding": cents(outstanding), "Overdue": cents(overdue)}


def render_document(org: Org, doc: Document) -> dict:
    contact = org.contacts[doc.contact_id]
    out = {"Type": doc.type}
    if doc.is_credit_note:
        out.update(CreditNoteID=doc.id, CreditNoteNumber=doc.number, ID=doc.id)
    else:
        out.update(InvoiceID=doc.id, InvoiceNumber=doc.number)
    out["Reference"] = doc.reference
    out["Payments"] = [_payment_summary(p) for p in org.payments.values()
                       if p.document_id == doc.id and p.status == "AUTHORISED"]
    if doc.is_credit_note:
        out["RemainingCredit"] = cents(remaining_credit(org, doc))
        out["Allocations"] = [render_allocation(org, a) for a in org.allocations if a.credit_note_id == doc.id]
    else:
        applied = [a for a in org.allocations if a.invoice_id == doc.id]
        out["CreditNotes"] = [
            {"CreditNoteID": a.credit_note_id, "CreditNoteNumber": org.credit_notes[a.credit_note_id].number,
             "ID": a.credit_note_id, "AppliedAmount": a.amount, "DateString": day_string(a.date),
             "Date": ms_date(a.date), "Total": org.credit_notes[a.credit_note_id].total}
            for a in applied if a.kind == "CreditNote"
        ]
        for kind, store in (("Prepayment", org.prepayments), ("Overpayment", org.overpayments)):
            out[kind + "s"] = [{f"{kind}ID": a.credit_note_id, "ID": a.credit_note_id, "AppliedAmount": a.amount,
                                "Date": ms_date(a.date), "Total": store[a.credit_note_id].total}
                               for a in applied if a.kind == kind]
        out["AmountDue"] = cents(doc.amount_due)
        out["AmountPaid"] = doc.amount_paid
        out["AmountCredited"] = doc.amount_credited
        out["SentToContact"] = doc.sent_to_contact
        out["IsDiscounted"] = doc.total_discount > 0
    out["CurrencyRate"] = doc.rate
    out["HasAttachments"] = False
    out["HasErrors"] = False
    out["Contact"] = {"ContactID": contact.id, "Name": contact.fields.get("Name", ""), "Addresses": [],
                      "Phones": [], "ContactGroups": [], "ContactPersons": [], "HasValidationErrors": False}
    out["DateString"] = day_string(doc.date)
    out["Date"] = ms_date(doc.date)
    if doc.due_date:
        out["DueDateString"] = day_string(doc.due_date)
        out["DueDate"] = ms_date(doc.due_date)
    out["Status"] = doc.status
    out["LineAmountTypes"] = doc.line_amount_types
    out["LineItems"] = [dict(line) for line in doc.line_items]
    out["SubTotal"] = doc.sub_total
    out["TotalTax"] = doc.total_tax
    out["Total"] = doc.total
    if doc.total_discount > 0:
        out["TotalDiscount"] = doc.total_discount
    out["UpdatedDateUTC"] = ms_date(doc.updated)
    out["UpdatedDateUTCString"] = utc_string(doc.updated)
    out["CurrencyCode"] = doc.currency
    if doc.status == "PAID" and doc.fully_paid_on and not doc.is_credit_note:
        out["FullyPaidOnDate"] = ms_date(doc.fully_paid_on)
    return out


def _payment_summary(payment: Payment) -> dict:
    return {"PaymentID": payment.id, "Date": ms_date(payment.date), "Amount": payment.amount,
            "Reference": payment.reference, "CurrencyRate": payment.rate, "HasAccount": False,
            "HasValidationErrors": False}


# A refund's PaymentType, by what it refunds (payments page, PaymentType: ARCREDITPAYMENT "Accounts Receivable
# Credit Payment", AROVERPAYMENTPAYMENT, ARPREPAYMENTPAYMENT).
REFUND_PAYMENT_TYPES = {"CreditNote": "ARCREDITPAYMENT", "Overpayment": "AROVERPAYMENTPAYMENT",
                        "Prepayment": "ARPREPAYMENTPAYMENT"}


def render_payment(org: Org, payment: Payment) -> dict:
    if payment.kind == "Invoice":
        document = org.invoices[payment.document_id]
        payment_type = "ACCRECPAYMENT" if document.type == "ACCREC" else "ACCPAYPAYMENT"
        paid = {"Type": document.type, "InvoiceID": document.id, "InvoiceNumber": document.number}
    else:
        # A refund names its credit as a payment names its invoice, partially (OAS-ACC ``Payment``: CreditNote,
        # Prepayment, Overpayment). Which fields the nested credit carries is UNVERIFIED (a real org would need
        # a GET /Payments/{id} of a refund): its id, number (a credit note's), Type, Contact and currency here.
        document = {"CreditNote": org.credit_notes, "Overpayment": org.overpayments,
                    "Prepayment": org.prepayments}[payment.kind][payment.document_id]
        payment_type = REFUND_PAYMENT_TYPES[payment.kind]
        paid = {"Type": document.type, f"{payment.kind}ID": document.id}
        if payment.kind == "CreditNote":
            paid["CreditNoteNumber"] = document.number
    contact = org.contacts[document.contact_id]
    paid.update({"Contact": {"ContactID": contact.id, "Name": contact.fields.get("Name", "")},
                 "CurrencyCode": document.currency})
    if payment.kind == "Invoice":
        paid.update({"Payments": [], "CreditNotes": [], "Prepayments": [], "Overpayments": []})
    return {
        "PaymentID": payment.id,
        "Date": ms_date(payment.date),
        # BankAmount: in the bank account's currency, here always the base currency (UNVERIFIED for
        # foreign-currency bank accounts, which the sandbox does not have).
        "BankAmount": cents(payment.amount / payment.rate),
        "Amount": payment.amount,
        "Reference": payment.reference,
        "CurrencyRate": payment.rate,
        "PaymentType": payment_type,
        "Status": payment.status,
        "UpdatedDateUTC": ms_date(payment.updated),
        "UpdatedDateUTCString": utc_string(payment.updated),
        "HasAccount": True,
        "IsReconciled": False,
        "Account": {"AccountID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero-account:{org.id}:{payment.account_code}")),
                    "Code": payment.account_code},
        payment.kind: paid,
        "HasValidationErrors": False,
    }


def render_received_credit(org: Org, credit: ReceivedCredit) -> dict:
    """An overpayment or prepayment as GET /Overpayments or /Prepayments shows it (OAS-ACC ``Overpayment``,
    ``Prepayment``)."""
    contact = org.contacts[credit.contact_id]
    out = {
        "Type": credit.type,
        "Contact": {"ContactID": contact.id, "Name": contact.fields.get("Name", ""), "Addresses": [], "Phones": [],
                    "ContactGroups": [], "ContactPersons": [], "HasValidationErrors": False},
        "DateString": day_string(credit.date),
        "Date": ms_date(credit.date),
        "Status": credit.status,
        "LineAmountTypes": credit.line_amount_types,
        "LineItems": [dict(line) for line in credit.line_items],
        "SubTotal": credit.sub_total,
        "TotalTax": credit.total_tax,
        "Total": credit.total,
        "UpdatedDateUTC": ms_date(credit.updated),
        "UpdatedDateUTCString": utc_string(credit.updated),
        "CurrencyCode": credit.currency,
        f"{credit.kind}ID": credit.id,
        "ID": credit.id,
        "CurrencyRate": credit.rate,
        "RemainingCredit": cents(remaining_credit(org, credit)),
        "Allocations": [render_allocation(org, a) for a in org.allocations if a.credit_note_id == credit.id],
        "Payments": [_payment_summary(p) for p in org.payments.values()
                     if p.document_id == credit.id and p.status == "AUTHORISED"],  # its refunds
        "HasAttachments": False,
    }
    if credit.reference:
        out["Reference"] = credit.reference
    return out


def render_allocation(org: Org, allocation: Allocation) -> dict:
    invoice = org.invoices[allocation.invoice_id]
    if allocation.kind != "CreditNote":
        credit = {f"{allocation.kind}ID": allocation.credit_note_id, "ID": allocation.credit_note_id}
    else:
        credit = {"CreditNoteID": allocation.credit_note_id, "ID": allocation.credit_note_id, "LineItems": []}
    return {
        "AllocationID": allocation.id,
        "Amount": allocation.amount,
        "Date": ms_date(allocation.date),
        "Invoice": {"InvoiceID": invoice.id, "InvoiceNumber": invoice.number, "Payments": [], "CreditNotes": [],
                    "Prepayments": [], "Overpayments": [], "HasErrors": False, "IsDiscounted": False,
                    "LineItems": [], "ValidationErrors": []},
        allocation.kind: credit,
        "ValidationErrors": [],
    }


def render_organisation(org: Org) -> dict:
    """GET /Organisation's one element, with the fields of the OpenAPI ``Organisation`` schema the connector and
    a person read (https://developer.xero.com/documentation/api/accounting/organisation); the ShortCode is derived
    from the id, as a real one is fixed per organisation."""
    day, month = org.financial_year_end
    version = {"GB": "UK"}.get(org.country, org.country if org.country in ("AU", "NZ", "US") else "GLOBAL")
    return {"Name": org.name, "LegalName": org.name, "PaysTax": True, "Version": version,
            "OrganisationType": org.organisation_type, "BaseCurrency": org.currency, "CountryCode": org.country,
            "IsDemoCompany": org.plan == "DEMO", "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": day, "FinancialYearEndMonth": month,
            "CreatedDateUTC": ms_date(org.created, with_offset=False), "OrganisationEntityType": org.organisation_type,
            "Timezone": org.timezone, "ShortCode": "!" + org.id.replace("-", "")[:5], "OrganisationID": org.id,
            "Edition": org.edition, "Class": org.plan, "Addresses": [], "Phones": [], "ExternalLinks": [],
            "PaymentTerms": {}}
