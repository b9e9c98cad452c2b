"""content_hash: stable across key order and number spelling; sensitive to real changes."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timezone
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.mapping import canonical_json, content_hash
from connector.mapping.hashing import _encoded_by_c, _number, _written_in_python, content_hashes_with


def test_canonical_json_text() -> None:
    payload = {"b": [Decimal("1.50"), 2, None, True], "a": {"y": "é", "x": Decimal("100")}}
    assert canonical_json(payload) == '{"a":{"x":100,"y":"é"},"b":[1.5,2,null,true]}'


def test_key_order_does_not_matter() -> None:
    one = {"Account_Name": "Acme", "Xero_Outstanding": Decimal("1.00"), "Nested": {"a": 1, "b": 2}}
    two = {"Nested": {"b": 2, "a": 1}, "Xero_Outstanding": Decimal("1.00"), "Account_Name": "Acme"}
    assert content_hash(one) == content_hash(two)


def test_numbers_hash_by_value() -> None:
    # Decision: Decimal("1.0") and Decimal("1.00") (and 1, 1.0) are the same content.
    spellings = [Decimal("1.0"), Decimal("1.00"), Decimal("1"), 1, 1.0, Decimal("0.1E1")]
    assert len({content_hash({"x": value}) for value in spellings}) == 1
    assert content_hash({"x": Decimal("-0.00")}) == content_hash({"x": 0})


def test_real_changes_change_the_hash() -> None:
    base = content_hash({"x": Decimal("1.00")})
    assert content_hash({"x": Decimal("1.01")}) != base
    assert content_hash({"x": "1"}) != base  # a string is not a number
    assert content_hash({"x": True}) != base  # a bool is not a number
    assert content_hash({"x": Decimal("1.00"), "y": None}) != base  # an explicit null is content
    assert content_hash({"x": [1, 2]}) != content_hash({"x": [2, 1]})  # list order is content
    long_a = Decimal("1.00000000000000000000000000000001")
    assert content_hash({"x": long_a}) != base  # no rounding to 28 digits


def test_hash_is_the_lowercase_hex_sha256_of_the_canonical_text() -> None:
    # Stored hashes (the write ledger) were made this way: any other digest or spelling re-sends every record.
    payload = {"Account_Name": "Acme ✓", "Xero_Outstanding": Decimal("1.50")}
    digest = content_hash(payload)
    assert re.fullmatch(r"[0-9a-f]{64}", digest), digest
    assert digest == hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
    assert content_hash({}) == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # sha256 of "{}"
    assert content_hash(dict(payload)) == digest
    assert content_hash({**payload, "Account_Name": "Acme"}) != digest


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": Decimal("Infinity")}, {1: "a"}, {"x": object()}])
def test_unencodable_values_are_refused(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        content_hash(bad)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.text(), st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
)
payloads = st.recursive(
    st.dictionaries(st.text(), json_scalars),
    lambda children: st.dictionaries(st.text(), st.one_of(json_scalars, children, st.lists(children, max_size=3))),
    max_leaves=20,
)


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    if isinstance(value, Decimal):  # same value, one more trailing zero (1.5 -> 1.50)
        sign, digits, exponent = value.as_tuple()
        return Decimal((sign, (*digits, 0), exponent - 1))
    return value


@given(payloads)
def test_hash_is_stable_under_key_reordering_and_respelling(payload: dict[str, Any]) -> None:
    assert content_hash(payload) == content_hash(_reordered(payload))


@given(
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False, places=2),
    st.integers(min_value=0, max_value=6),
)
def test_trailing_zeros_never_matter(amount: Decimal, extra_zeros: int) -> None:
    respelled = amount.quantize(Decimal(1).scaleb(-(2 + extra_zeros)))
    assert content_hash({"Amount": amount}) == content_hash({"Amount": respelled})


any_scalars = st.one_of(
    json_scalars, st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.sampled_from([None, timezone.utc])), st.dates(),
    st.sampled_from(["\x00", "a\x000\x00", "\x000\x00", "é ✓ \u2028", '"\\u0000"']),
)
any_payloads = st.recursive(
    st.dictionaries(st.text(), any_scalars),
    lambda children: st.dictionaries(st.one_of(st.text(), st.sampled_from(["\x000\x00", "\x00"])), st.one_of(
        any_scalars, children, st.lists(children, max_size=3), st.tuples(children, any_scalars))),
    max_leaves=25,
)


@given(any_payloads)
def test_the_c_encoder_path_writes_exactly_what_the_reference_writer_does(payload: dict[str, Any]) -> None:
    # Stored content hashes were made by the reference writer: a different text would re-send every record.
    assert canonical_json(payload) == _written_in_python(payload)


def test_a_known_text_is_unchanged() -> None:
    payload = {"b": [Decimal("1.50"), 2.0, 1e-7, -0.0, 10**30], "a": {"z": None, "y": True, "x": "é\x00"},
               "d": datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc), "c": date(2026, 1, 2)}
    assert canonical_json(payload) == ('{"a":{"x":"é\\u0000","y":true,"z":null},"b":[1.5,2,0.0000001,0,'
                                       '1000000000000000000000000000000],"c":"2026-01-02",'
                                       '"d":"2026-11-30T12:00:00+00:00"}')


class _Text(str):
    pass


class _Count(int):
    pass


class _Amount(Decimal):
    pass


class _Record(dict):
    pass


odd_scalars = st.one_of(
    st.builds(_Text, st.text(max_size=3)), st.builds(_Count, st.integers()),
    st.builds(_Amount, st.decimals(allow_nan=False, allow_infinity=False, places=2)),
    # slot-like text: a NUL as a whole string, or next to a quote, at the start or end
    st.sampled_from(['"\x00', '\x00"', '"\x00"', "\\u0000", '\\"\x00', "x\x00"]),
)
odd_payloads = st.recursive(
    st.dictionaries(st.text(max_size=3), st.one_of(any_scalars, odd_scalars)),
    lambda children: st.one_of(
        st.dictionaries(st.text(max_size=3), st.one_of(any_scalars, odd_scalars, children,
                                                       st.lists(children, max_size=3))),
        st.builds(_Record, children),
        st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)),
                        any_scalars, min_size=1, max_size=2),
    ),
    max_leaves=25,
)


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


@given(odd_payloads)
def test_odd_types_and_keys_come_out_as_the_reference_writes_them(payload: dict[str, Any]) -> None:
    # Subclasses, non-str keys, floats and NUL strings leave the C path; the text (or error) is the reference's.
    assert _outcome(canonical_json, payload) == _outcome(_written_in_python, payload)


def _number_as_first_written(value: Any) -> str:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"content_hash: {value!r} is not a finite number")
    if number.is_zero():
        return "0"
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@given(st.one_of(st.decimals(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False),
                 st.integers(), st.builds(_Amount, st.decimals(allow_nan=False, allow_infinity=False))),
       st.booleans())
def test_number_text_is_the_one_first_written(value: Any, capitals: bool) -> None:
    with localcontext() as ctx:
        ctx.capitals = int(capitals)  # str(Decimal) writes its exponent as e when capitals is 0
        assert _number(value) == _number_as_first_written(value)


@given(st.dictionaries(st.text(max_size=3), any_scalars, max_size=5), st.one_of(st.text(max_size=3), st.integers()),
       st.one_of(any_payloads, st.lists(any_payloads, max_size=3), odd_payloads))
def test_hashes_with_a_part_are_the_two_hashes(header: dict[str, Any], key: Any, part: Any) -> None:
    assert _outcome(content_hashes_with, header, key, part) == _outcome(
        lambda: (content_hash({**header, key: part}), content_hash({key: part})))


def test_a_mapped_invoice_takes_the_c_path() -> None:
    # The fast path is the point: a mapped record (str, int, Decimal, dicts, lists) must not fall back.
    lines = [{"Product_Name": {"id": "4876876000000000002"}, "Quantity": Decimal("2.0000"),
              "List_Price": Decimal("313.0000"), "Discount": Decimal("0.00"), "Tax": Decimal("93.90"),
              "Description": "Line ✓"}] * 3
    record = {"Subject": "INV-1", "Exchange_Rate": Decimal("1.000000"), "Account_Name": {"id": "1"},
              "Invoice_Date": "2026-11-30", "Due": date(2026, 12, 1), "Paid": None, "Sent": False, "Count": 3}
    whole = _encoded_by_c({**record, "Invoiced_Items": lines})
    assert whole == _written_in_python({**record, "Invoiced_Items": lines})
    assert content_hashes_with(record, "Invoiced_Items", lines) == (
        content_hash({**record, "Invoiced_Items": lines}), content_hash({"Invoiced_Items": lines}))
