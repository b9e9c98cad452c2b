"""mapping/won_deals.py (pure) and its mapping.yaml section."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.errors import ConfigError, DataError
from connector.mapping import won_deals as won
from connector.mapping_config import parse_sync_config

DEAL = {"id": "4876876000000412345", "Deal_Name": "Deck and pergola", "Stage": "Closed Won",
        "Account_Name": {"id": "4876876000000400001", "name": "Kauri Builders"}, "Amount": 5000.0}


def test_the_section_is_off_by_default_and_read_with_its_defaults():
    config = parse_sync_config("")
    assert (config.won_deal_invoices, config.won_deal_stage, config.won_deal_status) == (False, "Closed Won", "DRAFT")
    config = parse_sync_config("won_deals:\n  enabled: true\n  status: AUTHORISED\n  account_code: '200'\n"
                               "  tax_type: OUTPUT2\n  pipelines: {Renewals: Renewed}\n")
    assert (config.won_deal_invoices, config.won_deal_status, config.won_deal_account_code,
            config.won_deal_tax_type, dict(config.won_deal_pipelines)) == (
        True, "AUTHORISED", "200", "OUTPUT2", {"Renewals": "Renewed"})


@pytest.mark.parametrize("text, named", [
    ("won_deals:\n  status: PAID\n", "won_deals.status"),
    ("won_deals:\n  account_code: '12345678901'\n", "won_deals.account_code"),
    ("won_deals:\n  tax_type: 'output 2'\n", "won_deals.tax_type"),
])
def test_a_wrong_setting_names_its_key_and_line(text, named):
    with pytest.raises(ConfigError, match=rf"mapping.yaml line 2: {named}"):
        parse_sync_config(text, source="mapping.yaml")


def test_won_means_the_pipeline_s_own_stage_when_pipelines_are_listed():
    assert won.is_won(DEAL, stage="Closed Won", pipelines={})
    assert not won.is_won({**DEAL, "Stage": "Closed Lost"}, stage="Closed Won", pipelines={})
    renewal = {**DEAL, "Stage": "Renewed", "Pipeline": {"name": "Renewals", "id": "1"}}
    assert won.is_won(renewal, stage="Closed Won", pipelines={"Renewals": "Renewed"})
    assert not won.is_won(DEAL, stage="Closed Won", pipelines={"Renewals": "Renewed"})  # pipeline not opted in
    assert won.won_stage(DEAL, stage="Closed Won", pipelines={"Renewals": "Renewed"}) is None


def test_the_amount_line_carries_the_configured_item_or_account_and_tax_and_the_deal_id_as_reference():
    invoice = won.won_deal_invoice({**DEAL, "Currency": "aud"}, contact_id="c-1", source=won.AMOUNT,
                                   item_code="DEAL", account_code="200", tax_type="OUTPUT2")
    assert invoice == {"Type": "ACCREC", "Contact": {"ContactID": "c-1"}, "Status": "DRAFT",
                       "Reference": DEAL["id"], "LineAmountTypes": "Exclusive", "CurrencyCode": "AUD",
                       "LineItems": [{"Description": "Deck and pergola", "Quantity": Decimal(1),
                                      "UnitAmount": Decimal("5000.0"), "ItemCode": "DEAL", "TaxType": "OUTPUT2"}]}
    plain = won.won_deal_invoice(DEAL, contact_id="c-1", source=won.AMOUNT, account_code="200")
    assert plain["LineItems"][0]["AccountCode"] == "200" and "CurrencyCode" not in plain


def test_document_lines_use_the_product_s_xero_item_else_the_account():
    lines = [{"Product_Name": {"id": "p1", "name": "Decking"}, "Quantity": 30, "List_Price": 40, "Discount": 100},
             {"Product_Name": {"id": "p2", "name": "Labour"}, "Quantity": 2, "List_Price": 85.5}]
    invoice = won.won_deal_invoice(DEAL, contact_id="c-1", source=won.SALES_ORDER, lines=lines,
                                   products={"p1": {"Xero_Item_Code": "DECK-01"}}, account_code="200")
    assert invoice["LineItems"] == [
        {"Description": "Decking", "Quantity": Decimal(30), "UnitAmount": Decimal(40), "ItemCode": "DECK-01",
         "DiscountAmount": Decimal(100)},
        {"Description": "Labour", "Quantity": Decimal(2), "UnitAmount": Decimal("85.5"), "AccountCode": "200"}]


def test_nothing_to_bill_is_a_data_error_that_says_what_to_do():
    with pytest.raises(DataError, match="set its Amount in Zoho"):
        won.won_deal_invoice({**DEAL, "Amount": None}, contact_id="c-1", source=won.AMOUNT)


def test_the_idempotency_key_is_per_deal_and_body_and_fits_xero_s_limit():
    body = won.won_deal_invoice(DEAL, contact_id="c-1", source=won.AMOUNT)
    key = won.idempotency_key(7, DEAL["id"], body)
    assert key == won.idempotency_key(7, DEAL["id"], dict(body)) and len(key) <= 128
    assert key != won.idempotency_key(7, DEAL["id"], {**body, "Status": "AUTHORISED"})
    assert key != won.idempotency_key(8, DEAL["id"], body)
    assert len(won.idempotency_key(7, "9" * 200, body)) <= 128


@pytest.mark.parametrize("message, key", [
    ("The TaxType code 'NOSUCHTAX' does not exist or cannot be used with this type of transaction.",
     "won_deals.tax_type"),
    ("Tax rate must be valid.", "won_deals.tax_type"),
    ("Account must be valid.", "won_deals.account_code"),
    ("Item code 'DECK' is not valid", "won_deals.item_code"),
    ("Account code '999' is not a valid code for this document.", "won_deals.account_code"),
    ("The document date cannot be before the period lock date", "lock date"),
    ("The contact is archived", "archived contact"),
])
def test_each_refusal_says_what_to_fix(message, key):
    assert key in won.advice_for(message)


def test_the_fault_suite_s_invariant_catches_a_deal_invoiced_twice_and_a_won_deal_not_invoiced():
    from tests.faults.invariants import _won_deal_problems

    accounts = {"c-1": [{"id": "a-1"}]}
    deals = [{"id": "d-1", "Stage": "Closed Won", "Account_Name": {"id": "a-1"}},
             {"id": "d-2", "Stage": "Qualification", "Account_Name": {"id": "a-1"}},
             {"id": "d-3", "Stage": "Closed Won", "Account_Name": {"id": "someone else's"}}]
    once = [{"Type": "ACCREC", "Status": "DRAFT", "Reference": "d-1"},
            {"Type": "ACCREC", "Status": "VOIDED", "Reference": "d-1"},  # voided by a person: not counted
            {"Type": "ACCREC", "Status": "AUTHORISED", "Reference": "PO for deal d-2"}]
    assert _won_deal_problems(once, accounts, deals, "Closed Won", "DRAFT") == []
    twice = once + [{"Type": "ACCREC", "Status": "DRAFT", "Reference": "d-1"}]
    assert _won_deal_problems(twice, accounts, deals, None, "DRAFT") == [
        "deal d-1 (Closed Won) has 2 Xero invoices made for it"]
    assert _won_deal_problems(once[1:], accounts, deals, "Closed Won", "DRAFT") == [
        "deal d-1 (Closed Won) has 0 Xero invoices made for it"]
    assert _won_deal_problems(once[1:], accounts, deals, None, "DRAFT") == []  # won deals not invoiced here
    assert _won_deal_problems(once, accounts, deals, "Closed Won", "AUTHORISED") == [
        "deal d-1: its Xero invoice is DRAFT, not AUTHORISED"]
