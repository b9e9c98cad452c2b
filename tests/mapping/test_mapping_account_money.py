"""The Account's money fields: mapped from the figures, named by mapping.yaml, created by setup."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connector.errors import ConfigError
from connector.mapping import zoho_fields as zf
from connector.mapping.contacts import map_contact
from connector.mapping.money import PAID_UP
from connector.mapping_config import parse_sync_config
from connector.zoho_setup import check_org, needed_fields

CONTACT = {"ContactID": "c-1", "Name": "Acme", "Balances": {"AccountsReceivable": {"Outstanding": 5, "Overdue": 1}}}
FIGURES = {"outstanding": Decimal("0.00"), "overdue": Decimal("0.00"), "total_invoiced": Decimal("120.50"),
           "credit_available": Decimal("0.00"), "last_invoice_date": date(2026, 3, 1),
           "last_payment_date": None, "last_payment_amount": None, "payment_status": PAID_UP, "currency": "NZD"}


def test_figures_replace_the_contacts_balances_and_absent_ones_clear_the_field():
    account = map_contact(CONTACT, money=FIGURES)["account"]
    assert account[zf.ACCOUNT_OUTSTANDING] == Decimal("0.00")  # not Balances' 5
    assert account[zf.ACCOUNT_TOTAL_INVOICED] == Decimal("120.50")
    assert account[zf.ACCOUNT_LAST_INVOICE_DATE] == "2026-03-01"
    assert account[zf.ACCOUNT_LAST_PAYMENT_DATE] is None and account[zf.ACCOUNT_LAST_PAYMENT_AMOUNT] is None
    assert account[zf.ACCOUNT_PAYMENT_STATUS] == "Paid up"
    assert "currency" not in account and "Currency" not in account


def test_without_figures_the_balances_still_map():
    account = map_contact(CONTACT)["account"]
    assert (account[zf.ACCOUNT_OUTSTANDING], account[zf.ACCOUNT_OVERDUE]) == (Decimal("5.00"), Decimal("1.00"))
    assert zf.ACCOUNT_TOTAL_INVOICED not in account


def test_mapping_yaml_renames_a_figure_and_setup_needs_the_renamed_field():
    config = parse_sync_config("account_fields:\n  outstanding: Amount_Owing\nbase_currency: NZD\n")
    assert config.account_fields["outstanding"] == "Amount_Owing"
    assert config.account_fields["overdue"] == zf.ACCOUNT_OVERDUE
    assert config.base_currency == "NZD"
    account = map_contact(CONTACT, money=FIGURES, money_fields=config.account_fields)["account"]
    assert account["Amount_Owing"] == Decimal("0.00") and zf.ACCOUNT_OUTSTANDING not in account
    names = {f.api_name for f in needed_fields(config.account_fields) if f.module == "Accounts"}
    assert "Amount_Owing" in names and zf.ACCOUNT_OUTSTANDING not in names


@pytest.mark.parametrize("text, message", [
    ("account_fields:\n  outstanding: Xero_Overdue\n", "two figures cannot share a field: Xero_Overdue"),
    ("account_fields:\n  owed: X\n", "account_fields"),
    ("base_currency: nzd\n", "3-letter"),
])
def test_bad_account_settings_are_refused_with_the_line(text, message):
    with pytest.raises(ConfigError) as raised:
        parse_sync_config(text, source="mapping.yaml")
    assert message in str(raised.value) and "mapping.yaml line" in str(raised.value)


class _Org:
    """A Zoho org that has every custom field but the ones named."""

    def __init__(self, lacking: set[str]) -> None:
        self.lacking = lacking

    def modules(self):
        return [{"api_name": m} for m in ("Accounts", "Contacts", "Products", "Invoices")]

    def fields(self, module):
        return [{"api_name": f.api_name} for f in needed_fields() if f.module == module and f.api_name not in self.lacking]


def test_an_org_set_up_before_the_new_figures_still_syncs_and_check_lists_them():
    check = check_org(_Org({zf.ACCOUNT_TOTAL_INVOICED, zf.ACCOUNT_PAYMENT_STATUS}))
    assert {f.api_name for f in check.missing} == {zf.ACCOUNT_TOTAL_INVOICED, zf.ACCOUNT_PAYMENT_STATUS}
    check.raise_if_unusable()  # optional figures do not stop the sync
    with pytest.raises(ConfigError, match=zf.ACCOUNT_OUTSTANDING):
        check_org(_Org({zf.ACCOUNT_OUTSTANDING})).raise_if_unusable()
