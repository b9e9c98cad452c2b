"""A new Zoho Account (with its people) or a Contact with no Account -> the Xero contact to create, and
which existing Xero contacts it matches. Pure: dicts in, dicts out.

Xero's Contacts page: https://developer.xero.com/documentation/api/accounting/contacts
- ``ContactNumber`` (max 50) is settable only through the API: it carries the Zoho record id, so a retry
  or a second notification finds the contact made by the first.
- ``Name`` (max 255) is required and unique among active contacts.
- ``ContactPersons``: at most 5 per contact (the page's ContactPersons elements), names and an email each;
  the sandbox does not refuse a sixth: Xero's refusal text is UNVERIFIED (a real org's test: PUT a contact
  with six ContactPersons).
The reverse of mapping/contacts.py, so that mapping the created contact back gives what Zoho holds:
the Account's billing address is Xero's POBOX, its shipping address STREET; the first person is the
contact's own FirstName/LastName/EmailAddress with the DDI and MOBILE phones; the Account's Phone is
DEFAULT and Fax is FAX. Website is read-only in the Contacts API and is not sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_CONTACT_PERSONS = 5
MAX_CONTACT_NUMBER = 50
MAX_NAME = 255

_ACCOUNT_ADDRESS = ("Street", "City", "State", "Code", "Country")
_CONTACT_ADDRESS = ("Street", "City", "State", "Zip", "Country")
_XERO_ADDRESS = ("AddressLine1", "City", "Region", "PostalCode", "Country")


def _text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if isinstance(value, dict):  # a lookup: {"id", "name"}
        value = value.get("name")
    value = str(value).strip() if value not in (None, "") else ""
    return value or None


def _address(record: Mapping[str, Any], prefix: str, parts: Sequence[str], kind: str) -> dict | None:
    values = {xero: _text(record, f"{prefix}_{zoho}") for zoho, xero in zip(parts, _XERO_ADDRESS)}
    if not any(values.values()):
        return None
    return {"AddressType": kind, **{k: v for k, v in values.items() if v}}


def _phone(kind: str, number: str | None) -> dict | None:
    return {"PhoneType": kind, "PhoneNumber": number} if number else None


def person_name(person: Mapping[str, Any]) -> str | None:
    """A Zoho Contact's full name: Full_Name, else First_Name Last_Name."""
    full = _text(person, "Full_Name")
    if full:
        return full
    return " ".join(p for p in (_text(person, "First_Name"), _text(person, "Last_Name")) if p) or None


def xero_contact_for_account(account: Mapping[str, Any], people: Sequence[Mapping[str, Any]], *,
                             zoho_id: str, name: str | None = None) -> dict:
    """The Xero contact for a Zoho Account; ``people`` its Zoho Contacts, the first one the primary person,
    the next five its ContactPersons (more are left out: Xero holds no more). ``name`` replaces the Account's."""
    contact: dict[str, Any] = {"Name": (name or _text(account, "Account_Name") or "")[:MAX_NAME],
                               "ContactNumber": zoho_id[:MAX_CONTACT_NUMBER]}
    number = _text(account, "Account_Number")
    if number:
        contact["AccountNumber"] = number[:50]
    addresses = [a for a in (_address(account, "Billing", _ACCOUNT_ADDRESS, "POBOX"),
                             _address(account, "Shipping", _ACCOUNT_ADDRESS, "STREET")) if a]
    phones = [p for p in (_phone("DEFAULT", _text(account, "Phone")), _phone("FAX", _text(account, "Fax"))) if p]
    named = [p for p in people if person_name(p) or _text(p, "Email")]
    if named:
        primary = named[0]
        _put_person(contact, primary)
        phones += [p for p in (_phone("DDI", _text(primary, "Phone")), _phone("MOBILE", _text(primary, "Mobile")))
                   if p]
        contact["ContactPersons"] = [_put_person({"IncludeInEmails": False}, p)
                                     for p in named[1:1 + MAX_CONTACT_PERSONS]]
    if addresses:
        contact["Addresses"] = addresses
    if phones:
        contact["Phones"] = phones
    return contact


