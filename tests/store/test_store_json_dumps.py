"""dumps_for_storage writes through orjson only when the text is the one json.dumps writes: every edge where
orjson differs (floats, NaN, enums, subclasses, non-str keys, big integers, lone surrogates, non-ASCII,
DEL, NUL, self-nesting) must come out as the stdlib writes it, or fail as it fails."""

from __future__ import annotations

import json
from collections import namedtuple
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.secret import Secret
from connector.json_codec import _storage_default, _storage_writable, dumps_for_storage, without_nul
from tests.conftest import property_examples
from tests.json_edges import Colour, Level, any_text, documents, outcome


def stdlib_json_dumps(value):
    """The writer dumps_for_storage replaced: json.dumps, written again without NUL when it shows one."""
    text = json.dumps(value, default=_storage_default, separators=(",", ":"))
    if "\\u0000" in text:
        text = json.dumps(without_nul(value), default=_storage_default, separators=(",", ":"))
    return text


class Name(str):
    pass


class Moment(datetime):
    pass


@dataclass
class Point:
    x: int


Pair = namedtuple("Pair", "a b")


@pytest.mark.parametrize("value", [
    {"amount": Decimal("12.50"), "rate": Decimal("1.000000"), "tiny": Decimal("1E-7"), "nan": Decimal("NaN")},
    {"float": 0.1, "small": 1e-05, "big": 1e16, "negative_zero": -0.0},
    {"nan": float("nan")}, [float("inf")], {"nested": [{"x": float("-inf")}]},
    {"enum": Colour.RED}, {"int_enum": Level.HIGH}, {"str_subclass": Name("x")}, {Name("key"): 1},
    {"dataclass": Point(1)}, {"namedtuple": Pair(1, 2)}, {1: "int key", None: "none key", 2.5: "float key"},
    {"huge": 2**64}, {"negative_huge": -(2**63) - 1}, {"u64": 2**64 - 1}, {"lone": "\ud800"}, {"\udfff": 1},
    {"accents": "Zoë Ångström €", "astral": "\U0001f600", "del": "a\x7fb", "controls": "\x01\n\t\x1f\"\\"},
    {"nul": "a\x00b", "\x00key": ["\x00"]}, {"escaped backslash": "\\u0000"},
    {"when": datetime(2026, 11, 30, 21, 0, tzinfo=timezone.utc), "naive": datetime(2026, 1, 2, 3, 4, 5, 6),
     "day": date(2026, 11, 30), "id": UUID("12345678-1234-5678-1234-567812345678"), "token": Secret("hunter2")},
    {"micro": datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=timezone.utc), "year_1": datetime(1, 1, 1),
     "old_day": date(999, 12, 31), "upper_uuid": UUID("ABCDEF01-1234-5678-1234-567812345678")},
    # orjson rounds offsets to the minute and writes subclasses and times its own way: json.dumps writes these.
    {"seconds_offset": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15)))},
    {"local_mean_time": datetime(1800, 1, 1, tzinfo=ZoneInfo("Europe/Amsterdam"))},
    {"zone": datetime(2026, 6, 1, 12, tzinfo=ZoneInfo("Pacific/Auckland"))},
    {"offset": datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=-3)))},
    {"subclass": Moment(2026, 1, 1, tzinfo=timezone.utc)}, {"time": time(12, 30)},
    {"tuple": (1, "a", None, True, False)}, [], {}, "plain", 7, None, True, Decimal("3.14"),
    {"unserialisable": object()}, {"set": {1}}, {"bytes": b"x"},
])
def test_json_dumps_writes_what_json_dumps_writes(value):
    assert outcome(dumps_for_storage, value) == outcome(stdlib_json_dumps, value)


def test_json_dumps_refuses_a_document_that_contains_itself_as_json_dumps_does():
    looped: list = []
    looped.append({"again": looped})
    assert outcome(dumps_for_storage, looped) == outcome(stdlib_json_dumps, looped)


def test_json_dumps_deep_nesting_beyond_orjson_limit_is_written_by_json_dumps():
    deep: list = ["bottom"]
    for _ in range(400):
        deep = [{"down": deep}]
    assert dumps_for_storage(deep) == stdlib_json_dumps(deep)


leaves = (any_text | st.integers() | st.floats() | st.booleans() | st.none()
          | st.decimals(allow_nan=True, allow_infinity=True) | st.dates()
          | st.datetimes(timezones=st.none() | st.just(timezone.utc) | st.timezones()
                         | st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23)).map(timezone))
          | st.uuids() | st.builds(Secret, st.text(max_size=4)))
@settings(max_examples=property_examples(400), deadline=None)
@given(documents(leaves))
def test_json_dumps_matches_json_dumps_on_any_document(value):
    assert outcome(dumps_for_storage, value) == outcome(stdlib_json_dumps, value)


def test_rows_as_the_store_writes_them_go_through_orjson():
    # Not a behaviour: the reason dumps_for_storage is fast. Rows with UTC timestamps, Decimals, nested
    # payloads and NULLs must not fall back to json.dumps.
    now = datetime(2026, 11, 30, 21, 31, 0, 692017, tzinfo=timezone.utc)
    rows = [{"connection_id": 1, "xero_id": "a", "source_updated_at": now, "fetched_at": now, "task_id": None,
             "payload": {"Total": Decimal("40.10"), "LineItems": [{"Quantity": Decimal("2.0000"), "Tracking": []}],
                         "Date": date(2026, 11, 30), "HasErrors": False}}]
    assert _storage_writable(rows)
