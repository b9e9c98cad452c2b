"""Xero Invoice -> Zoho Invoice (with Invoiced_Items) and the Zoho Products its lines need. Pure.

The money arithmetic, and why it reproduces Xero's totals to the cent
--------------------------------------------------------------------
Xero, per line (OpenAPI ``LineItem.LineAmount``):
    LineAmount = round2(Quantity * UnitAmount * (100 - DiscountRate) / 100)
              or round2(Quantity * UnitAmount - DiscountAmount)
    TaxAmount  = Xero's own per-line tax (we take it as reported).
    Exclusive / NoTax: the LineAmount excludes tax;  Inclusive: the LineAmount includes TaxAmount.
Xero, per invoice: SubTotal = sum of tax-exclusive line amounts (Inclusive: LineAmount - TaxAmount),
    TotalTax = sum of TaxAmount, Total = SubTotal + TotalTax  (e.g. the OpenAPI Inclusive example:
    LineAmount 20.00, TaxAmount 1.74 -> SubTotal 18.26, Total 20.00).

Zoho, per line (our model; Zoho's own rounding is UNVERIFIED, the reconciliation check using
``expected_totals`` is the safety net):
    line net   = round2(Quantity * List_Price) - Discount     (Discount is an amount)
    line total = line net + Tax

So for each line we take Xero's tax-exclusive net ``N`` (2 dp) and choose:
    List_Price = the tax-exclusive unit price before discount, rounded AWAY from zero to
                 ``list_price_places`` (4 dp, Xero's finest unit precision). For Inclusive lines the
                 tax is taken out proportionally: UnitAmount * N / LineAmount.
    Discount   = round2(Quantity * List_Price) - N     (exactly, so line net == N to the cent)
    Tax        = TaxAmount.
Hence sum(line net) == SubTotal, sum(Tax) == TotalTax, and their sum == Total. Rounding List_Price
away from zero keeps Discount >= 0 for ordinary lines; if rounding still leaves it below zero
(Xero's LineAmount rounded up past Quantity * UnitAmount), List_Price is re-derived from N alone.
Lines with negative amounts can still yield a negative Discount (UNVERIFIED whether Zoho accepts it).
If Xero's reported Total still differs from our line sums (invoice-level tax rounding, or totals
edited in Xero), the difference goes into Zoho's ``Adjustment`` so Grand_Total matches Xero's Total.

Status: Zoho's Invoices Status picklist is org-specific (third-party sources list Created, Approved,
Delivered, Cancelled; UNVERIFIED), so the default map below uses only those; callers may pass their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import (
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    DecimalException,
    InvalidOperation,
    getcontext,
    localcontext,
)
from typing import Any, Final, NamedTuple

from connector.errors import DataError
from connector.mapping import zoho_fields as zf
from connector.mapping.xero_values import (
    CENT,
    clean_text,
    parse_xero_day,
    to_decimal,
    to_money,
    xero_deep_link,
)

__all__ = ["XERO_TO_ZOHO_INVOICE_STATUS", "expected_totals", "invoice_items", "map_invoice"]

XERO_TO_ZOHO_INVOICE_STATUS: Final[Mapping[str, str]] = {
    "DRAFT": "Created",
    "SUBMITTED": "Created",  # awaiting approval in Xero: not approved yet
    "AUTHORISED": "Approved",
    "PAID": "Approved",  # Zoho has no standard "Paid"; Xero_Amount_Due == 0 says it is paid
    "VOIDED": "Cancelled",
    "DELETED": "Cancelled",
}

_LINE_AMOUNT_TYPES = {"exclusive": "Exclusive", "inclusive": "Inclusive", "notax": "NoTax"}
_WORKING_PRECISION = 60  # wide enough that products of 4-dp quantities and prices are exact


class _LineMoney(NamedTuple):  # a tuple: a frozen dataclass cost more to make than its line's sums
    quantity: Decimal
    list_price: Decimal
    discount: Decimal
    tax: Decimal
    net: Decimal  # Xero's tax-exclusive line amount


def map_invoice(
    invoice: Mapping[str, Any],
    *,
    product_ids: Mapping[str, str],
    placeholder_product_id: str,
    allow_bills: bool = False,
    status_map: Mapping[str, str] | None = None,
    list_price_places: int = 4,
    xero_deep_link_base: str = "https://go.xero.com",
    xero_short_code: str | None = None,
) -> dict[str, Any]:
    """Map one Xero invoice to a Zoho Invoices record (Zoho field API names, Decimal money).

    ``product_ids`` maps Xero ItemCode -> Zoho Product id (upsert ``invoice_items`` first); lines
    without an ItemCode use ``placeholder_product_id``. The pipeline adds the ``Account_Name``
    lookup. Raises DataError naming the field when the invoice cannot be mapped.
    """
    if not isinstance(invoice, Mapping):
        raise DataError("invoice: expected an object", field="Invoice")
    kind = _invoice_type(invoice, allow_bills=allow_bills)
    invoice_id = clean_text(invoice.get("InvoiceID"), field="InvoiceID")
    if invoice_id is None:
        raise DataError("InvoiceID is missing", field="InvoiceID")
    if not placeholder_product_id:
        raise DataError("no placeholder product id for lines without an item", field="LineItems")

    limits = zf.INVOICES_MAX_LENGTH
    subject = clean_text(invoice.get("InvoiceNumber"), field="InvoiceNumber") or invoice_id
    record: dict[str, Any] = {"Subject": zf.truncate_text(subject, limits["Subject"])}
    record[zf.INVOICE_XERO_ID] = invoice_id

    for xero_name, zoho_name in (("Date", "Invoice_Date"), ("DueDate", "Due_Date")):
        day = parse_xero_day(invoice.get(xero_name), field=xero_name)
        if day is not None:
            record[zoho_name] = day.isoformat()

    status = clean_text(invoice.get("Status"), field="Status")
    if status is not None:
        statuses = XERO_TO_ZOHO_INVOICE_STATUS if status_map is None else status_map
        if status.upper() not in statuses:
            raise DataError(f"Status: no Zoho status for Xero {status!r}", field="Status")
        record["Status"] = statuses[status.upper()]

    currency = clean_text(invoice.get("CurrencyCode"), field="CurrencyCode")
    if currency is not None:
        record["Currency"] = currency
    if _present(invoice.get("CurrencyRate")):
        # Sent as Xero states it; that Zoho reads the rate in the same direction is UNVERIFIED.
        record["Exchange_Rate"] = to_decimal(invoice["CurrencyRate"], field="CurrencyRate")
    for xero_name, zoho_name in (("AmountPaid", zf.INVOICE_AMOUNT_PAID), ("AmountDue", zf.INVOICE_AMOUNT_DUE)):
        if _present(invoice.get(xero_name)):
            record[zoho_name] = to_money(invoice[xero_name], field=xero_name)
    path = (
        f"/AccountsReceivable/View.aspx?InvoiceID={invoice_id}"
        if kind == "ACCREC"
        else f"/AccountsPayable/Edit.aspx?InvoiceID={invoice_id}"
    )
    record[zf.XERO_URL] = xero_deep_link(path, base=xero_deep_link_base, short_code=xero_short_code)

    lines = _lines(invoice)
    if not lines:
        # Zoho needs at least one line; Xero also omits lines from unpaged list responses.
        raise DataError("LineItems is empty: fetch the invoice by id (or with page=) to get its lines",
                        field="LineItems")
    amount_types = _line_amount_types(invoice)
    items: list[dict[str, Any]] = []
    net_sum = tax_sum = Decimal("0.00")
    # One working context for all lines; the sums are the caller's context's, as they always were.
    caller = getcontext()
    step = _list_price_step(list_price_places)
    with _working_context():
        for index, line in enumerate(lines):
            money = _line_money_in_context(line, amount_types, index, step)
            net_sum = caller.add(net_sum, money.net)
            tax_sum = caller.add(tax_sum, money.tax)
            code = _item_code(line, index)
            if code is None:
                product_id = placeholder_product_id
            elif code in product_ids:
                product_id = product_ids[code]
            else:
                raise DataError(f"LineItems[{index}].ItemCode {code!r} has no Zoho product id yet",
                                field=f"LineItems[{index}].ItemCode")
            item: dict[str, Any] = {
                "Product_Name": {"id": product_id},
                "Quantity": money.quantity,
                "List_Price": money.list_price,
                "Discount": money.discount,
                "Tax": money.tax,
            }
            description = clean_text(line.get("Description"), field=f"LineItems[{index}].Description")
            if description is not None:
                item["Description"] = zf.truncate_text(description, zf.INVOICE_LINE_DESCRIPTION_MAX)
            items.append(item)
    record["Invoiced_Items"] = items

    if _present(invoice.get("Total")):
        adjustment = to_money(invoice["Total"], field="Total") - (net_sum + tax_sum)
        if adjustment:
            record["Adjustment"] = adjustment
    return record


def invoice_items(invoice: Mapping[str, Any], *, list_price_places: int = 4) -> list[dict[str, Any]]:
    """The Zoho Products to upsert before ``map_invoice``: one per distinct ItemCode, first line wins.

    ``{"Product_Name", "Product_Code", "Xero_Item_Code", "Unit_Price"}``; Product_Name is the Xero
    item name when the line carries it, else the code. Unit_Price is the first line's tax-exclusive
    List_Price. Upsert by Xero_Item_Code: Zoho's default duplicate check (Product_Name) would merge
    two Xero items that share a name.
    """
    if not isinstance(invoice, Mapping):
        raise DataError("invoice: expected an object", field="Invoice")
    amount_types = _line_amount_types(invoice)
    limits = zf.PRODUCTS_MAX_LENGTH
    products: dict[str, dict[str, Any]] = {}
    step = _list_price_step(list_price_places)
    with _working_context():  # nothing else in the loop computes with Decimals
        for index, line in enumerate(_lines(invoice)):
            code = _item_code(line, index)
            if code is None or code in products:
                continue
            item = line.get("Item") if isinstance(line.get("Item"), Mapping) else {}
            name = clean_text(item.get("Name"), field=f"LineItems[{index}].Item.Name") or code
            money = _line_money_in_context(line, amount_types, index, step)
            products[code] = {
                "Product_Name": zf.truncate_text(name, limits["Product_Name"]),
                "Product_Code": zf.truncate_text(code, limits["Product_Code"]),
                zf.PRODUCT_ITEM_CODE: code,
                "Unit_Price": money.list_price,
            }
    return list(products.values())


def expected_totals(invoice: Mapping[str, Any]) -> dict[str, Decimal]:
    """Xero's SubTotal, TotalTax and Total (Decimal, 2 dp) for the reconciliation check.

    Taken as Xero reports them; any that are missing are computed from the lines with Xero's
    arithmetic (see the module docstring).
    """
    if not isinstance(invoice, Mapping):
        raise DataError("invoice: expected an object", field="Invoice")
    reported = {name: invoice.get(name) for name in ("SubTotal", "TotalTax", "Total")}
    if all(_present(value) for value in reported.values()):
        return {name: to_money(value, field=name) for name, value in reported.items()}
    amount_types = _line_amount_types(invoice)
    moneys = [_line_money(line, amount_types, i, 4) for i, line in enumerate(_lines(invoice))]
    computed = {
        "SubTotal": sum((m.net for m in moneys), Decimal("0.00")),
        "TotalTax": sum((m.tax for m in moneys), Decimal("0.00")),
    }
    computed["Total"] = computed["SubTotal"] + computed["TotalTax"]
    return {
        name: to_money(reported[name], field=name) if _present(reported[name]) else computed[name]
        for name in ("SubTotal", "TotalTax", "Total")
    }


# --- helpers -------------------------------------------------------------------------------------


def _present(value: object) -> bool:
    return value is not None and value != ""


def _invoice_type(invoice: Mapping[str, Any], *, allow_bills: bool) -> str:
    kind = clean_text(invoice.get("Type"), field="Type")
    allowed = ("ACCREC", "ACCPAY") if allow_bills else ("ACCREC",)
    if kind not in allowed:
        raise DataError(f"Type {kind!r} is not synced (allowed: {', '.join(allowed)})", field="Type")
    return kind


def _line_amount_types(invoice: Mapping[str, Any]) -> str:
    text = clean_text(invoice.get("LineAmountTypes"), field="LineAmountTypes")
    if text is None:
        return "Exclusive"  # Xero's default when the element is absent
    try:
        return _LINE_AMOUNT_TYPES[text.lower()]
    except KeyError:
        raise DataError(f"LineAmountTypes {text!r} is not Exclusive/Inclusive/NoTax",
                        field="LineAmountTypes") from None


def _lines(invoice: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    value = invoice.get("LineItems")
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise DataError("LineItems: expected a list", field="LineItems")
    for index, line in enumerate(value):
        if not isinstance(line, Mapping):
            raise DataError(f"LineItems[{index}]: expected an object", field=f"LineItems[{index}]")
    return list(value)


def _item_code(line: Mapping[str, Any], index: int) -> str | None:
    code = clean_text(line.get("ItemCode"), field=f"LineItems[{index}].ItemCode")
    if code is None and isinstance(line.get("Item"), Mapping):
        code = clean_text(line["Item"].get("Code"), field=f"LineItems[{index}].Item.Code")
    return code


def _round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _line_money(line: Mapping[str, Any], amount_types: str, index: int, places: int) -> _LineMoney:
    """Zoho line money for one Xero line; see the module docstring for the arithmetic."""
    step = _list_price_step(places)
    with _working_context():
        return _line_money_in_context(line, amount_types, index, step)


def _line_money_in_context(line: Mapping[str, Any], amount_types: str, index: int, step: Decimal) -> _LineMoney:
    """``_line_money`` for a caller that has entered ``_working_context()`` (once for all its lines: a
    context per line cost as much as a quarter of the arithmetic) and made ``step`` in its own context."""
    try:
        return _line_money_unchecked(line, amount_types, index, step)
    except DecimalException:
        # Only absurd magnitudes (e.g. 1E+999999) get here: rounding them exceeds any precision.
        field = f"LineItems[{index}]"
        raise DataError(f"{field}: amounts out of range", field=field) from None


def _working_context() -> AbstractContextManager[Context]:
    """The caller's decimal context with the working precision."""
    return localcontext(prec=_WORKING_PRECISION)