def xero_contact_for_person(person: Mapping[str, Any], *, zoho_id: str, name: str | None = None) -> dict:
    """The Xero contact for a Zoho Contact that belongs to no Account: the person is the contact."""
    contact: dict[str, Any] = {"Name": (name or person_name(person) or _text(person, "Email") or "")[:MAX_NAME],
                               "ContactNumber": zoho_id[:MAX_CONTACT_NUMBER]}
    _put_person(contact, person)
    mailing = _address(person, "Mailing", _CONTACT_ADDRESS, "STREET")
    if mailing:
        contact["Addresses"] = [mailing]
    phones = [p for p in (_phone("DDI", _text(person, "Phone")), _phone("MOBILE", _text(person, "Mobile"))) if p]
    if phones:
        contact["Phones"] = phones
    return contact


def _put_person(target: dict, person: Mapping[str, Any]) -> dict:
    for zoho, xero in (("First_Name", "FirstName"), ("Last_Name", "LastName"), ("Email", "EmailAddress")):
        value = _text(person, zoho)
        if value:
            target[xero] = value
    return target


# --- matching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """What the existing Xero contacts say about a new one: ``contact`` to link to, or ``ambiguous``
    (needs a person: several candidates, or the same name with another email), or neither (create)."""

    rule: str | None = None  # "contact_number", "email", "name"
    contact: Mapping[str, Any] | None = None
    ambiguous: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    why: str = ""


def by_contact_number(zoho_id: str, found: Sequence[Mapping[str, Any]]) -> Match | None:
    """(b) A contact whose ContactNumber is the Zoho id: one we created before (a lost answer, a replay)."""
    same = [c for c in found if str(c.get("ContactNumber") or "") == zoho_id[:MAX_CONTACT_NUMBER]]
    if len(same) == 1:
        return Match("contact_number", same[0])
    if same:
        return Match("contact_number", ambiguous=tuple(same), why=f"{len(same)} Xero contacts carry this Zoho id")
    return None


def by_email(email: str | None, found: Sequence[Mapping[str, Any]]) -> Match | None:
    """(c) An active contact with the same email, any case."""
    if not email:
        return None
    same = [c for c in found if (c.get("EmailAddress") or "").strip().lower() == email.strip().lower()
            and c.get("ContactStatus", "ACTIVE") == "ACTIVE"]
    if len(same) == 1:
        return Match("email", same[0])
    if same:
        return Match("email", ambiguous=tuple(same), why=f"{len(same)} Xero contacts have the email {email}")
    return None


def by_name(name: str, email: str | None, found: Sequence[Mapping[str, Any]]) -> Match | None:
    """(d) An active contact with the same name, any case: the same customer when the emails agree (or
    either has none); a name clash with a different email, or several such contacts, needs a person."""
    same = [c for c in found if (c.get("Name") or "").strip().lower() == name.strip().lower()
            and c.get("ContactStatus", "ACTIVE") == "ACTIVE"]
    if not same:
        return None
    if len(same) > 1:
        return Match("name", ambiguous=tuple(same), why=f"{len(same)} Xero contacts are named {name}")
    theirs = (same[0].get("EmailAddress") or "").strip().lower()
    if email and theirs and theirs != email.strip().lower():
        return Match("name", ambiguous=(same[0],),
                     why=f"Xero already has a contact named {same[0].get('Name')} with another email ({theirs})")
    return Match("name", same[0])


def candidate_summary(contact: Mapping[str, Any]) -> dict:
    """A Xero candidate as a person reviewing the clash needs to see it."""
    return {k: contact.get(k) for k in ("ContactID", "Name", "EmailAddress", "ContactNumber", "ContactStatus")}
