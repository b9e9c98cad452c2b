"""Neutralising spreadsheet formulas in text we write to Zoho (the ``neutralise_formulas`` option). Pure.

A value starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by
spreadsheet programs when a Zoho export is opened as CSV (OWASP "CSV Injection"). With the option on,
such text gets a leading apostrophe, which spreadsheets show as a plain-text marker; off (the default)
Zoho holds exactly what Xero holds.

Left alone, because they cannot call a function or reference a cell and changing them would corrupt
data: email and URL fields; our identity keys (the upsert keys); lookups, numbers and dates; text
made only of digits, spaces and ``+ - ( ) . , /`` such as "-5", "+44 20 7946 0958" or "(021)
555-0101"; and phone fields starting with + or - (only =, @, tab and CR are marked there). Only the first character is tested, so a value already neutralised is left as is,
and ``restore`` undoes it for the way back to Xero.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from connector.mapping import zoho_fields as zf

TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
MARK: Final = "'"

# Fields whose values are not free text: emails, URLs, and the keys upserts match on.
_NOT_FREE_TEXT: Final = frozenset({
    "Email", "Secondary_Email", "Website", zf.XERO_URL,
    zf.ACCOUNT_XERO_ID, zf.CONTACT_PERSON_KEY, zf.PRODUCT_ITEM_CODE, zf.INVOICE_XERO_ID,
})
# A phone may start with + or - ("+64 21 ..." even with "ext 5" after it); never with = or @.
_PHONES: Final = frozenset({"Phone", "Mobile", "Fax"})
_PHONE_TRIGGERS: Final = ("=", "@", "\t", "\r")
_LIMITS: Final[Mapping[str, Mapping[str, int]]] = {
    "Accounts": zf.ACCOUNTS_MAX_LENGTH, "Contacts": zf.CONTACTS_MAX_LENGTH,
    "Products": zf.PRODUCTS_MAX_LENGTH, "Invoices": zf.INVOICES_MAX_LENGTH,
}
_NUMBER_LIKE = re.compile(r"[0-9 +\-().,/]*[0-9][0-9 +\-().,/]*")


def is_formula(text: str, triggers: tuple[str, ...] = TRIGGERS) -> bool:
    return text.startswith(triggers) and not _NUMBER_LIKE.fullmatch(text)


def neutralise_text(text: str, limit: int | None = None, *, phone: bool = False) -> str:
    if not is_formula(text, _PHONE_TRIGGERS if phone else TRIGGERS):
        return text
    marked = MARK + text
    # Zoho refuses text over the field's length, so the mark costs the last character.
    return zf.truncate_text(marked, limit) if limit is not None else marked


def restore(text: str | None) -> str | None:
    """The value Xero should hold for a neutralised Zoho value (the mark removed)."""
    if text and text.startswith(MARK) and is_formula(text[len(MARK):]):
        return text[len(MARK):]
    return text


def neutralise_record(module: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a Zoho record with every free-text value neutralised (invoice line descriptions too)."""
    limits = _LIMITS.get(module, {})
    out: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, str) and name not in _NOT_FREE_TEXT:
            out[name] = neutralise_text(value, limits.get(name), phone=name in _PHONES)
        elif name == "Invoiced_Items" and isinstance(value, list):
            out[name] = [_neutralise_line(line) for line in value]
        else:
            out[name] = value
    return out


def _neutralise_line(line: Any) -> Any:
    if not isinstance(line, Mapping) or not isinstance(line.get("Description"), str):
        return line
    return {**line, "Description": neutralise_text(line["Description"], zf.INVOICE_LINE_DESCRIPTION_MAX)}
