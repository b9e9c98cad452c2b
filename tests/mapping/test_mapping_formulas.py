"""Formula neutralising (the ``neutralise_formulas`` option): pure, and careful with numbers and phones."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.mapping import zoho_fields as zf
from connector.mapping.formulas import neutralise_record, neutralise_text, restore
from connector.mapping_config import parse_sync_config


@pytest.mark.parametrize("text", ["=SUM(A1:A9)", "+cmd|' /C calc'!A0", "-2+A1", "@SUM(1,2)", "\tTab", "\rCR",
                                  '=HYPERLINK("http://evil.example","click")'])
def test_formula_text_gets_a_leading_apostrophe_and_comes_back_unchanged(text):
    marked = neutralise_text(text)
    assert marked == "'" + text
    assert restore(marked) == text
    assert neutralise_text(marked) == marked  # already neutral: nothing stacks up


@pytest.mark.parametrize("text", ["-5", "+3.50", "-1,234.00", "+44 20 7946 0958", "(021) 555-0101", "-2+3",
                                  "Kea Ltd", "O'Brien", "", "x=1"])
def test_numbers_and_ordinary_text_are_left_alone(text):
    assert neutralise_text(text) == text
    assert restore(text) == text


def test_a_record_keeps_phones_emails_urls_ids_and_lookups_and_fits_the_field():
    record = {
        "Account_Name": "=1+1", "Phone": "+64 21 555 0101 ext 5", "Fax": "=cmd", "Website": "https://x.example",
        zf.ACCOUNT_XERO_ID: "-abc", zf.XERO_URL: "https://go.xero.com/x", "Account_Number": "-5",
        "Description": "@here", "Parent": {"id": "1"}, zf.ACCOUNT_OUTSTANDING: -5,
        "Billing_City": "=" + "x" * 29,
    }
    out = neutralise_record("Accounts", record)
    assert out["Account_Name"] == "'=1+1" and out["Description"] == "'@here"
    assert out["Phone"] == record["Phone"]  # a phone may start with +, even with words after it
    assert out["Fax"] == "'=cmd"  # but never with =
    for kept in ("Website", zf.ACCOUNT_XERO_ID, zf.XERO_URL, "Account_Number", "Parent", zf.ACCOUNT_OUTSTANDING):
        assert out[kept] == record[kept]
    assert zf.utf16_length(out["Billing_City"]) == zf.ACCOUNTS_MAX_LENGTH["Billing_City"]
    assert out["Billing_City"].startswith("'=")
    assert record["Account_Name"] == "=1+1"  # the input is not changed


def test_invoice_line_descriptions_are_neutralised():
    lines = [{"Product_Name": {"id": "1"}, "Description": "=2*3"}, {"Product_Name": {"id": "1"}}]
    out = neutralise_record("Invoices", {"Subject": "-INV-1", "Invoiced_Items": lines})
    assert out["Subject"] == "'-INV-1"
    assert out["Invoiced_Items"] == [{"Product_Name": {"id": "1"}, "Description": "'=2*3"}, {"Product_Name": {"id": "1"}}]


def test_the_option_is_off_unless_the_mapping_file_turns_it_on():
    assert parse_sync_config("trigger: []\n").neutralise_formulas is False
    assert parse_sync_config("neutralise_formulas: true\n").neutralise_formulas is True
    with pytest.raises(ConfigError, match="line 1: neutralise_formulas"):
        parse_sync_config("neutralise_formulas: sometimes\n", source="mapping.yaml")
