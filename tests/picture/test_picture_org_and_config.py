"""The org as it is (modules, custom fields, setup-zoho) and the user's mapping file."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.http import make_session
from connector.mapping.contacts import map_contact
from connector.mapping.overrides import apply_field_overrides
from connector.mapping_config import parse_sync_config
from connector.sandbox.common import serve
from connector.sandbox.xero_seed import seed_demo_org
from connector.sandbox.zoho import ZohoSandbox
from connector.zoho.client import ZohoClient
from connector.zoho_setup import check_org, setup_org


def test_missing_custom_field_is_named_and_setup_zoho_creates_it():
    bare = ZohoSandbox(xero_fields=False)
    with serve(bare) as server:
        class Tokens:
            def access_token(self):
                return token

            def refresh(self, force=False):
                return token

            def api_domain(self):
                return server.url

        token = bare._mint_access_token(bare._grants[bare.issue_refresh_token()], bare.clock.time())["access_token"]
        zoho = ZohoClient(session=make_session(), tokens=Tokens())
        check = check_org(zoho)
        with pytest.raises(ConfigError, match="Zoho Accounts has no field Xero_Contact_ID: create it in Setup"):
            check.raise_if_unusable()
        created = setup_org(zoho)
        assert "Accounts.Xero_Contact_ID" in created and "Invoices.Xero_Invoice_ID" in created
        assert check_org(zoho).missing == ()
        assert bare.fields["Accounts"]["Xero_Contact_ID"].unique


def test_an_edition_without_invoices_syncs_contacts_only(picture):
    standard = ZohoSandbox(edition="standard")
    assert "Invoices" not in standard.modules
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    invoice = picture.xero.create_invoice(picture.tenant_id, contacts[0], [
        {"Description": "x", "Quantity": 1, "UnitAmount": 5, "AccountCode": "200"}])
    picture.fetch("invoices", [invoice["InvoiceID"]])
    push = picture.push()
    push.invoices_enabled = False
    outcome = push.invoices([invoice["InvoiceID"]])
    assert outcome.skipped == [invoice["InvoiceID"]]
    entry = picture.deps.store.audit.trail(picture.connection_id, "invoice", invoice["InvoiceID"])[-1]
    assert "no Invoices module" in entry.detail["reason"]
    assert picture.zoho.writes("Invoices") == []


def test_mapping_file_errors_name_the_line():
    text = "trigger: []\nfields:\n  Accounts:\n    Fax: {omit: true}\n    Description: {from: 7}\n"
    with pytest.raises(ConfigError, match=r"mapping.yaml line 5: fields.Accounts.Description.from"):
        parse_sync_config(text, source="mapping.yaml")
    with pytest.raises(ConfigError, match=r"line 2: crm_owns"):
        parse_sync_config('{"trigger": [],\n "crm_owns": {"Contacts": ["Account_Number"]}}', source="m.json")


def test_overrides_change_the_mapped_account_without_code():
    config = parse_sync_config("fields:\n  Accounts:\n    Description: {from: ContactNumber}\n    Fax: {omit: true}\n"
                               "    Account_Type: {value: Customer}\n")
    contact = {"ContactID": "c1", "Name": "Kiwi Ltd", "ContactNumber": "CUST-9",
               "Phones": [{"PhoneType": "FAX", "PhoneNumber": "555"}]}
    account = map_contact(contact)["account"]
    assert account["Fax"] == "555"
    changed = apply_field_overrides(account, contact, "Accounts", config.field_overrides)
    assert changed["Description"] == "CUST-9" and "Fax" not in changed and changed["Account_Type"] == "Customer"
