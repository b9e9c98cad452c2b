"""The line money arithmetic against its first, plain writing: same Decimals (digits and exponent) or the same error."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, ROUND_UP, Decimal, DecimalException, localcontext
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import DataError
from connector.mapping.invoices import _line_money
from connector.mapping.xero_values import CENT, to_decimal, to_money
from tests.conftest import property_examples


def _present(value: object) -> bool:
    return value is not None and value != ""


def _round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def reference_line_money(line: dict[str, Any], amount_types: str, index: int, places: int) -> tuple:
    """connector/mapping/invoices.py's _line_money as first written (before it was made cheaper)."""
    try:
        field = f"LineItems[{index}]"
        step = Decimal(1).scaleb(-places)
        with localcontext() as ctx:
            ctx.prec = 60
            quantity = to_decimal(line["Quantity"], field=f"{field}.Quantity") if _present(
                line.get("Quantity")) else Decimal(1)
            unit = to_decimal(line["UnitAmount"], field=f"{field}.UnitAmount") if _present(
                line.get("UnitAmount")) else None
            rate = to_decimal(line["DiscountRate"], field=f"{field}.DiscountRate") if _present(
                line.get("DiscountRate")) else Decimal(0)
            discount_amount = to_money(line["DiscountAmount"], field=f"{field}.DiscountAmount") if _present(
                line.get("DiscountAmount")) else Decimal(0)
            tax = to_money(line["TaxAmount"], field=f"{field}.TaxAmount") if _present(
                line.get("TaxAmount")) else Decimal("0.00")
            gross = quantity * (unit or 0)
            if _present(line.get("LineAmount")):
                line_amount = to_money(line["LineAmount"], field=f"{field}.LineAmount")
            elif rate:
                line_amount = _round2(gross * (100 - rate) / 100)
            else:
                line_amount = _round2(gross - discount_amount)
            net = line_amount - tax if amount_types == "Inclusive" else line_amount
            if unit is None:
                exclusive_gross = net
            elif amount_types == "Inclusive" and line_amount:
                exclusive_gross = gross * net / line_amount
            else:
                exclusive_gross = gross
            if quantity == 0:
                if net != 0:
                    raise DataError(f"{field}.Quantity is 0 but the line amount is {line_amount}",
                                    field=f"{field}.Quantity")
                list_price = (unit or Decimal(0)).quantize(step, rounding=ROUND_UP)
                return quantity, list_price, Decimal("0.00"), tax, net
            list_price = (exclusive_gross / quantity).quantize(step, rounding=ROUND_UP)
            discount = _round2(quantity * list_price) - net
            if discount < 0 <= net and quantity > 0:
                list_price = (net / quantity).quantize(step, rounding=ROUND_UP)
                discount = _round2(quantity * list_price) - net
        return quantity, list_price, discount, tax, net
    except DecimalException:
        field = f"LineItems[{index}]"
        raise DataError(f"{field}: amounts out of range", field=field) from None


def _outcome(function: Any, *args: Any) -> Any:
    try:
        result = function(*args)
    except DataError as exc:
        return "DataError", str(exc), exc.field
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)
    return tuple((str(number), type(number)) for number in result)  # str: the exponent counts too


numbers = st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**7, max_value=10**7)
values = st.one_of(
    numbers, numbers.map(str), numbers.map(lambda n: f" {n}\t"), numbers.map(float), st.integers(-10**6, 10**6),
    st.sampled_from(["", None, "abc", "NaN", "-Infinity", "1E+999999", "1e-999999", "1_000", " ", True, [1],
                     Decimal("NaN"), Decimal("1E+999999"), 0, "0", "0.00", "-0", 10**5000]),
)
lines = st.fixed_dictionaries({}, optional={key: values for key in (
    "Quantity", "UnitAmount", "DiscountRate", "DiscountAmount", "TaxAmount", "LineAmount")})


@settings(max_examples=property_examples(1000))
@given(lines, st.sampled_from(["Exclusive", "Inclusive", "NoTax"]), st.integers(0, 3), st.sampled_from([0, 2, 4, 6, 20]))
def test_line_money_is_as_first_written(line: dict[str, Any], amount_types: str, index: int, places: int) -> None:
    assert _outcome(_line_money, line, amount_types, index, places) == _outcome(
        reference_line_money, line, amount_types, index, places)
