"""Pure Xero -> Zoho mappers: dicts in, dicts out; no I/O, no clock, Decimal money throughout."""

from connector.mapping.contacts import map_contact
from connector.mapping.hashing import canonical_json, content_hash
from connector.mapping.invoices import (
    XERO_TO_ZOHO_INVOICE_STATUS,
    expected_totals,
    invoice_items,
    map_invoice,
)
from connector.mapping.xero_values import (
    parse_xero_date,
    parse_xero_day,
    to_decimal,
    to_money,
    xero_deep_link,
)

__all__ = [
    "XERO_TO_ZOHO_INVOICE_STATUS",
    "canonical_json",
    "content_hash",
    "expected_totals",
    "invoice_items",
    "map_contact",
    "map_invoice",
    "parse_xero_date",
    "parse_xero_day",
    "to_decimal",
    "to_money",
    "xero_deep_link",
]
