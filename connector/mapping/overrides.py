"""User field mappings applied on top of the built-in mappers. Pure: dicts in, dicts out.

An override sets one Zoho field from a dotted path into the Xero record (``Balances.AccountsPayable.
Outstanding``), from a constant, or leaves the field out. Paths that lead nowhere leave the field
out (blank means absent, as in the built-in mappers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.mapping.xero_values import clean_text

__all__ = ["FieldOverride", "apply_field_overrides", "xero_value_at"]

_MISSING = object()


@dataclass(frozen=True)
class FieldOverride:
    module: str  # Accounts | Contacts | Products | Invoices
    zoho_field: str
    xero_path: str | None = None  # e.g. "ContactNumber"
    value: Any = None  # a constant, when there is no path
    omit: bool = False  # never send this field


def xero_value_at(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``Phones.0.PhoneNumber`` indexes lists), or None."""
    value: Any = record
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else _MISSING
        else:
            value = _MISSING
        if value is _MISSING:
            return None
    if isinstance(value, str):
        return clean_text(value, field=path)
    return value


def apply_field_overrides(
    record: Mapping[str, Any], source: Mapping[str, Any], module: str, overrides: Sequence[FieldOverride]
) -> dict[str, Any]:
    """A copy of ``record`` (a mapped Zoho record of ``module``) with the user's overrides applied."""
    result = dict(record)
    for override in overrides:
        if override.module != module:
            continue
        if override.omit:
            result.pop(override.zoho_field, None)
            continue
        value = xero_value_at(source, override.xero_path) if override.xero_path else override.value
        if value is None or value == "":
            result.pop(override.zoho_field, None)
        else:
            result[override.zoho_field] = value
    return result
