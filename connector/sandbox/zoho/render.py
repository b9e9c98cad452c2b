"""What the Zoho sandbox writes: Zoho's time format, money rounding, JSON bodies and error items.

Zoho writes currency as a JSON double (``110.0``) and times as ISO 8601 with offset and no fraction;
request-level errors are a top-level API_Exception and per-record errors an item of the answer's list
(Zoho v8 OAS common.json, https://github.com/zoho/crm-oas).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from werkzeug.wrappers import Response

from connector.json_codec import dumps_lenient

CENT = Decimal("0.01")
JSON_TYPE = "application/json;charset=UTF-8"  # what Zoho serves; the SDK parses by content type


def _stamp(moment: datetime) -> str:
    """Zoho's time format: ISO 8601 with offset and no fraction."""
    return moment.replace(microsecond=0).isoformat()


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _decimal(value) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _plain(value):
    """Internal values to JSON: Decimal as a number (Zoho sends 110.0), datetimes in Zoho's format."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return _plain_scalar(value) if isinstance(value, (Decimal, datetime)) else value


def _plain_scalar(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return _stamp(value)
    return str(value)


def _json(payload, status: int = 200) -> Response:
    # The encoder walks the payload and calls back only for the values JSON has no type for.
    return Response(dumps_lenient(payload, default=_plain_scalar), status=status, content_type=JSON_TYPE)


def _error(status: int, code: str, message: str, details: dict | None = None) -> Response:
    """Request-level errors are a top-level API_Exception (common.json)."""
    return _json({"code": code, "details": details or {}, "message": message, "status": "error"}, status)


def _item_error(code: str, message: str, api_name: str, json_path: str, **extra) -> dict:
    return {"code": code, "details": {"api_name": api_name, "json_path": json_path, **extra},
            "message": message, "status": "error"}


def _same(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()  # unique: {"casesensitive": "false"}
    return a == b


class _Rejected(Exception):
    """One record failed validation; ``error`` is the Zoho per-record error item."""

    def __init__(self, error: dict) -> None:
        super().__init__(error["code"])
        self.error = error
