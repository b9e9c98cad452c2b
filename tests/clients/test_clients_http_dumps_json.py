"""dumps_for_api writes request bodies through orjson only when the text is the one its recursive writer
(_dumps_for_api_stdlib) writes: every edge where orjson differs (floats, NaN, non-finite Decimals, datetimes,
enums, subclasses, non-str keys, big integers, lone surrogates, non-ASCII, DEL, self-nesting) must come
out as that writer writes it, or fail as it fails."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.json_codec import _api_writable, _dumps_for_api_stdlib, dumps_for_api
from connector.secret import Secret
from tests.conftest import property_examples
from tests.json_edges import Colour, Level, any_text, documents, outcome


class Name(str):
    def __str__(self) -> str:
        return "renamed"


class Day(date):
    pass


@pytest.mark.parametrize("value", [
    {"Total": Decimal("40.10"), "Rate": Decimal("1E-7"), "Big": Decimal("1E+2"), "Zero": Decimal("-0")},
    {"nan": Decimal("NaN")}, [Decimal("Infinity")], {"deep": [{"x": Decimal("-Infinity")}]}, Decimal("sNaN"),
    {"float": 0.1, "small": 1e-05, "big": 1e16}, {"nan": float("nan")}, [float("inf")],
    {"day": date(2026, 11, 30)}, {"subclass_day": Day(2026, 11, 30)},
    {"when": datetime(2026, 11, 30, tzinfo=timezone.utc)}, {"naive": datetime(2026, 11, 30)},
    {"id": UUID(int=1)}, {"token": Secret("x")},
    {"enum": Colour.RED}, {"int_enum": Level.HIGH}, {"str_subclass": Name("x")}, {Name("key"): 1},
    {1: "int key", None: "none key", 2.5: "float key", False: "bool key", Decimal("1.5"): "decimal key"},
    {"huge": 2**64}, {"negative_huge": -(2**63) - 1}, {"lone": "\ud800"}, {"\udfff": 1},
    {"accents": "Zoë Ångström €", "astral": "\U0001f600", "del": "a\x7fb", "controls": "\x00\x01\n\t\"\\"},
    {"tuple": (1, "a", None, True, False)}, [], {}, "plain", 7, None, True,
    {"unserialisable": object()}, {"set": {1}},
])
def test_dumps_json_writes_what_the_recursive_writer_writes(value):
    assert outcome(dumps_for_api, value) == outcome(_dumps_for_api_stdlib, value)


def test_dumps_json_still_refuses_non_finite_decimals_with_value_error():
    for value in (Decimal("NaN"), {"a": [Decimal("Infinity")]}):
        with pytest.raises(ValueError, match="cannot send"):
            dumps_for_api(value)


def test_dumps_json_refuses_a_document_that_contains_itself_as_before():
    looped: dict = {}
    looped["again"] = [looped]
    # RecursionError's wording depends on where the stack ran out, in the old writer too.
    with pytest.raises(RecursionError):
        _dumps_for_api_stdlib(looped)
    with pytest.raises(RecursionError):
        dumps_for_api(looped)


leaves = (any_text | st.integers() | st.floats() | st.booleans() | st.none()
          | st.decimals(allow_nan=True, allow_infinity=True) | st.decimals(allow_nan=False, allow_infinity=False)
          | st.dates() | st.datetimes())
@settings(max_examples=property_examples(400), deadline=None)
@given(documents(leaves))
def test_dumps_json_matches_the_recursive_writer_on_any_document(value):
    assert outcome(dumps_for_api, value) == outcome(_dumps_for_api_stdlib, value)


def test_request_bodies_as_the_clients_send_them_go_through_orjson():
    # Not a behaviour: the reason dumps_for_api is fast. A mapped record must not fall back.
    body = {"data": [{"Subject": "INV-1", "Invoice_Date": date(2026, 11, 30), "Exchange_Rate": Decimal("1.000000"),
                      "Invoiced_Items": [{"Product_Name": {"id": "900"}, "Quantity": Decimal("2.0000")}],
                      "Description": None, "Paid": True, "Count": 3}], "trigger": ["workflow"]}
    assert _api_writable(body)
    assert dumps_for_api(body) == _dumps_for_api_stdlib(body)
