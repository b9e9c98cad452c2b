"""A customer's money figures (connector.mapping.money): hand-computed cases, and properties against
the Xero sandbox's own arithmetic (its contact Balances, invoice totals and payments)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.clock import ManualClock
from connector.errors import DataError
from connector.json_codec import loads_from_api
from connector.mapping.xero_values import parse_xero_day
from connector.mapping.money import (
    NO_INVOICES, OUTSTANDING, OVERDUE, PAID_UP, contact_xero_link, money_figures, to_base,
)
from connector.sandbox.xero import XeroSandbox, to_json
from tests.conftest import property_examples

CENT = Decimal("0.01")
TODAY = date(2026, 3, 10)


def invoice(number, *, total, due=None, status="AUTHORISED", due_on=None, day="2026-03-01", currency="NZD",
            rate=None, payments=(), kind="ACCREC"):
    due = total if due is None else due
    record = {"InvoiceID": f"inv-{number}", "Type": kind, "Status": status, "Total": total, "AmountDue": due,
              "Date": day, "CurrencyCode": currency, "Payments": list(payments)}
    if due_on:
        record["DueDate"] = due_on
    if rate is not None:
        record["CurrencyRate"] = rate
    return record


def figures(invoices, **kwargs):
    return money_figures(invoices=invoices, base_currency="NZD", today=TODAY, **kwargs)


def test_no_invoices_reads_as_such_with_zero_figures():
    result = figures([])
    assert result == {"outstanding": Decimal("0.00"), "overdue": Decimal("0.00"),
                      "total_invoiced": Decimal("0.00"), "credit_available": Decimal("0.00"),
                      "last_invoice_date": None, "last_payment_date": None, "last_payment_amount": None,
                      "payment_status": NO_INVOICES, "currency": "NZD"}


def test_drafts_submitted_voided_deleted_and_bills_do_not_count():
    ignored = [invoice(n, total="50.00", status=s) for n, s in enumerate(("DRAFT", "SUBMITTED", "VOIDED", "DELETED"))]
    ignored.append(invoice(9, total="70.00", kind="ACCPAY"))
    result = figures(ignored)
    assert (result["total_invoiced"], result["outstanding"], result["payment_status"]) == (
        Decimal("0.00"), Decimal("0.00"), NO_INVOICES)


def test_overdue_is_due_strictly_before_today_and_credit_lowers_outstanding_only():
    result = figures(
        [invoice(1, total="100.00", due="60.00", due_on="2026-03-09", day="2026-02-01"),  # overdue
         invoice(2, total="40.00", due_on="2026-03-10", day="2026-03-05"),  # due today: not overdue
         invoice(3, total="25.00", due="0.00", status="PAID", day="2026-01-01")],
        credit_notes=[{"CreditNoteID": "c1", "Type": "ACCRECCREDIT", "Status": "AUTHORISED", "RemainingCredit": "15.50"},
                      {"CreditNoteID": "c2", "Type": "ACCRECCREDIT", "Status": "PAID", "RemainingCredit": "0.00"},
                      {"CreditNoteID": "c3", "Type": "ACCRECCREDIT", "Status": "VOIDED", "RemainingCredit": "9.00"},
                      {"CreditNoteID": "c4", "Type": "ACCPAYCREDIT", "Status": "AUTHORISED", "RemainingCredit": "9.00"}])
    assert result["outstanding"] == Decimal("84.50")  # 60 + 40 - 15.50
    assert result["overdue"] == Decimal("60.00")
    assert result["total_invoiced"] == Decimal("165.00")
    assert result["credit_available"] == Decimal("15.50")
    assert result["last_invoice_date"] == date(2026, 3, 5)
    assert result["payment_status"] == OVERDUE


def test_status_outstanding_then_paid_up():
    assert figures([invoice(1, total="10.00", due_on="2026-04-01")])["payment_status"] == OUTSTANDING
    assert figures([invoice(1, total="10.00", due="0.00", status="PAID")])["payment_status"] == PAID_UP


def test_foreign_documents_are_divided_by_their_rate_and_rounded_per_document():
    # 1 NZD = 0.6 USD: 100 USD is 166.666.. NZD -> 166.67; 33.33 USD is 55.55 NZD.
    result = figures([invoice(1, total="100.00", currency="USD", rate="0.600000", due_on="2026-03-01"),
                      invoice(2, total="33.33", currency="USD", rate="0.600000", due_on="2026-04-01"),
                      invoice(3, total="10.00", currency="NZD", rate="1.000000")])
    assert result["total_invoiced"] == Decimal("166.67") + Decimal("55.55") + Decimal("10.00")
    assert result["overdue"] == Decimal("166.67")


def test_without_a_known_base_currency_each_document_converts_at_its_own_rate():
    result = money_figures(invoices=[invoice(1, total="100.00", currency="USD", rate="0.600000"),
                                     invoice(2, total="10.00", currency="NZD", rate="1.000000"),
                                     invoice(3, total="5.00", currency="NZD")], base_currency=None, today=TODAY)
    assert result["total_invoiced"] == Decimal("166.67") + Decimal("15.00")
    assert result["currency"] is None


def test_foreign_document_without_a_rate_is_a_data_error():
    with pytest.raises(DataError) as raised:
        figures([invoice(1, total="100.00", currency="USD")])
    assert raised.value.field.endswith("Total")


def test_last_payment_is_the_latest_day_summed_and_a_deleted_payment_never_counts():
    paid = invoice(1, total="100.00", due="0.00", status="PAID", payments=[
        {"PaymentID": "p1", "Date": "2026-03-02", "Amount": "30.00"},
        {"PaymentID": "p2", "Date": "2026-03-04", "Amount": "20.00"},
        {"PaymentID": "p3", "Date": "2026-03-04", "Amount": "50.00"},
        {"PaymentID": "p4", "Date": "2026-03-08", "Amount": "99.00"}])
    listed = [{"PaymentID": "p4", "Status": "DELETED", "PaymentType": "ACCRECPAYMENT", "Date": "2026-03-08",
               "Amount": "99.00", "Invoice": {"InvoiceID": "inv-1", "Type": "ACCREC"}},
              {"PaymentID": "r1", "Status": "AUTHORISED", "PaymentType": "ARCREDITPAYMENT", "Date": "2026-03-09",
               "Amount": "5.00", "CreditNote": {"CreditNoteID": "c1"}}]
    result = figures([paid], payments=listed)
    assert (result["last_payment_date"], result["last_payment_amount"]) == (date(2026, 3, 4), Decimal("70.00"))


def test_an_overpayment_is_credit_and_a_payment_received():
    result = figures([invoice(1, total="100.00", due="0.00", status="PAID")], overpayments=[
        {"OverpaymentID": "o1", "Type": "RECEIVE-OVERPAYMENT", "Status": "AUTHORISED", "Date": "2026-03-06",
         "Total": "120.00", "RemainingCredit": "20.00", "CurrencyCode": "NZD"}])
    assert result["credit_available"] == Decimal("20.00")
    assert result["outstanding"] == Decimal("-20.00")
    assert (result["last_payment_date"], result["last_payment_amount"]) == (date(2026, 3, 6), Decimal("120.00"))


def test_refunds_of_an_overpayment_or_a_prepayment_are_money_paid_out_not_a_payment_received():
    # Xero's payments page: AROVERPAYMENTPAYMENT / ARPREPAYMENTPAYMENT are payments out of an overpayment or a
    # prepayment (refunds), as ARCREDITPAYMENT is out of a credit note; the credit itself is the money received.
    refunds = [{"PaymentID": f"r-{kind}", "Status": "AUTHORISED", "PaymentType": kind, "Date": "2026-03-07",
                "Amount": "20.00", document: {f"{document}ID": "o1", "CurrencyCode": "NZD"}}
               for kind, document in (("AROVERPAYMENTPAYMENT", "Overpayment"), ("ARPREPAYMENTPAYMENT", "Prepayment"))]
    result = figures([invoice(1, total="100.00", due="0.00", status="PAID")], payments=refunds, overpayments=[
        {"OverpaymentID": "o1", "Type": "RECEIVE-OVERPAYMENT", "Status": "AUTHORISED", "Date": "2026-03-06",
         "Total": "120.00", "RemainingCredit": "0.00", "CurrencyCode": "NZD"}])
    assert (result["last_payment_date"], result["last_payment_amount"]) == (date(2026, 3, 6), Decimal("120.00"))


def test_contact_link_uses_xeros_org_safe_deep_link_when_the_short_code_is_known():
    assert contact_xero_link("abc", short_code="!xkYv") == (
        "https://go.xero.com/organisationlogin/default.aspx?shortcode=!xkYv&redirecturl=/Contacts/View/abc")
    assert contact_xero_link("abc") == "https://go.xero.com/Contacts/View/abc"


# --- properties ---------------------------------------------------------------------------------

cents = st.integers(min_value=1, max_value=200_000).map(lambda c: Decimal(c) * CENT)
rates = st.integers(min_value=1, max_value=5_000_000).map(lambda r: Decimal(r) / Decimal(1_000_000))


@settings(max_examples=property_examples(100), deadline=None)
@given(amounts=st.lists(cents, min_size=1, max_size=8), rate=rates)
def test_a_foreign_document_set_equals_its_documents_each_converted_and_rounded(amounts, rate):
    docs = [invoice(n, total=str(a), currency="USD", rate=str(rate), due_on="2026-01-01") for n, a in enumerate(amounts)]
    result = figures(docs)
    each = [to_base(a, currency="USD", rate=rate, base_currency="NZD", field="t") for a in amounts]
    assert result["total_invoiced"] == result["overdue"] == result["outstanding"] == sum(each, Decimal("0.00"))
    # Each converted amount is within half a cent of the exact quotient.
    assert all(abs(c - a / rate) <= Decimal("0.005") for c, a in zip(each, amounts))


@settings(max_examples=property_examples(60), deadline=None)
@given(amounts=st.lists(cents, min_size=1, max_size=6), currencies=st.lists(st.sampled_from(["NZD", "USD", "AUD"]),
                                                                             min_size=6, max_size=6))
def test_a_mixed_set_is_the_sum_of_its_single_currency_parts(amounts, currencies):
    rate_of = {"NZD": "1.000000", "USD": "0.612300", "AUD": "0.911100"}
    docs = [invoice(n, total=str(a), currency=c, rate=rate_of[c]) for n, (a, c) in enumerate(zip(amounts, currencies))]
    whole = figures(docs)
    parts = [figures([d for d in docs if d["CurrencyCode"] == c]) for c in rate_of]
    for key in ("total_invoiced", "outstanding", "overdue"):
        assert whole[key] == sum((p[key] for p in parts), Decimal("0.00"))


line_amounts = st.integers(min_value=1, max_value=50_000).map(lambda c: Decimal(c) * CENT)
documents = st.lists(
    st.fixed_dictionaries({
        "amount": line_amounts,
        "due_in": st.integers(-40, 40),  # days from today
        "status": st.sampled_from(["AUTHORISED", "AUTHORISED", "AUTHORISED", "DRAFT", "SUBMITTED", "VOIDED", "DELETED"]),
        "pay": st.lists(st.integers(1, 100), max_size=3),  # shares (percent) of what is due
        "reverse": st.booleans(),  # reverse the first payment afterwards
        "credit": st.one_of(st.none(), st.tuples(st.integers(0, 100), st.integers(1, 5_000))),  # allocated %, total
    }),
    max_size=6,
)


def _api(record: dict) -> dict:
    """A sandbox record as the connector reads it from the API (Decimal money, /Date()/ days)."""
    return loads_from_api(to_json(record))


@settings(max_examples=property_examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=documents, days_later=st.integers(0, 60))
def test_figures_equal_the_sandboxs_balances_and_records_for_any_history(docs, days_later):
    clock = ManualClock()
    xero = XeroSandbox(clock)
    tenant = xero.add_tenant("Money Ltd")
    contact = xero.create_contact(tenant, Name="Customer Ltd")["ContactID"]
    other = xero.create_contact(tenant, Name="Someone Else")["ContactID"]
    xero.create_invoice(tenant, other, [{"Description": "not ours", "UnitAmount": 7, "TaxType": "NONE"}])
    today = clock.now().date()
    invoice_ids, credit_ids, payment_ids = [], [], []
    for doc in docs:
        created = xero.create_invoice(
            tenant, contact, [{"Description": "work", "UnitAmount": doc["amount"], "TaxType": "NONE"}],
            # Xero voids an approved invoice and deletes a draft one.
            Status={"VOIDED": "AUTHORISED", "DELETED": "DRAFT"}.get(doc["status"], doc["status"]),
            DueDate=(today + timedelta(days=doc["due_in"])).isoformat())
        invoice_id = created["InvoiceID"]
        invoice_ids.append(invoice_id)
        if doc["status"] in ("VOIDED", "DELETED"):
            xero.update_invoice(tenant, invoice_id, Status=doc["status"])
            continue
        if doc["status"] != "AUTHORISED":
            continue
        paid_here = []
        for share in doc["pay"]:
            due = xero.invoice(tenant, invoice_id)["AmountDue"]
            if due > 0:
                paid = xero.add_payment(tenant, invoice_id, max(CENT, (due * share / 100).quantize(CENT)),
                                        date=today - timedelta(days=share % 7))
                paid_here.append(paid["PaymentID"])
        if doc["reverse"] and paid_here:
            xero.reverse_payment(tenant, paid_here[0])
        payment_ids += paid_here
        if doc["credit"] is not None:
            share, total_cents = doc["credit"]
            note = xero.create_credit_note(tenant, contact, [
                {"Description": "credit", "UnitAmount": Decimal(total_cents) * CENT, "TaxType": "NONE"}])
            credit_ids.append(note["CreditNoteID"])
            due = xero.invoice(tenant, invoice_id)["AmountDue"]
            allocate = min(due, note["RemainingCredit"], (due * share / 100).quantize(CENT))
            if allocate > 0:
                xero.allocate_credit_note(tenant, note["CreditNoteID"], invoice_id, allocate)
    clock.advance(days_later * 86_400)  # time alone makes invoices overdue

    invoices = [_api(xero.invoice(tenant, i)) for i in invoice_ids]
    result = money_figures(
        invoices=invoices,
        credit_notes=[_api(xero.credit_note(tenant, c)) for c in credit_ids],
        payments=[_api(xero.payment(tenant, p)) for p in payment_ids],
        base_currency="NZD", today=clock.now().date())

    balances = _api(xero.contact(tenant, contact))["Balances"]["AccountsReceivable"]
    assert result["outstanding"] == Decimal(str(balances["Outstanding"]))
    assert result["overdue"] == Decimal(str(balances["Overdue"]))
    posted = [i for i in invoices if i["Status"] in ("AUTHORISED", "PAID")]
    assert result["total_invoiced"] == sum((Decimal(str(i["Total"])) for i in posted), Decimal("0.00"))
    live = [_api(xero.payment(tenant, p)) for p in payment_ids]
    live = [p for p in live if p["Status"] == "AUTHORISED"]
    if live:
        last = max(p["Date"] for p in live)
        assert result["last_payment_amount"] == sum(
            (Decimal(str(p["Amount"])) for p in live if p["Date"] == last), Decimal("0.00"))
    else:
        assert result["last_payment_date"] is None
    expected_status = (NO_INVOICES if not posted else OVERDUE if result["overdue"] > 0
                       else OUTSTANDING if any(Decimal(str(i["AmountDue"])) > 0 for i in posted) else PAID_UP)
    assert result["payment_status"] == expected_status


# One customer's history in one currency, with credit received as overpayments and prepayments.
credited_history = st.fixed_dictionaries({
    "currency": st.sampled_from(["NZD", "USD"]),
    "rate": st.integers(min_value=100_000, max_value=3_000_000).map(lambda r: Decimal(r) / Decimal(1_000_000)),
    "invoices": st.lists(st.fixed_dictionaries({
        "amount": line_amounts,
        "due_in": st.integers(-40, 40),
        "pay": st.integers(0, 100),  # percent of the total paid, at the payment day's rate
        "payment_rate": st.integers(100_000, 3_000_000).map(lambda r: Decimal(r) / Decimal(1_000_000)),
    }), max_size=5),
    "credits": st.lists(st.fixed_dictionaries({
        "kind": st.sampled_from(["Overpayment", "Prepayment"]),
        "amount": line_amounts,
        "allocate": st.integers(0, 100),  # percent of the credit applied to the first invoice with money due
    }), max_size=4),
})


@settings(max_examples=property_examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=credited_history, days_later=st.integers(0, 60))
def test_figures_with_currencies_overpayments_and_prepayments_agree_with_the_sandbox(history, days_later):
    """In the customer's own currency the figures are Xero's Balances exactly (Balances are not converted);
    in the NZD base each document converts at its own rate, so the figures are the Balances divided by
    the rate, give or take half a cent per document."""
    clock = ManualClock()
    xero = XeroSandbox(clock)
    tenant = xero.add_tenant("Money Ltd")
    contact = xero.create_contact(tenant, Name="Customer Inc")["ContactID"]
    currency, rate = history["currency"], history["rate"] if history["currency"] != "NZD" else Decimal(1)
    foreign = {"CurrencyCode": currency, "CurrencyRate": str(rate)} if currency != "NZD" else {}
    today = clock.now().date()
    invoice_ids, payment_ids, received = [], [], []
    for doc in history["invoices"]:
        created = xero.create_invoice(tenant, contact, [{"Description": "work", "UnitAmount": doc["amount"],
                                                         "TaxType": "NONE"}],
                                      DueDate=(today + timedelta(days=doc["due_in"])).isoformat(), **foreign)
        invoice_ids.append(created["InvoiceID"])
        paid = (created["Total"] * doc["pay"] / 100).quantize(CENT)
        if paid > 0:
            payment = xero.add_payment(tenant, created["InvoiceID"], paid, rate=doc["payment_rate"])
            payment_ids.append(payment["PaymentID"])
    for credit in history["credits"]:
        receive = xero.receive_overpayment if credit["kind"] == "Overpayment" else xero.receive_prepayment
        record = receive(tenant, contact, credit["amount"], **foreign)
        credit_id = record[credit["kind"] + "ID"]
        received.append((credit["kind"], credit_id))
        open_invoice = next((i for i in invoice_ids if xero.invoice(tenant, i)["AmountDue"] > 0), None)
        share = (record["Total"] * credit["allocate"] / 100).quantize(CENT)
        if open_invoice and share > 0:
            amount = min(share, xero.invoice(tenant, open_invoice)["AmountDue"])
            xero.allocate_credit(tenant, credit["kind"], credit_id, open_invoice, amount)
    clock.advance(days_later * 86_400)

    def stored():
        fetch = {"Overpayment": xero.overpayment, "Prepayment": xero.prepayment}
        credits = [_api(fetch[kind](tenant, i)) for kind, i in received]
        return dict(invoices=[_api(xero.invoice(tenant, i)) for i in invoice_ids],
                    payments=[_api(xero.payment(tenant, p)) for p in payment_ids],
                    overpayments=[c for c in credits if c["Type"] == "RECEIVE-OVERPAYMENT"],
                    prepayments=[c for c in credits if c["Type"] == "RECEIVE-PREPAYMENT"])

    documents = stored()
    day = clock.now().date()
    own = money_figures(**documents, base_currency=currency, today=day)
    base = money_figures(**documents, base_currency="NZD", today=day)
    balances = _api(xero.contact(tenant, contact))["Balances"]["AccountsReceivable"]
    assert own["outstanding"] == Decimal(str(balances["Outstanding"]))
    assert own["overdue"] == Decimal(str(balances["Overdue"]))
    remaining = [Decimal(str(c["RemainingCredit"])) for c in documents["overpayments"] + documents["prepayments"]]
    assert own["credit_available"] == sum(remaining, Decimal("0.00"))
    count = len(invoice_ids) + len(received)
    for key, balance in (("outstanding", balances["Outstanding"]), ("overdue", balances["Overdue"])):
        assert abs(base[key] - Decimal(str(balance)) / rate) <= Decimal("0.005") * count
    # The last payment received: payments (at their own day's rate) and credits received, in base currency.
    money_in = [(parse_xero_day(p["Date"], field="Date"),
                 to_base(p["Amount"], currency=currency, rate=p["CurrencyRate"], base_currency="NZD", field="p"))
                for p in documents["payments"]]
    money_in += [(parse_xero_day(c["Date"], field="Date"),
                  to_base(c["Total"], currency=currency, rate=c["CurrencyRate"], base_currency="NZD", field="c"))
                 for c in documents["overpayments"] + documents["prepayments"]]
    last = max((d for d, _ in money_in), default=None)
    assert base["last_payment_date"] == last
    if last is not None:
        assert base["last_payment_amount"] == sum((a for d, a in money_in if d == last), Decimal("0.00"))
