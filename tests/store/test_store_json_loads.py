"""loads_from_storage (psycopg's reader for json and jsonb columns on PostgreSQL) reads through orjson only
when it reads the same values as json.loads: big integers, NaN, 1e400, lone surrogates, a BOM, deep
nesting and bad documents must come out as json.loads reads them, or fail as it fails."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from connector.json_codec import loads_from_storage
from tests.conftest import property_examples


def outcome(read, document):
    try:
        value = read(document)
    except Exception as error:  # noqa: BLE001 - the error itself is what is compared
        return (type(error), str(error))
    return (repr(value), type(value))  # repr tells 1 from 1.0 and -0.0 from 0.0; NaN equals itself


@pytest.mark.parametrize("document", [
    b'{"Total": "40.10", "Lines": [{"Qty": 2, "Rate": 1.5, "Tracking": []}], "Paid": true, "Note": null}',
    b"18446744073709551615", b"18446744073709551616", b"-9223372036854775808", b"-9223372036854775809",
    b'{"id": 123456789012345678901234567890}', b'{"id": "4876876000000123456"}',
    b"1e400", b"-1e400", b"1e-400", b"-0", b"-0.0", b"1E5", b"0.1000000000000000055511151231257827021181583404541015625",
    b"NaN", b"[Infinity, -Infinity]", b'"\\ud800"', b'"\\ud83d\\ude00"', b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}",
    '{"\u00e9": "\u20ac \U0001f600"}'.encode(), b'"\\u0000"', b"", b"{", b"[1,]", b"01", b'"\x01"', b"\xff",
    '{"utf16": 1}'.encode("utf-16"), b"[" * 2000 + b"]" * 2000, '{"as": "str"}',
])
def test_json_loads_reads_what_json_loads_reads(document):
    assert outcome(loads_from_storage, document) == outcome(json.loads, document)


number_literals = (st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][-+]?[0-9]{1,3})?", fullmatch=True)
                   | st.floats(allow_nan=False, allow_infinity=False).map(repr) | st.integers().map(str))


@settings(max_examples=property_examples(500), deadline=None)
@given(st.lists(number_literals | st.text().map(json.dumps), max_size=8))
def test_json_loads_reads_numbers_and_strings_as_json_loads_does(literals):
    document = ("[" + ",".join(literals) + "]").encode()
    assert outcome(loads_from_storage, document) == outcome(json.loads, document)


def test_postgres_jsonb_reads_back_through_json_loads(postgres_url):
    from connector.store.db import make_engine
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            value = connection.execute(text(
                """SELECT CAST('{"n": 123456789012345678901234567890, "f": 1.10, "s": "\\u00e9"}' AS jsonb)""")).scalar()
    finally:
        engine.dispose()
    assert value == {"n": 123456789012345678901234567890, "f": 1.1, "s": "\u00e9"}
    assert type(value["n"]) is int
