"""Zoho -> Xero write-back merges only the CRM-owned fields into Xero's contact as it is now.

A change made in Xero after our last read (no webhook handled yet: the snapshot is stale) must
survive a person's edit in Zoho being written back; Website, read-only in Xero's Contacts API,
is never written.
"""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.mapping import zoho_fields as zf
from connector.mapping_config import parse_sync_config
from connector.pipeline.from_zoho import pull_zoho_changes


def _pull(picture, module, zoho_id):
    deps = picture.deps
    return pull_zoho_changes(
        picture.connection_id, module, [zoho_id], operation="update",
        zoho=deps.zoho_client(picture.connection), xero=deps.xero_client(picture.connection),
        snapshots=deps.store.snapshots, links=deps.store.links, audit=deps.store.audit,
        ledger=deps.store.write_ledger, config=deps.sync_config,
    )


def _contact(picture) -> str:
    contact = picture.xero.create_contact(
        picture.tenant_id, Name="Tui Traders Ltd", FirstName="Aroha", LastName="Ngata",
        EmailAddress="aroha@tui.example",
        Phones=[{"PhoneType": "DDI", "PhoneNumber": "555 0101"}, {"PhoneType": "FAX", "PhoneNumber": "555 0199"},
                {"PhoneType": "MOBILE", "PhoneNumber": "021 555 010"}],
        ContactPersons=[{"FirstName": "Mere", "LastName": "Tane", "EmailAddress": "mere@tui.example"}])
    picture.sync("contacts", [contact["ContactID"]])
    return contact["ContactID"]


def _zoho_person(picture, key) -> str:
    return picture.deps.store.links.get(picture.connection_id, "contact_person", key).zoho_id


def _phones(contact) -> dict:
    return {p["PhoneType"]: p["PhoneNumber"] for p in contact["Phones"]}


def test_a_phone_changed_in_xero_meanwhile_survives_a_crm_phone_write_back(picture):
    contact_id = _contact(picture)
    # In Xero, someone changes the company's phone and fax (Xero owns them); we have not fetched that yet.
    picture.xero.update_contact(picture.tenant_id, contact_id, Phones=[
        {"PhoneType": "FAX", "PhoneNumber": "555 0200"}, {"PhoneType": "DEFAULT", "PhoneNumber": "555 0000"}])
    # In Zoho, a person changes the primary contact's phone (the CRM owns it).
    picture.zoho.person_edit("Contacts", _zoho_person(picture, f"{contact_id}:primary"), Phone="555 0303")

    assert _pull(picture, "Contacts", _zoho_person(picture, f"{contact_id}:primary")).xero_writes == 1

    phones = _phones(picture.xero.contact(picture.tenant_id, contact_id))
    assert phones["DDI"] == "555 0303"
    assert phones["FAX"] == "555 0200" and phones["DEFAULT"] == "555 0000" and phones["MOBILE"] == "021 555 010"


def test_a_person_added_in_xero_meanwhile_survives_a_crm_name_write_back(picture):
    contact_id = _contact(picture)
    mere_key = f"{contact_id}:person:mere@tui.example"
    # In Xero, someone adds a second person; we have not fetched that yet.
    picture.xero.update_contact(picture.tenant_id, contact_id, ContactPersons=[
        {"FirstName": "Mere", "LastName": "Tane", "EmailAddress": "mere@tui.example"},
        {"FirstName": "Hemi", "LastName": "Walker", "EmailAddress": "hemi@tui.example"}])
    # In Zoho, a person corrects Mere's first name (the CRM owns people's names).
    picture.zoho.person_edit("Contacts", _zoho_person(picture, mere_key), First_Name="Merenia")

    assert _pull(picture, "Contacts", _zoho_person(picture, mere_key)).xero_writes == 1

    xero_contact = picture.xero.contact(picture.tenant_id, contact_id)
    people = {(p["FirstName"], p["LastName"], p["EmailAddress"]) for p in xero_contact["ContactPersons"]}
    assert people == {("Merenia", "Tane", "mere@tui.example"), ("Hemi", "Walker", "hemi@tui.example")}
    assert xero_contact["FirstName"] == "Aroha"


def test_website_is_never_written_to_xero(picture):
    with pytest.raises(ConfigError, match="Website"):
        parse_sync_config("crm_owns:\n  Accounts: [Account_Name, Website]\n", source="mapping.yaml")

    contact_id = _contact(picture)
    picture.xero.update_contact(picture.tenant_id, contact_id, Website="https://tui.example")  # set in Xero's UI
    xero = picture.deps.xero_client(picture.connection)
    answer = xero.update_contact({"ContactID": contact_id, "Website": "https://elsewhere.example"},
                                 idempotency_key="website-is-read-only")
    # Xero ignores a read-only element on write; the sandbox does the same.
    assert answer["Website"] == "https://tui.example"
    assert picture.xero.contact(picture.tenant_id, contact_id)["Website"] == "https://tui.example"
    # And the account in Zoho still shows Xero's website after the next push.
    picture.sync("contacts", [contact_id])
    account_id = picture.deps.store.links.get(picture.connection_id, "contact", contact_id).zoho_id
    assert picture.zoho.record("Accounts", account_id)["Website"] == "https://tui.example"
    assert zf.ACCOUNT_XERO_ID in picture.zoho.record("Accounts", account_id)


def test_neutralised_formulas_reach_zoho_once_and_never_travel_back(picture):
    (picture.deps.settings.data_dir / "mapping.yaml").write_text(
        "neutralise_formulas: true\ncrm_owns:\n  Contacts: [First_Name, Last_Name, Email, Phone, Mobile]\n")
    picture.deps.__dict__.pop("sync_config", None)
    contact = picture.xero.create_contact(
        picture.tenant_id, Name='=HYPERLINK("http://evil.example","Tui")', FirstName="@Aroha", LastName="Ngata",
        AccountNumber="-5", Phones=[{"PhoneType": "DDI", "PhoneNumber": "+64 9 555 0101"}])
    contact_id = contact["ContactID"]
    picture.sync("contacts", [contact_id])

    account = picture.zoho.record("Accounts", picture.deps.store.links.get(
        picture.connection_id, "contact", contact_id).zoho_id)
    primary_id = _zoho_person(picture, f"{contact_id}:primary")
    person = picture.zoho.record("Contacts", primary_id)
    assert account["Account_Name"] == "'" + contact["Name"] and account["Account_Number"] == "-5"
    assert person["First_Name"] == "'@Aroha" and person["Phone"] == "+64 9 555 0101"
    assert picture.sync("contacts", [contact_id]).written == []  # stable: nothing to write again

    # A person edits the last name in Zoho: Xero gets that edit, and the first name without the mark.
    picture.zoho.person_edit("Contacts", primary_id, Last_Name="Ngata-Hau")
    assert _pull(picture, "Contacts", primary_id).xero_writes == 1
    xero_contact = picture.xero.contact(picture.tenant_id, contact_id)
    assert (xero_contact["FirstName"], xero_contact["LastName"]) == ("@Aroha", "Ngata-Hau")
