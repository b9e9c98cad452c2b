"""The Zoho sandbox's per-record rules: values checked against the field metadata, line items, and
the read-only values Zoho computes (Full_Name, invoice totals).

A module whose records carry computed values adds a function to ``DERIVATIONS``.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from connector.sandbox.zoho.metadata import LINE_ITEM_COMPUTED, LINE_ITEM_FIELDS, SYSTEM_KEYS, FieldSpec
from connector.sandbox.zoho.render import _cents, _decimal, _item_error, _Rejected


def _contact_names(rec: dict) -> None:
    rec["Full_Name"] = " ".join(p for p in (rec.get("First_Name"), rec.get("Last_Name")) if p)


def _invoice_totals(rec: dict) -> None:
    """Invoice arithmetic (Zoho's own formula is UNVERIFIED; this follows the field descriptions
    "Sub total = before taxes and adjustments", "Tax = total tax" (3P: Workato) and the line
    keys Total / Total_After_Discount / Net_Total (3P: CData)):
      line  Total = Quantity x List_Price; Total_After_Discount = Total - Discount (an amount);
            Net_Total = Total_After_Discount + Tax (an amount)
      record Sub_Total = sum(Total_After_Discount); Tax = sum(line Tax);
             Grand_Total = Sub_Total - Discount + Tax + Adjustment
    each rounded to the cent, half-up.
    """
    sub_total = tax = Decimal(0)
    for line in rec.get("Invoiced_Items", []):
        line["Total"] = _cents(line["Quantity"] * line["List_Price"])
        line["Total_After_Discount"] = _cents(line["Total"] - line["Discount"])
        line["Net_Total"] = _cents(line["Total_After_Discount"] + line["Tax"])
        sub_total += line["Total_After_Discount"]
        tax += _cents(line["Tax"])
    rec["Sub_Total"] = _cents(sub_total)
    rec["Tax"] = _cents(tax)
    discount = rec.get("Discount") or Decimal(0)
    adjustment = rec.get("Adjustment") or Decimal(0)
    rec["Grand_Total"] = _cents(rec["Sub_Total"] - discount + rec["Tax"] + adjustment)


def _deal_revenue(rec: dict) -> None:
    """Expected_Revenue "calculated based on the Amount and deal Stage" (help page "Standard Fields in
    Deals"); Amount x Probability / 100 is UNVERIFIED (Zoho fills Probability from the stage by default)."""
    amount, probability = rec.get("Amount"), rec.get("Probability")
    rec["Expected_Revenue"] = None if amount is None or probability is None else _cents(amount * probability / 100)


# Module -> what sets its read-only values on a record after every write.
DERIVATIONS = {"Contacts": _contact_names, "Invoices": _invoice_totals, "Deals": _deal_revenue}


class RecordRules:
    """Validation and derived values for ZohoSandbox (which holds the fields and records they read)."""

    def _validate(self, module: str, item: dict, path: str, *, existing: dict | None) -> dict:
        """Checks one record against the field metadata and returns the values to store."""
        specs = self.fields[module]
        clean: dict = {}
        for key, value in item.items():
            if key in SYSTEM_KEYS:
                continue
            spec = specs.get(key)
            if spec is None:
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", key, f"{path}.{key}"))
            if spec.read_only:
                continue  # computed fields (totals, Full_Name) ignore what is sent
            clean[key] = self._coerce(spec, value, f"{path}.{key}", existing)
        for spec in specs.values():
            if not spec.mandatory:
                continue
            present = clean.get(spec.api_name) if spec.api_name in item else (existing or {}).get(spec.api_name)
            if present in (None, "", []):
                raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                            spec.api_name, f"{path}.{spec.api_name}"))
        for spec in specs.values():
            value = clean.get(spec.api_name)
            if not spec.unique or value in (None, ""):
                continue
            for rec in self._holders(module, spec.api_name, value):
                if rec is not existing:
                    raise _Rejected(_item_error("DUPLICATE_DATA", "duplicate data", spec.api_name,
                                                f"{path}.{spec.api_name}"))
        return clean

    def _coerce(self, spec: FieldSpec, value, path: str, existing: dict | None):
        def invalid(**extra):
            return _Rejected(_item_error("INVALID_DATA", "invalid data", spec.api_name, path, **extra))

        if value is None:
            return None
        kind = spec.data_type
        if kind in ("text", "textarea", "email", "phone", "website"):
            if not isinstance(value, str):
                raise invalid(expected_data_type=kind)
            if len(value) > spec.length:
                raise invalid(maximum_length=spec.length)
            if kind == "email" and value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
                raise invalid(expected_data_type="email")
            return value
        if kind in ("currency", "double"):
            number = _decimal(value)
            if number is None:
                raise invalid(expected_data_type="double")
            return _cents(number) if kind == "currency" else number
        if kind == "boolean":
            if not isinstance(value, bool):
                raise invalid(expected_data_type="boolean")
            return value
        if kind == "date":
            try:
                date.fromisoformat(value)
            except (TypeError, ValueError):
                raise invalid(expected_data_type="date") from None
            return value
        if kind == "picklist":
            if value not in spec.picklist:
                raise invalid()
            return value
        if kind == "lookup":
            return {"id": self._lookup_id(spec.lookup, value, path, spec.api_name)}
        if kind == "lineitem":
            return self._coerce_lines(value, path, existing, spec.api_name)
        if kind == "parent":  # a Note's Parent_Id: {"module": {"api_name": ...}, "id": ...} (create-notes page)
            module = value.get("module") if isinstance(value, dict) else None
            target = module.get("api_name") if isinstance(module, dict) else None
            if target not in self._records or target == "Notes":
                raise invalid()
            return {"module": {"api_name": target}, "id": self._lookup_id(target, value, path, spec.api_name)}
        raise invalid()  # pragma: no cover - every data type above is handled

    def _lookup_id(self, module: str, value, path: str, api_name: str) -> str:
        record_id = value.get("id") if isinstance(value, dict) else None
        if record_id is None or str(record_id) not in self._records.get(module, {}):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", api_name, path))
        return str(record_id)

    def _coerce_lines(self, lines, path: str, existing: dict | None, name: str = "Invoiced_Items") -> list[dict]:
        """Line items (Invoiced_Items, Ordered_Items, Quoted_Items): a line with an existing ``id`` is edited, ``_delete`` removes it, a line
        without ``id`` is added, and lines not mentioned stay (Zoho line-item semantics, UNVERIFIED)."""
        if not isinstance(lines, list):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", name, path))
        current = {line["id"]: dict(line) for line in (existing or {}).get(name) or []}
        for n, line in enumerate(lines):
            line_path = f"{path}[{n}]"
            if not isinstance(line, dict):
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", name, line_path))
            line_id = str(line["id"]) if line.get("id") is not None else None
            if line_id is not None and line_id not in current:
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", "id", f"{line_path}.id"))
            if line_id is not None and "_delete" in line:
                del current[line_id]
                continue
            target = current.get(line_id) or {"id": str(next(self._ids))}
            unknown = set(line) - set(LINE_ITEM_FIELDS) - set(LINE_ITEM_COMPUTED) - {"_delete"}
            if unknown:
                name = sorted(unknown)[0]
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", name, f"{line_path}.{name}"))
            if "Product_Name" in line or "Product_Name" not in target:
                if not line.get("Product_Name"):
                    raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found", "Product_Name",
                                                f"{line_path}.Product_Name"))
                target["Product_Name"] = {"id": self._lookup_id("Products", line["Product_Name"],
                                                                f"{line_path}.Product_Name", "Product_Name")}
            product = self._records["Products"][target["Product_Name"]["id"]]
            defaults = {"Quantity": Decimal(1), "List_Price": product.get("Unit_Price") or Decimal(0),
                        "Discount": Decimal(0), "Tax": Decimal(0)}
            for key, default in defaults.items():
                if key in line:
                    number = _decimal(line[key])
                    if number is None or number < 0:
                        raise _Rejected(_item_error("INVALID_DATA", "invalid data", key, f"{line_path}.{key}",
                                                    expected_data_type="double"))
                    target[key] = number
                else:
                    target.setdefault(key, default)
            if "Description" in line:
                target["Description"] = line["Description"]
            current[target["id"]] = target
        return list(current.values())

    @staticmethod
    def _derive(module: str, rec: dict) -> None:
        """Sets the read-only values Zoho computes for ``module`` (``DERIVATIONS``)."""
        derive = DERIVATIONS.get(module)
        if derive is not None:
            derive(rec)
