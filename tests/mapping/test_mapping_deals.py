"""Deals, pure (connector.mapping.deals): each linking rule, a person's link kept, deal figures, payment notes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.mapping.deals import (
    CLEARED_IN_ZOHO, UNASSIGNED, deal_figures, deal_record, decide_deal, payment_notes, referenced_deal_ids,
)
from tests.conftest import property_examples

ACCOUNT = "4876876000000400001"
DEAL_A = "4876876000000400011"
DEAL_B = "4876876000000400012"
DEAL_OTHER_ACCOUNT = "4876876000000400013"


def zoho_deal(account=ACCOUNT, stage="Qualification"):
    return {"Account_Name": {"id": account}, "Stage": stage}


DEALS = {DEAL_A: zoho_deal(), DEAL_B: zoho_deal(stage="Closed Won"), DEAL_OTHER_ACCOUNT: zoho_deal("4876876000000400999")}


def decide(reference=None, *, zoho_deal=None, stored=None, deals=DEALS, sales_order_deal=None, **kw):
    invoice = {"InvoiceID": "inv-1", "Reference": reference}
    return decide_deal(invoice, zoho_deal=zoho_deal, stored=stored, account_id=ACCOUNT, deals=deals,
                       sales_order_deal=sales_order_deal, **kw)


def test_a_link_in_zoho_is_kept_whatever_the_other_rules_say():
    decision = decide(f"PO for {DEAL_B}", zoho_deal=DEAL_OTHER_ACCOUNT, stored={"deal_id": DEAL_A, "rule": "reference"})
    assert (decision["deal_id"], decision["rule"]) == (DEAL_OTHER_ACCOUNT, "kept")


def test_a_link_a_person_emptied_in_zoho_stays_empty():
    first = decide(DEAL_A, stored={"deal_id": DEAL_A, "rule": "reference"})
    assert (first["deal_id"], first["rule"]) == (None, CLEARED_IN_ZOHO)
    again = decide(DEAL_A, stored={"deal_id": None, "rule": CLEARED_IN_ZOHO})
    assert (again["deal_id"], again["rule"]) == (None, CLEARED_IN_ZOHO)


def test_the_reference_names_a_deal_of_the_invoice_account():
    decision = decide(f"Order {DEAL_B} / phase 2")
    assert (decision["deal_id"], decision["rule"]) == (DEAL_B, "reference")  # closed or not: it is named


def test_a_reference_naming_another_account_deal_or_two_deals_decides_nothing():
    assert decide(DEAL_OTHER_ACCOUNT, deals={DEAL_OTHER_ACCOUNT: DEALS[DEAL_OTHER_ACCOUNT]})["rule"] == UNASSIGNED
    two = decide(f"{DEAL_A} and {DEAL_B}", rules=("kept", "reference"))
    assert two["rule"] == UNASSIGNED and "several" in two["reason"]


def test_a_configured_pattern_reads_the_deal_id_from_its_group():
    assert referenced_deal_ids("D-42 and D-42, D-7", r"D-(\d+)") == ["42", "7"]
    decision = decide(f"DEAL#{DEAL_A}", reference_pattern=r"DEAL#(\d+)", rules=("kept", "reference"))
    assert decision["deal_id"] == DEAL_A


def test_the_sales_order_deal_then_the_only_open_deal():
    by_order = decide("no id here", sales_order_deal=DEAL_B)
    assert (by_order["deal_id"], by_order["rule"]) == (DEAL_B, "sales_order")
    only_open = decide("no id here")
    assert (only_open["deal_id"], only_open["rule"]) == (DEAL_A, "only_open_deal")


def test_two_open_deals_leave_the_invoice_unassigned_with_every_rule_reason():
    deals = {**DEALS, DEAL_B: zoho_deal(stage="Negotiation/Review")}
    decision = decide("no id", deals=deals)
    assert decision["deal_id"] is None and decision["rule"] == UNASSIGNED
    assert decision["reason"].split("; ") == [
        "kept: no link yet", "reference: names no deal of this account", "sales_order: no sales order with a deal",
        "only_open_deal: the account has 2 open deals"]


def test_rule_order_is_the_configured_one():
    decision = decide(DEAL_B, rules=("kept", "only_open_deal", "reference"))
    assert decision["rule"] == "only_open_deal" and decision["deal_id"] == DEAL_A


def invoice(number, *, total, paid="0", credited="0", status="AUTHORISED", currency="NZD", rate=None, payments=()):
    due = Decimal(total) - Decimal(paid) - Decimal(credited)
    record = {"InvoiceID": f"inv-{number}", "InvoiceNumber": f"INV-{number}", "Type": "ACCREC", "Status": status,
              "Total": total, "AmountDue": str(due), "AmountPaid": paid, "AmountCredited": credited,
              "Date": "2026-03-01", "DueDate": "2026-03-31", "CurrencyCode": currency, "Payments": list(payments)}
    if rate:
        record["CurrencyRate"] = rate
    return record


def test_deal_figures_sum_its_invoices_in_base_currency_and_skip_voided_ones():
    invoices = [
        invoice(1, total="100.00", paid="40.00", payments=[{"PaymentID": "p1", "Date": "2026-03-05", "Amount": "40.00"}]),
        invoice(2, total="75.00", paid="0", credited="15.00", currency="USD", rate="0.5"),  # 150 / 30 NZD
        invoice(3, total="999.00", status="VOIDED"),
    ]
    figures = deal_figures(invoices, base_currency="NZD", today=date(2026, 3, 10))
    assert figures == {"invoiced": Decimal("250.00"), "paid": Decimal("40.00"), "outstanding": Decimal("180.00"),
                       "credited": Decimal("30.00"), "last_payment_date": date(2026, 3, 5),
                       "payment_status": "Outstanding"}
    assert deal_record(figures)["Xero_Last_Payment_Date"] == "2026-03-05"
    assert deal_figures([], base_currency="NZD", today=date(2026, 3, 10))["payment_status"] == "No invoices"


def test_each_payment_and_credit_allocation_is_one_note_keyed_by_its_xero_id():
    inv = invoice(1, total="100.00", paid="40.00", payments=[
        {"PaymentID": "p1", "Date": "2026-03-05", "Amount": "40.00", "Reference": "bank 123"}])
    inv["CreditNotes"] = [{"CreditNoteID": "cn1", "CreditNoteNumber": "CN-1", "AppliedAmount": "10", "Date": "2026-03-06"}]
    notes = payment_notes(inv, [])
    assert set(notes) == {"p1", "cn1:inv-1"}
    assert notes["p1"]["Note_Title"] == "Xero payment 40.00 NZD"
    content = notes["p1"]["Note_Content"]
    for expected in ("Date: 2026-03-05", "Amount: 40.00 NZD", "Reference: bank 123", "Invoice: INV-1",
                     "bankTransactionID=p1"):
        assert expected in content
    assert "CN-1" in notes["cn1:inv-1"]["Note_Title"] and "10.00" in notes["cn1:inv-1"]["Note_Title"]


def test_a_deleted_payment_is_shown_reversed():
    inv = invoice(1, total="100.00")
    listed = [{"PaymentID": "p9", "Status": "DELETED", "Date": "2026-03-07", "Amount": "25.00",
               "Invoice": {"InvoiceID": "inv-1"}},
              {"PaymentID": "p8", "Status": "AUTHORISED", "Amount": "5", "Invoice": {"InvoiceID": "inv-other"}}]
    notes = payment_notes(inv, listed)
    assert set(notes) == {"p9"}
    assert notes["p9"]["Note_Title"].endswith("(REVERSED in Xero)") and "reversed" in notes["p9"]["Note_Content"]


@pytest.mark.parametrize("reference", [None, "", "4876876"])
def test_no_reference_names_no_deal(reference):
    assert referenced_deal_ids(reference) == []


# -- mapping.yaml ``deals``


def test_mapping_yaml_sets_the_rules_pattern_and_field_names():
    from connector.mapping_config import parse_sync_config

    config = parse_sync_config("deals:\n  rules: [kept, only_open_deal]\n  reference_pattern: 'D-(\\d+)'\n"
                               "  invoice_field: Opportunity\n  fields: {paid: Collected}\n")
    assert config.deal_rules == ("kept", "only_open_deal") and config.deal_reference_pattern == r"D-(\d+)"
    assert config.invoice_deal_field == "Opportunity" and config.deal_fields["paid"] == "Collected"
    assert config.deal_fields["invoiced"] == "Xero_Invoiced"
    assert parse_sync_config("").deal_rules == ("kept", "reference", "sales_order", "only_open_deal")


@pytest.mark.parametrize(("text", "message"), [
    ("deals:\n  rules: [reference, kept]\n", "mapping.yaml line 2: deals.rules: 'kept' must come first"),
    ("deals:\n  rules: [kept, kept]\n", "deals.rules: a rule is listed twice"),
    ("deals:\n  rules: [kept, guess]\n", "deals.rules.1: Must be one of: kept, reference, sales_order, only_open_deal"),
    ("deals:\n  reference_pattern: 'D-\\d+'\n", "deals.reference_pattern: needs exactly one (group)"),
    ("deals:\n  reference_pattern: '(('\n", "deals.reference_pattern: not a valid regular expression"),
    ("deals:\n  fields: {paid: Xero_Invoiced}\n", "deals.fields: two figures cannot share a field"),
])
def test_bad_deal_settings_are_refused_with_the_line_and_the_key(text, message):
    from connector.errors import ConfigError
    from connector.mapping_config import parse_sync_config

    with pytest.raises(ConfigError) as caught:
        parse_sync_config(text, source="mapping.yaml")
    assert message in str(caught.value)


# -- property: a deal's figures equal Xero's own invoice amounts


deal_docs = st.lists(
    st.fixed_dictionaries({
        "amount": st.integers(min_value=1, max_value=50_000).map(lambda c: Decimal(c) * Decimal("0.01")),
        "status": st.sampled_from(["AUTHORISED", "AUTHORISED", "DRAFT", "VOIDED"]),
        "pay": st.lists(st.integers(1, 100), max_size=3),
        "reverse": st.booleans(),
        "credit": st.one_of(st.none(), st.integers(1, 100)),
    }),
    max_size=6,
)


@settings(max_examples=property_examples(50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=deal_docs)
def test_deal_figures_equal_the_sums_of_xeros_own_invoice_amounts(docs):
    from connector.clock import ManualClock
    from connector.json_codec import loads_from_api
    from connector.sandbox.xero import XeroSandbox, to_json

    cent = Decimal("0.01")
    clock = ManualClock()
    xero = XeroSandbox(clock)
    tenant = xero.add_tenant("Deal Ltd")
    contact = xero.create_contact(tenant, Name="Customer Ltd")["ContactID"]
    ids = []
    for doc in docs:
        status = "AUTHORISED" if doc["status"] == "VOIDED" else doc["status"]
        invoice_id = xero.create_invoice(tenant, contact, [{"Description": "work", "UnitAmount": doc["amount"],
                                                            "TaxType": "NONE"}], Status=status)["InvoiceID"]
        ids.append(invoice_id)
        if doc["status"] == "VOIDED":
            xero.update_invoice(tenant, invoice_id, Status="VOIDED")
            continue
        if status != "AUTHORISED":
            continue
        paid = []
        for share in doc["pay"]:
            due = xero.invoice(tenant, invoice_id)["AmountDue"]
            if due > 0:
                paid.append(xero.add_payment(tenant, invoice_id, max(cent, (due * share / 100).quantize(cent)))["PaymentID"])
        if doc["reverse"] and paid:
            xero.reverse_payment(tenant, paid[0])
        due = xero.invoice(tenant, invoice_id)["AmountDue"]
        if doc["credit"] is not None and due > 0:
            amount = max(cent, (due * doc["credit"] / 100).quantize(cent))
            note = xero.create_credit_note(tenant, contact, [{"Description": "credit", "UnitAmount": amount,
                                                              "TaxType": "NONE"}])
            xero.allocate_credit_note(tenant, note["CreditNoteID"], invoice_id, amount)
    invoices = [loads_from_api(to_json(xero.invoice(tenant, i))) for i in ids]

    figures = deal_figures(invoices, base_currency="NZD", today=clock.now().date())

    posted = [i for i in invoices if i["Status"] in ("AUTHORISED", "PAID")]
    total = lambda key: sum((Decimal(str(i[key])) for i in posted), Decimal("0.00"))  # noqa: E731
    assert figures["invoiced"] == total("Total")
    assert figures["paid"] == total("AmountPaid")
    assert figures["credited"] == total("AmountCredited")
    assert figures["outstanding"] == total("AmountDue")
    assert figures["invoiced"] == figures["paid"] + figures["credited"] + figures["outstanding"]
    notes = [payment_notes(i, []) for i in invoices]
    assert sum(len(n) for n in notes) == sum(len(i.get("Payments") or []) + len(i.get("CreditNotes") or [])
                                             for i in invoices)


def test_an_invoice_moved_to_another_customer_drops_only_the_connectors_own_link():
    new_account, new_deal = "4876876000000400777", "4876876000000400778"
    deals = {**DEALS, new_deal: zoho_deal(new_account)}
    ours = decide_deal({"InvoiceID": "inv-1"}, zoho_deal=DEAL_A, stored={"deal_id": DEAL_A, "rule": "only_open_deal"},
                       account_id=new_account, deals=deals)
    assert (ours["deal_id"], ours["rule"], ours["dropped"]) == (new_deal, "only_open_deal", DEAL_A)
    persons = decide_deal({"InvoiceID": "inv-1"}, zoho_deal=DEAL_A, stored={"deal_id": DEAL_A, "rule": "manual"},
                          account_id=new_account, deals=deals)
    assert (persons["deal_id"], persons["rule"]) == (DEAL_A, "kept") and "dropped" not in persons
    nowhere = decide_deal({"InvoiceID": "inv-1"}, zoho_deal=DEAL_A, stored={"deal_id": DEAL_A, "rule": "reference"},
                          account_id="4876876000000400998", deals=DEALS)
    assert (nowhere["deal_id"], nowhere["rule"], nowhere["dropped"]) == (None, UNASSIGNED, DEAL_A)
