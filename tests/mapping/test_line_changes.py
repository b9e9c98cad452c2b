"""line_changes compares what we send with what Zoho returns as the first writing of it did."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connector.mapping.invoice_lines import decimal_or_none, line_changes, line_content


def _number_as_first_written(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _line_content_as_first_written(line: Mapping[str, Any]) -> tuple:
    product = line.get("Product_Name")
    product_id = str(product.get("id")) if isinstance(product, Mapping) else product
    return (product_id, *(_number_as_first_written(line.get(key)) for key in ("Quantity", "List_Price", "Discount", "Tax")),
            line.get("Description") or None)


amounts = st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**6, max_value=10**6)
numbers = st.one_of(st.none(), st.booleans(), amounts, amounts.map(float), amounts.map(str), st.integers(),
                    st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), "abc", "", float("inf")]))
zoho_lines = st.fixed_dictionaries({"id": st.sampled_from(["1", "2", 3])}, optional={
    "Product_Name": st.one_of(st.text(max_size=2), st.fixed_dictionaries({"id": st.sampled_from(["7", 7, None])})),
    "Quantity": numbers, "List_Price": numbers, "Discount": numbers, "Tax": numbers,
    "Description": st.one_of(st.none(), st.sampled_from(["", "Line", "Line 2"]))})


@given(numbers)
def test_number_is_as_first_written(value: Any) -> None:
    got, want = decimal_or_none(value), _number_as_first_written(value)
    assert (type(got), str(got)) == (type(want), str(want))


@given(zoho_lines)
def test_line_content_is_as_first_written(line: dict[str, Any]) -> None:
    assert repr(line_content(line)) == repr(_line_content_as_first_written(line))


def _line_changes_as_first_written(current: list[Mapping[str, Any]], wanted: list[Mapping[str, Any]]) -> list | None:
    rows: list[dict] = []
    for index in range(max(len(current), len(wanted))):
        if index < len(current) and index < len(wanted):
            if _line_content_as_first_written(current[index]) != _line_content_as_first_written(wanted[index]):
                rows.append({"id": str(current[index]["id"]), "Description": None, **wanted[index]})
        elif index < len(current):
            rows.append({"id": str(current[index]["id"]), "_delete": None})
        else:
            rows.append(dict(wanted[index]))
    return rows or None


@given(st.lists(zoho_lines, max_size=3), st.lists(zoho_lines, max_size=3))
def test_line_changes_are_as_first_written(current: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> None:
    assert repr(line_changes(current, wanted)) == repr(_line_changes_as_first_written(current, wanted))
