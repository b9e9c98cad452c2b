"""Zoho invoice lines and totals compared with what we mean to write: pure, dicts in, dicts out.

Zoho CRM v8 "Update Subform Data": rows without an id are added, ``{"id", "_delete": null}`` removes one,
and lines an update does not mention are kept
(https://www.zoho.com/crm/developer/docs/api/v8/update-subforms.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

# Zoho's invoice totals and the Xero figure each must equal (see mapping/invoices.py for the arithmetic).
ZOHO_TOTAL_OF_XERO = {"Sub_Total": "SubTotal", "Tax": "TotalTax", "Grand_Total": "Total"}
_CENT = Decimal("0.01")


def decimal_or_none(value) -> Decimal | None:
    """A number as Zoho or we may write it (Decimal, float, int, text) as a Decimal; None if it is none."""
    if type(value) is Decimal and value.is_finite():
        return value  # what Decimal(str(value)) makes: an equal Decimal (NaNs still get a copy each)
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def zoho_totals(record: Mapping[str, Any]) -> dict[str, Decimal | None]:
    """A Zoho invoice's Sub_Total, Tax and Grand_Total, to the cent (None where absent)."""
    totals = {}
    for name in ZOHO_TOTAL_OF_XERO:
        number = decimal_or_none(record.get(name))
        totals[name] = number.quantize(_CENT) if number is not None else None
    return totals


def totals_mismatch(zoho_record: Mapping[str, Any], xero_totals: Mapping[str, Decimal]) -> dict[str, dict]:
    """Each Zoho total that differs from Xero's (``expected_totals``), with both figures; empty when all equal."""
    zoho = zoho_totals(zoho_record)
    return {name: {"zoho": zoho.get(name), "xero": xero_totals[xero_name]}
            for name, xero_name in ZOHO_TOTAL_OF_XERO.items() if zoho.get(name) != xero_totals[xero_name]}


def line_content(line: Mapping[str, Any]) -> tuple:
    """What a line says, comparable between what we send (Decimals) and what Zoho returns (numbers)."""
    get = line.get
    product = get("Product_Name")
    product_id = str(product.get("id")) if isinstance(product, Mapping) else product
    return (product_id, decimal_or_none(get("Quantity")), decimal_or_none(get("List_Price")),
            decimal_or_none(get("Discount")), decimal_or_none(get("Tax")), get("Description") or None)


def line_changes(current: list[Mapping[str, Any]], wanted: list[Mapping[str, Any]]) -> list[dict] | None:
    """The Invoiced_Items rows that turn Zoho's ``current`` lines into ``wanted``, or None when equal.

    Position by position: a line that differs is edited through its id (every key sent, so a
    removed description is cleared), surplus lines are deleted by id, missing ones are added.
    """
    rows: list[dict] = []
    for index in range(max(len(current), len(wanted))):
        if index < len(current) and index < len(wanted):
            if line_content(current[index]) != line_content(wanted[index]):
                rows.append({"id": str(current[index]["id"]), "Description": None, **wanted[index]})
        elif index < len(current):
            rows.append({"id": str(current[index]["id"]), "_delete": None})
        else:
            rows.append(dict(wanted[index]))
    return rows or None
