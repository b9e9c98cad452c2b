"""Unit tests for map_contact: Xero Contact -> Zoho Account + Contacts."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.errors import DataError
from connector.mapping import map_contact
from connector.mapping import zoho_fields as zf

FIXTURES = Path(__file__).parent / "fixtures"
CONTACT_ID = "5f0e3c3a-6b1d-4c55-9a8e-2d7f1b9c4e21"


def load(name: str, *, decimals: bool = False) -> dict[str, Any]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return json.loads(text, parse_float=Decimal) if decimals else json.loads(text)


def minimal(**extra: Any) -> dict[str, Any]:
    return {"ContactID": "c-1", "Name": "Minimal Ltd", **extra}


def test_full_contact_account_shape() -> None:
    account = map_contact(load("contact_full.json"))["account"]
    assert account == {
        "Account_Name": "Harbour Lights Trading Ltd",
        "Account_Number": "7654321",
        "Phone": "+64 9 555-0100",
        "Website": "https://harbourlights.example",
        # Billing from POBOX (blank Region left out), Shipping from STREET.
        "Billing_Street": "PO Box 9981",
        "Billing_City": "Wellington",
        "Billing_Code": "6141",
        "Billing_Country": "New Zealand",
        "Shipping_Street": "12 Quay Street\nLevel 3",
        "Shipping_City": "Auckland",
        "Shipping_State": "Auckland",
        "Shipping_Code": "1010",
        "Shipping_Country": "New Zealand",
        "Currency": "NZD",
        "Xero_Tax_Number": "123-456-789",
        "Xero_Contact_ID": CONTACT_ID,
        "Xero_Status": "ACTIVE",
        "Xero_Url": f"https://go.xero.com/Contacts/View/{CONTACT_ID}",
        "Xero_Outstanding": Decimal("1180.90"),
        "Xero_Overdue": Decimal("236.10"),
    }
    assert "Fax" not in account  # the FAX phone is all empty strings


def test_full_contact_people() -> None:
    people = map_contact(load("contact_full.json"))["contacts"]
    mailing = {
        "Mailing_Street": "12 Quay Street\nLevel 3",
        "Mailing_City": "Auckland",
        "Mailing_State": "Auckland",
        "Mailing_Zip": "1010",
        "Mailing_Country": "New Zealand",
    }
    assert people == [
        {
            "Xero_Person_Key": f"{CONTACT_ID}:primary",
            "First_Name": "Mereana",
            "Last_Name": "Tūhoe",
            "Email": "mereana@harbourlights.example",
            "Phone": "+64 9 555-0101",  # DDI first for the person
            "Mobile": "+64 21 555 0199",
            **mailing,
        },
        {
            "Xero_Person_Key": f"{CONTACT_ID}:person:soren.k@harbourlights.example",
            "First_Name": "Søren",
            "Last_Name": "Kierkegaard",
            "Email": "Soren.K@HarbourLights.example",
            "Phone": "+64 9 555-0100",  # the switchboard, no mobile
            **mailing,
        },
        {
            "Xero_Person_Key": f"{CONTACT_ID}:person:1",  # no email: keyed by position
            "Last_Name": "Ana",  # first name only -> Last_Name
            "Phone": "+64 9 555-0100",
            **mailing,
        },
        {
            "Xero_Person_Key": f"{CONTACT_ID}:person:orders@harbourlights.example",
            "Last_Name": "orders",  # email only -> local part
            "Email": "orders@harbourlights.example",
            "Phone": "+64 9 555-0100",
            **mailing,
        },
    ]
    for person in people:
        assert "Account_Name" not in person  # the pipeline adds the lookup


def test_decimal_parsed_json_maps_the_same() -> None:
    assert map_contact(load("contact_full.json", decimals=True)) == map_contact(load("contact_full.json"))


def test_blank_archived_contact_omits_empty_values() -> None:
    result = map_contact(load("contact_blank.json"))
    assert result["account"] == {
        "Account_Name": "Old Account Co",
        "Xero_Contact_ID": "d5be01fb-0000-4c3a-9c67-e10c2a03412c",
        "Xero_Status": "ARCHIVED",
        "Xero_Url": "https://go.xero.com/Contacts/View/d5be01fb-0000-4c3a-9c67-e10c2a03412c",
    }
    assert result["contacts"] == []  # no name parts and no email: no person
    assert "" not in result["account"].values()


def test_address_fallbacks_work_both_ways() -> None:
    street_only = minimal(Addresses=[
        {"AddressType": "STREET", "AddressLine1": "1 Main St", "City": "Town"},
        {"AddressType": "POBOX", "AddressLine1": "", "City": "", "Region": "", "PostalCode": "", "Country": ""},
    ])
    account = map_contact(street_only)["account"]
    assert account["Billing_Street"] == account["Shipping_Street"] == "1 Main St"
    pobox_only = minimal(FirstName="Jo", Addresses=[{"AddressType": "POBOX", "AddressLine4": "Box 7", "Country": "NZ"}])
    result = map_contact(pobox_only)
    assert result["account"]["Shipping_Street"] == "Box 7"
    assert result["contacts"][0]["Mailing_Street"] == "Box 7"
    assert result["contacts"][0]["Mailing_Country"] == "NZ"


def test_account_number_falls_back_to_contact_number() -> None:
    assert map_contact(minimal(ContactNumber="SB2"))["account"]["Account_Number"] == "SB2"
    assert map_contact(minimal(ContactNumber="SB2", AccountNumber="  "))["account"]["Account_Number"] == "SB2"


def test_phone_formatting() -> None:
    phones = [
        {"PhoneType": "DEFAULT", "PhoneNumber": "847-1294", "PhoneAreaCode": "(626)", "PhoneCountryCode": ""},
        {"PhoneType": "FAX", "PhoneNumber": "333-2233", "PhoneAreaCode": "212", "PhoneCountryCode": "+1"},
        {"PhoneType": "MOBILE", "PhoneNumber": "", "PhoneAreaCode": "21", "PhoneCountryCode": "64"},
    ]
    result = map_contact(minimal(Phones=phones, LastName="Lee"))
    assert result["account"]["Phone"] == "(626) 847-1294"
    assert result["account"]["Fax"] == "+1 212 333-2233"
    assert result["contacts"][0]["Phone"] == "(626) 847-1294"  # no DDI: DEFAULT
    assert "Mobile" not in result["contacts"][0]  # area code alone is no number


def test_archived_status_marker_and_unarchive_clears_it() -> None:
    assert map_contact(minimal(ContactStatus="ARCHIVED"))["account"]["Xero_Status"] == "ARCHIVED"
    assert map_contact(minimal(ContactStatus="ACTIVE"))["account"]["Xero_Status"] == "ACTIVE"
    assert "Xero_Status" not in map_contact(minimal())["account"]


def test_people_name_rules() -> None:
    only_last = map_contact(minimal(LastName="Ngata"))["contacts"][0]
    assert only_last["Last_Name"] == "Ngata" and "First_Name" not in only_last
    only_first = map_contact(minimal(FirstName="Aroha"))["contacts"][0]
    assert only_first["Last_Name"] == "Aroha" and "First_Name" not in only_first
    only_email = map_contact(minimal(EmailAddress="Billing.Team@x.example"))["contacts"][0]
    assert only_email["Last_Name"] == "Billing.Team"
    assert only_email["Email"] == "Billing.Team@x.example"
    assert only_email["Xero_Person_Key"] == "c-1:primary"


def test_person_duplicates_and_primary_repeat_are_skipped() -> None:
    contact = minimal(
        EmailAddress="Boss@x.example",
        FirstName="Big",
        LastName="Boss",
        ContactPersons=[
            {"FirstName": "Big", "LastName": "Boss", "EmailAddress": "boss@X.example"},
            {"FirstName": "A", "LastName": "One", "EmailAddress": "a@x.example"},
            {"FirstName": "A", "LastName": "Again", "EmailAddress": "A@x.example"},
            {"FirstName": "", "LastName": "", "EmailAddress": ""},
        ],
    )
    people = map_contact(contact)["contacts"]
    assert [p["Xero_Person_Key"] for p in people] == ["c-1:primary", "c-1:person:a@x.example"]
    assert people[1]["Last_Name"] == "One"


def test_malformed_email_is_left_out_but_still_keys_the_person() -> None:
    contact = minimal(ContactPersons=[{"FirstName": "No", "LastName": "At", "EmailAddress": "not-an-email"}])
    person = map_contact(contact)["contacts"][0]
    assert "Email" not in person
    assert person["Xero_Person_Key"] == "c-1:person:not-an-email"


def test_non_ascii_names_pass_through() -> None:
    contact = minimal(Name="株式会社 さくら 🌸", FirstName="Zoë", LastName="Ørsted-Ñúñez")
    result = map_contact(contact)
    assert result["account"]["Account_Name"] == "株式会社 さくら 🌸"
    assert result["contacts"][0]["First_Name"] == "Zoë"
    assert result["contacts"][0]["Last_Name"] == "Ørsted-Ñúñez"


def test_truncation_respects_limits_and_never_splits_characters() -> None:
    long_name = "Ä" * 99 + "🌸" + "tail"  # the emoji would straddle the 100-unit limit
    contact = minimal(
        Name=long_name,
        FirstName="F" * 60,
        LastName="L" * 200,
        Addresses=[{"AddressType": "STREET", "AddressLine1": "x" * 300, "City": "C" * 31}],
    )
    result = map_contact(contact)
    assert result["account"]["Account_Name"] == "Ä" * 99
    assert result["account"]["Billing_Street"] == "x" * 250
    assert result["account"]["Billing_City"] == "C" * 30
    person = result["contacts"][0]
    assert person["First_Name"] == "F" * 40
    assert person["Last_Name"] == "L" * 80
    # A long email is dropped (a cut email is wrong), a long URL too.
    too_long_email = "a" * 95 + "@x.example"
    assert "Email" not in map_contact(minimal(EmailAddress=too_long_email))["contacts"][0]
    assert "Website" not in map_contact(minimal(Website="https://x.example/" + "p" * 200))["account"]


def test_truncation_does_not_leave_trailing_space() -> None:
    account = map_contact(minimal(Name="A" * 99 + " B" * 10))["account"]
    assert account["Account_Name"] == "A" * 99


def test_long_person_key_is_hashed_not_cut() -> None:
    email = "x" * 240 + "@x.example"
    person = map_contact(minimal(ContactPersons=[{"LastName": "Long", "EmailAddress": email}]))["contacts"][0]
    key = person["Xero_Person_Key"]
    assert key.startswith("c-1:person:sha256:") and len(key) <= zf.CUSTOM_TEXT_MAX


def test_balances_absent_or_partial() -> None:
    assert "Xero_Outstanding" not in map_contact(minimal())["account"]
    partial = map_contact(minimal(Balances={"AccountsReceivable": {"Outstanding": "12.3"}}))["account"]
    assert partial["Xero_Outstanding"] == Decimal("12.30")
    assert "Xero_Overdue" not in partial
    assert "Xero_Outstanding" not in map_contact(minimal(Balances={"AccountsPayable": {"Outstanding": 1}}))["account"]


def test_short_code_deep_link() -> None:
    account = map_contact(minimal(), xero_short_code="!NLglS")["account"]
    assert account["Xero_Url"] == (
        "https://go.xero.com/organisationlogin/default.aspx?shortcode=!NLglS&redirecturl=/Contacts/View/c-1"
    )


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c.pop("Name"), "Name"),
        (lambda c: c.update(Name="   "), "Name"),
        (lambda c: c.pop("ContactID"), "ContactID"),
        (lambda c: c.update(Addresses="12 Quay St"), "Addresses"),
        (lambda c: c.update(Phones=[None]), "Phones[0]"),
        (lambda c: c.update(ContactPersons={"FirstName": "x"}), "ContactPersons"),
        (lambda c: c.update(Balances={"AccountsReceivable": {"Outstanding": "lots"}}),
         "Balances.AccountsReceivable.Outstanding"),
        (lambda c: c.update(Name={"first": "x"}), "Name"),
    ],
)
def test_unmappable_contacts_raise_data_error_naming_the_field(mutate: Any, field: str) -> None:
    contact = copy.deepcopy(load("contact_full.json"))
    mutate(contact)
    with pytest.raises(DataError) as caught:
        map_contact(contact)
    assert caught.value.field == field


def test_input_is_not_mutated() -> None:
    contact = load("contact_full.json")
    before = copy.deepcopy(contact)
    map_contact(contact)
    assert contact == before
