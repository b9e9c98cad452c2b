"""Xero Contact -> one Zoho Account plus the Zoho Contacts for its people. Pure: dicts in, dicts out.

Decisions (the why, in one place):
- Blank means absent. Xero sends "" for every unused address/phone part; we omit such keys instead of
  sending "" or None. Consequence: clearing a value in Xero does not clear it in Zoho, but a value a
  salesperson typed into Zoho is never wiped by an empty Xero field.
- Text is cut to Zoho's length limits (zoho_fields) without splitting a character. Values that break
  when cut (Website, Email) are omitted instead of truncated.
- Account_Type is not sent: Zoho's Account_Type picklist values are org-specific and no source we
  have confirms values matching Xero's IsCustomer/IsSupplier.
- Account_Number: Zoho's help page lists the standard field as Numeric (max 40) in some layouts; a
  non-numeric Xero number would then be rejected with INVALID_DATA. UNVERIFIED; check the org's
  field metadata.
- ContactStatus is always sent (Xero_Status), so un-archiving in Xero clears the ARCHIVED marker.
- People: the contact's own FirstName/LastName/EmailAddress is the "primary" person; each
  ContactPersons entry is another. Zoho requires Last_Name, so a first-name-only person uses the
  first name as Last_Name, and an email-only person the email's local part. Each person carries a
  stable key (Xero_Person_Key) for upserts; a person with no email is keyed by list position, which
  shifts if Xero reorders the list (Xero gives persons no id). A ContactPersons entry with the
  primary's email is the same human and is skipped; later duplicates of a key are dropped.
- Money: given the customer's figures (mapping/money.py, computed from stored documents), the account
  carries all of them under ``money_fields`` names; a figure with no value (no payment yet) is sent
  as null, so a deleted payment clears it. Without figures, Outstanding/Overdue come from the
  contact's own Balances (what a contact read carries).
- Phones: the account gets DEFAULT (Phone) and FAX; the primary person gets DDI (falling back to
  DEFAULT) and MOBILE; other persons get the DEFAULT number only, since Xero's MOBILE/DDI belong to
  the primary person. Every person gets the STREET address (fallback POBOX) as Mailing_*.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from connector.errors import DataError
from connector.mapping import zoho_fields as zf
from connector.mapping.money import contact_xero_link
from connector.mapping.xero_values import clean_text, to_money

__all__ = ["account_money", "map_contact", "person_key"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ADDRESS_TYPES = ("POBOX", "STREET")
_PHONE_TYPES = ("DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE")

# Zoho address field suffixes per module, in Xero's order: street, City, Region, PostalCode, Country.
_ACCOUNT_ADDRESS = ("Street", "City", "State", "Code", "Country")
_CONTACT_ADDRESS = ("Street", "City", "State", "Zip", "Country")


def map_contact(
    contact: Mapping[str, Any],
    *,
    xero_deep_link_base: str = "https://go.xero.com",
    xero_short_code: str | None = None,
    money: Mapping[str, Any] | None = None,
    money_fields: Mapping[str, str] = zf.ACCOUNT_MONEY_FIELDS,
) -> dict[str, Any]:
    """Map one Xero Contact to ``{"account": {...}, "contacts": [{...}, ...]}`` (Zoho field API names).

    ``money``: the customer's figures from ``money.money_figures``, written under ``money_fields``.

    The pipeline adds the ``Account_Name`` lookup (``{"id": ...}``) to each contact after writing the
    account. Raises DataError (with ``field``) when the record cannot be mapped.
    """
    if not isinstance(contact, Mapping):
        raise DataError("contact: expected an object", field="Contact")
    contact_id = clean_text(contact.get("ContactID"), field="ContactID")
    if contact_id is None:
        raise DataError("ContactID is missing", field="ContactID")
    name = clean_text(contact.get("Name"), field="Name")
    if name is None:
        raise DataError("Name is missing: Zoho Account_Name is mandatory", field="Name")

    addresses = _addresses_by_type(contact.get("Addresses"))
    phones = _phones_by_type(contact.get("Phones"))
    billing = addresses.get("POBOX") or addresses.get("STREET")
    shipping = addresses.get("STREET") or addresses.get("POBOX")

    account: dict[str, Any] = {}
    limits = zf.ACCOUNTS_MAX_LENGTH
    _put_text(account, "Account_Name", name, limits)
    account_number = clean_text(contact.get("AccountNumber"), field="AccountNumber") or clean_text(
        contact.get("ContactNumber"), field="ContactNumber"
    )
    _put_text(account, "Account_Number", account_number, limits)
    _put_text(account, "Phone", phones.get("DEFAULT"), limits)
    _put_text(account, "Fax", phones.get("FAX"), limits)
    _put_whole(account, "Website", clean_text(contact.get("Website"), field="Website"), limits)
    _put_address(account, "Billing", _ACCOUNT_ADDRESS, billing, limits)
    _put_address(account, "Shipping", _ACCOUNT_ADDRESS, shipping, limits)
    _put_text(account, "Currency", clean_text(contact.get("DefaultCurrency"), field="DefaultCurrency"), limits)
    _put_text(account, zf.ACCOUNT_TAX_NUMBER, clean_text(contact.get("TaxNumber"), field="TaxNumber"), limits)
    _put_text(account, zf.ACCOUNT_XERO_ID, contact_id, limits)
    _put_text(account, zf.ACCOUNT_XERO_STATUS, clean_text(contact.get("ContactStatus"), field="ContactStatus"), limits)
    account[zf.XERO_URL] = contact_xero_link(contact_id, base=xero_deep_link_base, short_code=xero_short_code)
    if money is None:
        account.update(_receivable_balances(contact.get("Balances"), money_fields))
    else:
        account.update(account_money(money, money_fields))

    return {"account": account, "contacts": _people(contact, contact_id, phones, shipping)}


# --- people --------------------------------------------------------------------------------------


def _people(
    contact: Mapping[str, Any],
    contact_id: str,
    phones: Mapping[str, str],
    mailing: Mapping[str, str] | None,
) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    seen_keys: set[str] = set()

    primary_email = clean_text(contact.get("EmailAddress"), field="EmailAddress")
    primary = _person(
        key=f"{contact_id}:primary",
        first=clean_text(contact.get("FirstName"), field="FirstName"),
        last=clean_text(contact.get("LastName"), field="LastName"),
        email=primary_email,
        phone=phones.get("DDI") or phones.get("DEFAULT"),
        mobile=phones.get("MOBILE"),
        mailing=mailing,
    )
    if primary is not None:
        people.append(primary)
        seen_keys.add(primary[zf.CONTACT_PERSON_KEY])

    persons = contact.get("ContactPersons") or []
    if not isinstance(persons, Sequence) or isinstance(persons, (str, bytes)):
        raise DataError("ContactPersons: expected a list", field="ContactPersons")
    for index, entry in enumerate(persons):
        field = f"ContactPersons[{index}]"
        if not isinstance(entry, Mapping):
            raise DataError(f"{field}: expected an object", field=field)
        email = clean_text(entry.get("EmailAddress"), field=f"{field}.EmailAddress")
        if email and primary_email and email.lower() == primary_email.lower():
            continue  # the primary person listed again
        key = person_key(contact_id, email, index)
        if key in seen_keys:
            continue
        person = _person(
            key=key,
            first=clean_text(entry.get("FirstName"), field=f"{field}.FirstName"),
            last=clean_text(entry.get("LastName"), field=f"{field}.LastName"),
            email=email,
            phone=phones.get("DEFAULT"),
            mobile=None,
            mailing=mailing,
        )
        if person is not None:
            people.append(person)
            seen_keys.add(key)
    return people


def person_key(contact_id: str, email: str | None, index: int) -> str:
    if email is None:
        return f"{contact_id}:person:{index}"
    key = f"{contact_id}:person:{email.lower()}"
    if zf.utf16_length(key) <= zf.CUSTOM_TEXT_MAX:
        return key
    # Cutting the key could make two people collide; a digest of the email stays unique and short.
    digest = hashlib.sha256(email.lower().encode("utf-8")).hexdigest()[:32]
    return f"{contact_id}:person:sha256:{digest}"


def _person(
    *,
    key: str,
    first: str | None,
    last: str | None,
    email: str | None,
    phone: str | None,
    mobile: str | None,
    mailing: Mapping[str, str] | None,
) -> dict[str, Any] | None:
    """One Zoho Contact, or None when Xero gave no name and no email (nothing to call them)."""
    if last:
        last_name, first_name = last, first
    elif first:
        last_name, first_name = first, None  # Zoho insists on Last_Name; a lone name goes there
    elif email:
        last_name, first_name = email.split("@", 1)[0].strip() or email, None
    else:
        return None

    limits = zf.CONTACTS_MAX_LENGTH
    person: dict[str, Any] = {zf.CONTACT_PERSON_KEY: key}
    _put_text(person, "First_Name", first_name, limits)
    _put_text(person, "Last_Name", last_name, limits)
    # Zoho validates email format and length; a malformed or over-long one is left out rather than
    # letting it fail the whole record.
    if email and _EMAIL.match(email):
        _put_whole(person, "Email", email, limits)
    _put_text(person, "Phone", phone, limits)
    _put_text(person, "Mobile", mobile, limits)
    _put_address(person, "Mailing", _CONTACT_ADDRESS, mailing, limits)
    return person


# --- addresses, phones, balances -----------------------------------------------------------------


def _addresses_by_type(value: object) -> dict[str, dict[str, str]]:
    """First non-blank address of each type, as cleaned parts (street joined with newlines)."""
    result: dict[str, dict[str, str]] = {}
    for index, address in enumerate(_list_of_objects(value, "Addresses")):
        field = f"Addresses[{index}]"
        kind = clean_text(address.get("AddressType"), field=f"{field}.AddressType")
        if kind not in _ADDRESS_TYPES or kind in result:
            continue
        lines = [
            clean_text(address.get(f"AddressLine{n}"), field=f"{field}.AddressLine{n}") for n in range(1, 5)
        ]
        parts = {
            "Street": "\n".join(line for line in lines if line),
            "City": clean_text(address.get("City"), field=f"{field}.City"),
            "Region": clean_text(address.get("Region"), field=f"{field}.Region"),
            "PostalCode": clean_text(address.get("PostalCode"), field=f"{field}.PostalCode"),
            "Country": clean_text(address.get("Country"), field=f"{field}.Country"),
        }
        cleaned = {part: text for part, text in parts.items() if text}
        if cleaned:  # an all-blank address (Xero always sends both types) counts as missing
            result[kind] = cleaned
    return result


def _phones_by_type(value: object) -> dict[str, str]:
    """First non-blank phone of each type, formatted "+<country> <area> <number>"."""
    result: dict[str, str] = {}
    for index, phone in enumerate(_list_of_objects(value, "Phones")):
        field = f"Phones[{index}]"
        kind = clean_text(phone.get("PhoneType"), field=f"{field}.PhoneType")
        if kind not in _PHONE_TYPES or kind in result:
            continue
        number = clean_text(phone.get("PhoneNumber"), field=f"{field}.PhoneNumber")
        if number is None:
            continue  # an area code alone is not a phone number
        country = clean_text(phone.get("PhoneCountryCode"), field=f"{field}.PhoneCountryCode")
        area = clean_text(phone.get("PhoneAreaCode"), field=f"{field}.PhoneAreaCode")
        if country and not country.startswith("+"):
            country = f"+{country}"
        result[kind] = " ".join(part for part in (country, area, number) if part)
    return result


def account_money(figures: Mapping[str, Any], names: Mapping[str, str] = zf.ACCOUNT_MONEY_FIELDS) -> dict[str, Any]:
    """The Account's money fields from ``money_figures``: amounts as Decimal, days as YYYY-MM-DD, absent as None."""
    record: dict[str, Any] = {}
    for key, zoho_name in names.items():
        value = figures.get(key)
        record[zoho_name] = value.isoformat() if hasattr(value, "isoformat") else value
    return record


