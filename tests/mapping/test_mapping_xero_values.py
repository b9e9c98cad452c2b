"""Unit tests for the Xero scalar parsers (dates, days, money, decimals)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import DataError
from connector.mapping.zoho_fields import utf16_length
from connector.mapping.xero_values import (
    clean_text,
    parse_xero_date,
    parse_xero_day,
    to_decimal,
    to_money,
    xero_deep_link,
)

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1439434356790)/", datetime(2015, 8, 13, 2, 52, 36, 790000, tzinfo=UTC)),
        ("/Date(1419937200000+0000)/", datetime(2014, 12, 30, 11, 0, tzinfo=UTC)),
        # The offset is informational: the milliseconds are already UTC.
        ("/Date(1419937200000-0700)/", datetime(2014, 12, 30, 11, 0, tzinfo=UTC)),
        ("/Date(1419937200000+1300)/", datetime(2014, 12, 30, 11, 0, tzinfo=UTC)),
        ("\\/Date(1466787188930+0000)\\/", datetime(2016, 6, 24, 16, 53, 8, 930000, tzinfo=UTC)),
        ("/Date(-86400000)/", datetime(1969, 12, 31, tzinfo=UTC)),
        ("2019-11-14T18:10:38Z", datetime(2019, 11, 14, 18, 10, 38, tzinfo=UTC)),
        ("2019-03-07T00:00:00", datetime(2019, 3, 7, tzinfo=UTC)),  # naive means UTC
        ("2019-12-07T18:46:19.5165400", datetime(2019, 12, 7, 18, 46, 19, 516540, tzinfo=UTC)),
        ("2020-02-06T12:17:43.202-08:00", datetime(2020, 2, 6, 20, 17, 43, 202000, tzinfo=UTC)),
        ("2020-02-06T12:17:43+0530", datetime(2020, 2, 6, 6, 47, 43, tzinfo=UTC)),
        ("2024-06-21T01:15:39.902", datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("  /Date(0)/ ", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_xero_date_variants_are_utc(text: str, expected: datetime) -> None:
    parsed = parse_xero_date(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_parse_xero_date_empty_is_none_and_objects_pass_through() -> None:
    assert parse_xero_date(None) is None
    assert parse_xero_date("") is None
    assert parse_xero_date("   ") is None
    naive = datetime(2020, 1, 1, 12, 0)
    assert parse_xero_date(naive) == naive.replace(tzinfo=UTC)
    aware = datetime(2020, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert parse_xero_date(aware) == datetime(2020, 1, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "garbage",
    ["yesterday", "/Date(abc)/", "/Date(12)", "2019-13-01", "2019-02-30T00:00:00", "2019-01-01T25:00:00",
     "/Date(99999999999999999999)/", 12345, 1.5, ["2019-01-01"], "2019-01-01T00:00:00+25:00"],
)
def test_parse_xero_date_garbage_raises_data_error_naming_field(garbage: object) -> None:
    with pytest.raises(DataError) as caught:
        parse_xero_date(garbage, field="UpdatedDateUTC")
    assert caught.value.field == "UpdatedDateUTC"
    assert "UpdatedDateUTC" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1551916800000+0000)/", date(2019, 3, 7)),
        ("/Date(1551916800000)/", date(2019, 3, 7)),
        ("/Date(1551916800000-0800)/", date(2019, 3, 7)),  # still the UTC day
        ("2019-03-07T00:00:00", date(2019, 3, 7)),
        ("2019-03-07T00:00:00+13:00", date(2019, 3, 7)),  # a day as written, not shifted
        ("2019-03-07", date(2019, 3, 7)),
    ],
)
def test_parse_xero_day(text: str, expected: date) -> None:
    assert parse_xero_day(text) == expected


def test_parse_xero_day_empty_and_garbage() -> None:
    assert parse_xero_day(None) is None
    assert parse_xero_day("") is None
    assert parse_xero_day(date(2020, 2, 29)) == date(2020, 2, 29)
    with pytest.raises(DataError) as caught:
        parse_xero_day("31/12/2020", field="DueDate")
    assert caught.value.field == "DueDate"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("40.00", Decimal("40.00")),
        (40, Decimal("40.00")),
        (118.9, Decimal("118.90")),
        (0.1, Decimal("0.10")),
        (Decimal("2.005"), Decimal("2.01")),  # half-up, not banker's
        ("2.004999", Decimal("2.00")),
        (Decimal("-2.005"), Decimal("-2.01")),  # half away from zero
        ("1e2", Decimal("100.00")),
        (" 7.5 ", Decimal("7.50")),
    ],
)
def test_to_money_rounds_half_up_to_cents(raw: object, expected: Decimal) -> None:
    result = to_money(raw)
    assert result == expected
    assert result.as_tuple().exponent == -2


def test_to_decimal_is_exact() -> None:
    assert to_decimal("1.23456789") == Decimal("1.23456789")
    assert to_decimal(0.1) == Decimal("0.1")  # the float as written, not its binary expansion
    assert to_decimal(2) == Decimal(2)
    assert str(to_decimal("2.0000")) == "2.0000"


@pytest.mark.parametrize("garbage", ["", "abc", "NaN", "Infinity", "-inf", None, True, [1], {"a": 1}, float("nan")])
def test_money_garbage_raises_data_error(garbage: object) -> None:
    with pytest.raises(DataError) as caught:
        to_money(garbage, field="Total")
    assert caught.value.field == "Total"
    with pytest.raises(DataError):
        to_decimal(garbage, field="Total")


def test_to_money_out_of_range_is_data_error() -> None:
    with pytest.raises(DataError):
        to_money("1e300", field="Total")


def test_clean_text() -> None:
    assert clean_text("  Acme  ") == "Acme"
    assert clean_text("") is None
    assert clean_text("   ") is None
    assert clean_text(None) is None
    assert clean_text(42) == "42"
    with pytest.raises(DataError):
        clean_text({"x": 1}, field="Name")


def test_xero_deep_link_shapes() -> None:
    assert xero_deep_link("/Contacts/View/abc") == "https://go.xero.com/Contacts/View/abc"
    assert (
        xero_deep_link("/Contacts/View/abc", base="https://go.xero.com/", short_code="!NLglS")
        == "https://go.xero.com/organisationlogin/default.aspx?shortcode=!NLglS&redirecturl=/Contacts/View/abc"
    )


@given(st.text(alphabet=st.characters(codec=None, categories=None, exclude_categories=())))
def test_utf16_length_counts_as_first_written(text: str) -> None:
    # Lone surrogates (Cs) included: JSON can carry them.
    assert utf16_length(text) == len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


@given(st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False)))
def test_clean_text_is_as_first_written(value: object) -> None:
    def first_written(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return DataError
        return str(value).strip() or None

    try:
        got: object = clean_text(value, field="x")
    except DataError:
        got = DataError
    assert got == first_written(value)
