"""dumps_lenient writes what json.dumps writes with the same default, on the C encoder or without it,
and the Zoho sandbox's and the control pages' bodies keep their shapes (Decimal as a double there, as a
string here)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from connector import json_codec
from connector.json_codec import dumps_lenient
from connector.sandbox.control import _json as control_json
from connector.sandbox.zoho.render import _json as zoho_json

DOCUMENT = {"amount": Decimal("110.50"), "when": datetime(2026, 12, 6, 9, 30, 15, 250, tzinfo=timezone.utc),
            "name": "Zoë", "ratio": float("nan"), "nested": [Decimal("1"), {"a": None, 3: True}]}


@pytest.mark.parametrize("c_encoder", [True, False], ids=["c-encoder", "python-encoder"])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_lenient_text_is_json_dumps_with_the_same_default(monkeypatch, c_encoder, ensure_ascii):
    if not c_encoder:
        monkeypatch.setattr(json_codec, "_C_MAKE_ENCODER", None)
    for value in (DOCUMENT, [DOCUMENT], "Zoë", Decimal("2.5")):
        assert dumps_lenient(value, ensure_ascii=ensure_ascii) == json.dumps(value, ensure_ascii=ensure_ascii,
                                                                             default=str)
    as_float = {Decimal: float}
    written = dumps_lenient(DOCUMENT, default=lambda v: as_float.get(type(v), str)(v))
    assert json.loads(written)["amount"] == 110.5
    # Indented for people (the console's mapping preview), as json.dumps indents.
    assert dumps_lenient(DOCUMENT, ensure_ascii=ensure_ascii, indent=2) == json.dumps(
        DOCUMENT, ensure_ascii=ensure_ascii, default=str, indent=2)


def test_the_zoho_sandbox_writes_money_as_a_double_and_times_without_fraction():
    body = json.loads(zoho_json({"Grand_Total": Decimal("110.00"), "Modified_Time": DOCUMENT["when"]}).get_data())
    assert body == {"Grand_Total": 110.0, "Modified_Time": "2026-12-06T09:30:15+00:00"}


def test_the_control_pages_write_money_as_a_string():
    assert json.loads(control_json({"amount": Decimal("110.50")}).get_data()) == {"amount": "110.50"}