def _receivable_balances(value: object, names: Mapping[str, str]) -> dict[str, Decimal]:
    """Xero_Outstanding / Xero_Overdue from Balances.AccountsReceivable; absent amounts are omitted.

    Xero reports balances in the contact's currency, not the org's base currency.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DataError("Balances: expected an object", field="Balances")
    receivable = value.get("AccountsReceivable")
    if receivable is None:
        return {}
    if not isinstance(receivable, Mapping):
        raise DataError("Balances.AccountsReceivable: expected an object", field="Balances.AccountsReceivable")
    result: dict[str, Decimal] = {}
    for xero_name, zoho_name in (("Outstanding", names["outstanding"]), ("Overdue", names["overdue"])):
        amount = receivable.get(xero_name)
        if amount is not None and amount != "":
            result[zoho_name] = to_money(amount, field=f"Balances.AccountsReceivable.{xero_name}")
    return result


def _list_of_objects(value: object, field: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise DataError(f"{field}: expected a list", field=field)
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise DataError(f"{field}[{index}]: expected an object", field=f"{field}[{index}]")
    return list(value)


# --- output helpers ------------------------------------------------------------------------------


def _put_text(record: dict[str, Any], key: str, value: str | None, limits: Mapping[str, int]) -> None:
    """Set ``key`` to ``value`` cut to the Zoho limit; absent/blank values leave the key out."""
    if not value:
        return
    limit = limits.get(key)
    text = zf.truncate_text(value, limit) if limit else value
    if text:
        record[key] = text


def _put_whole(record: dict[str, Any], key: str, value: str | None, limits: Mapping[str, int]) -> None:
    """Set ``key`` only if ``value`` fits whole (URLs and emails are useless when cut)."""
    if value and zf.utf16_length(value) <= limits.get(key, zf.CUSTOM_TEXT_MAX):
        record[key] = value


def _put_address(
    record: dict[str, Any],
    prefix: str,
    suffixes: tuple[str, str, str, str, str],
    address: Mapping[str, str] | None,
    limits: Mapping[str, int],
) -> None:
    if not address:
        return
    for xero_part, suffix in zip(("Street", "City", "Region", "PostalCode", "Country"), suffixes):
        _put_text(record, f"{prefix}_{suffix}", address.get(xero_part), limits)