_ONE, _ZERO, _ZERO_CENTS = Decimal(1), Decimal(0), Decimal("0.00")
# List_Price steps by places; Decimal(1).scaleb(-places) is exact in any context for these.
_STEPS = {places: Decimal(1).scaleb(-places) for places in range(13)}


def _list_price_step(places: int) -> Decimal:
    step = _STEPS.get(places) if type(places) is int else None
    return Decimal(1).scaleb(-places) if step is None else step


def _line_decimal(value: Any, index: int, name: str) -> Decimal:
    """``to_decimal(value, field=f"LineItems[{index}].{name}")``: the common types converted here, the
    rest (and every error) by to_decimal, so the field's name is only written when it is needed."""
    kind = type(value)
    if kind is str:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    elif kind is Decimal:
        number = value
    elif kind is int:
        number = Decimal(str(value))
    else:
        number = None
    if number is not None and number.is_finite():
        return number
    return to_decimal(value, field=f"LineItems[{index}].{name}")


def _line_cents(value: Any, index: int, name: str) -> Decimal:
    """``to_money(value, field=f"LineItems[{index}].{name}")``, as _line_decimal."""
    try:
        return _line_decimal(value, index, name).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return to_money(value, field=f"LineItems[{index}].{name}")  # raises its DataError


def _line_money_unchecked(line: Mapping[str, Any], amount_types: str, index: int, step: Decimal) -> _LineMoney:
    get = line.get
    value = get("Quantity")
    # a description-only line: one of nothing
    quantity = _line_decimal(value, index, "Quantity") if value is not None and value != "" else _ONE
    value = get("UnitAmount")
    unit = _line_decimal(value, index, "UnitAmount") if value is not None and value != "" else None
    value = get("DiscountRate")
    rate = _line_decimal(value, index, "DiscountRate") if value is not None and value != "" else _ZERO
    value = get("DiscountAmount")
    discount_amount = _line_cents(value, index, "DiscountAmount") if value is not None and value != "" else _ZERO
    value = get("TaxAmount")
    tax = _line_cents(value, index, "TaxAmount") if value is not None and value != "" else _ZERO_CENTS

    gross = quantity * (unit or 0)  # before discount; includes tax on Inclusive lines
    value = get("LineAmount")
    if value is not None and value != "":
        line_amount = _line_cents(value, index, "LineAmount")
    elif rate:
        line_amount = _round2(gross * (100 - rate) / 100)
    else:
        line_amount = _round2(gross - discount_amount)
    net = line_amount - tax if amount_types == "Inclusive" else line_amount

    if unit is None:
        exclusive_gross = net  # no unit price to recover a discount from
    elif amount_types == "Inclusive" and line_amount:
        exclusive_gross = gross * net / line_amount  # take tax out in proportion
    else:
        exclusive_gross = gross

    if quantity == 0:
        if net != 0:
            field = f"LineItems[{index}]"
            raise DataError(f"{field}.Quantity is 0 but the line amount is {line_amount}",
                            field=f"{field}.Quantity")
        list_price = (unit or _ZERO).quantize(step, rounding=ROUND_UP)
        return _LineMoney(quantity, list_price, _ZERO_CENTS, tax, net)

    list_price = (exclusive_gross / quantity).quantize(step, rounding=ROUND_UP)
    discount = _round2(quantity * list_price) - net
    if discount < 0 <= net and quantity > 0:
        # Xero's LineAmount rounded above Quantity * UnitAmount: price from the net instead,
        # which guarantees round2(Quantity * List_Price) >= net.
        list_price = (net / quantity).quantize(step, rounding=ROUND_UP)
        discount = _round2(quantity * list_price) - net
    return _LineMoney(quantity, list_price, discount, tax, net)
