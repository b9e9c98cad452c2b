"""A new Zoho Account or lone Contact as the Xero contact to create, and the match rules (pure)."""

from __future__ import annotations

from connector.mapping.contacts import map_contact
from connector.mapping.xero_new_contact import (
    MAX_CONTACT_PERSONS,
    by_contact_number,
    by_email,
    by_name,
    xero_contact_for_account,
    xero_contact_for_person,
)

ACCOUNT = {"Account_Name": " Acme Ltd ", "Phone": "+64 9 555 0101", "Fax": "+64 9 555 0102",
           "Billing_Street": "1 Queen St", "Billing_City": "Auckland", "Shipping_City": "Hamilton"}


def _person(n: int) -> dict:
    return {"id": str(n), "First_Name": f"P{n}", "Last_Name": "Tane", "Email": f"p{n}@acme.example", "Phone": "021"}


def test_an_account_with_seven_people_keeps_the_primary_and_five_contact_persons():
    contact = xero_contact_for_account(ACCOUNT, [_person(n) for n in range(7)], zoho_id="4876876000000400001")
    assert contact["Name"] == "Acme Ltd" and contact["ContactNumber"] == "4876876000000400001"
    assert (contact["FirstName"], contact["EmailAddress"]) == ("P0", "p0@acme.example")
    assert [p["EmailAddress"] for p in contact["ContactPersons"]] == [f"p{n}@acme.example" for n in range(1, 6)]
    assert len(contact["ContactPersons"]) == MAX_CONTACT_PERSONS
    # Mapped back the way the push maps Xero contacts, it is what Zoho holds.
    back = map_contact({**contact, "ContactID": "c-1"})
    assert back["account"]["Account_Name"] == "Acme Ltd" and back["account"]["Billing_City"] == "Auckland"
    assert back["account"]["Shipping_City"] == "Hamilton" and back["account"]["Fax"] == "+64 9 555 0102"
    assert [p["Email"] for p in back["contacts"]][:2] == ["p0@acme.example", "p1@acme.example"]


def test_an_operator_name_and_a_lone_contact():
    assert xero_contact_for_account(ACCOUNT, [], zoho_id="1", name="Acme (NZ)")["Name"] == "Acme (NZ)"
    lone = xero_contact_for_person({"First_Name": "Mere", "Last_Name": "Rua", "Email": "m@r.example"}, zoho_id="2")
    assert (lone["Name"], lone["FirstName"], lone["EmailAddress"], lone["ContactNumber"]) == \
        ("Mere Rua", "Mere", "m@r.example", "2")


def test_the_match_rules():
    found = [{"ContactID": "a", "Name": "Acme Ltd", "EmailAddress": "x@acme.example", "ContactNumber": "99"},
             {"ContactID": "b", "Name": "ACME LTD.", "EmailAddress": "", "ContactNumber": "990"}]
    assert by_contact_number("99", found).contact["ContactID"] == "a"  # exact, not contained
    assert by_contact_number("9", found) is None
    assert by_email("X@ACME.example", found).contact["ContactID"] == "a"
    assert by_name("acme ltd", None, found).contact["ContactID"] == "a"
    assert by_name("acme ltd", "x@acme.example", found).contact["ContactID"] == "a"
    clash = by_name("acme ltd", "other@acme.example", found)
    assert clash.contact is None and [c["ContactID"] for c in clash.ambiguous] == ["a"]
    twice = by_name("acme ltd", None, found + [{"ContactID": "c", "Name": "Acme Ltd"}])
    assert len(twice.ambiguous) == 2
    archived = [{"ContactID": "d", "Name": "Acme Ltd", "ContactStatus": "ARCHIVED"}]
    assert by_name("Acme Ltd", None, archived) is None  # names are unique among active contacts only
