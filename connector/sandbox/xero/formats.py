"""Xero's wire formats: money, /Date()/ stamps and other date strings, the JSON text, and the
canned responses (problem details, validation errors, the gateway's plain-text 404).

Pure: values in, text or werkzeug responses out. Pages:
https://developer.xero.com/documentation/api/requests-and-responses (dates, envelope) and
https://developer.xero.com/documentation/api/http-response-codes (errors).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import date, datetime, time, timezone
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime

from werkzeug.wrappers import Response

from connector.json_codec import Verbatim, dumps_with_verbatim

API_PREFIX = "/api.xro/2.0"
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
RATE_1 = Decimal("1.000000")


class ApiResponse(Exception):
    """Raised inside handlers to answer early with a finished response."""

    def __init__(self, response: Response) -> None:
        self.response = response


# ---------------------------------------------------------------------------------------------
# money


def cents(value) -> Decimal:
    return to_decimal(value).quantize(CENT, ROUND_HALF_UP)


def to_decimal(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


# ---------------------------------------------------------------------------------------------
# JSON text

_DATE_VALUE = re.compile(r'(?<!\\)"(/Date\((?:[^"\\]|\\.)*)"(?!:)')  # a string value that starts /Date(


def _money(obj) -> Verbatim:
    if not isinstance(obj, Decimal):
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
    return Verbatim(format(obj, "f"))


def to_json(value) -> str:
    """JSON the way Xero writes it: money keeps its decimals (40.00) and /Date()/ slashes are escaped.

    The codec's C-encoder path (``dumps_with_verbatim``) writes the document with each Decimal's digits
    as they are. Whenever that could differ from ``_to_json_exact`` (a string in the data taken for a
    Decimal's place; non-ASCII text, which that escapes in keys only) the exact writer writes it instead.
    """
    text = dumps_with_verbatim(value, _money, separators=(",", ":"), ensure_ascii=False)
    if text is None or not text.isascii():
        return _to_json_exact(value)
    return _DATE_VALUE.sub(lambda m: '"' + m.group(1).replace("/", "\\/") + '"', text)


def _to_json_exact(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_to_json_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_to_json_exact(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str) and value.startswith("/Date("):
        return json.dumps(value).replace("/", "\\/")
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# dates


def ms_date(moment: datetime | date, *, with_offset: bool = True) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), timezone.utc)
    ms = math.floor(moment.timestamp() * 1000)
    return f"/Date({ms}+0000)/" if with_offset else f"/Date({ms})/"


def utc_string(moment: datetime) -> str:  # UpdatedDateUTCString, e.g. 2019-03-05T18:59:06Z
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def day_string(day: date) -> str:  # DateString, e.g. 2019-03-05T00:00:00
    return f"{day.isoformat()}T00:00:00"


def connection_time(moment: datetime) -> str:
    """/connections stamps: 2019-12-07T18:46:19.5165400, no Z
    (https://developer.xero.com/documentation/guides/oauth2/auth-flow)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def from_ms_date(text: str) -> datetime | None:
    match = _MS_DATE.match(text)
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=timezone.utc) if match else None


def parse_body_date(value) -> date:
    """Request bodies carry ``YYYY-MM-DD``, ISO date-times or ``/Date(ms[+0000])/``."""
    text = str(value).strip()
    moment = from_ms_date(text)
    if moment is not None:
        return moment.date()
    return datetime.fromisoformat(text).date()


def parse_if_modified_since(value: str) -> datetime:
    """ISO-8601 with or without fraction/offset (naive means UTC), or an RFC-1123 HTTP date."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        moment = parsedate_to_datetime(value)  # raises ValueError/TypeError when neither
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------
# responses


def json_ok(payload: dict, status: int = 200) -> Response:
    return Response(to_json(payload).encode("utf-8"), status=status, content_type="application/json; charset=utf-8")


def json_error(payload: dict, status: int = 400) -> Response:
    return json_ok(payload, status)


def problem(status: int, title: str, detail: str) -> Response:
    """The problem-details body Xero uses for 401 and 403."""
    return json_ok({"Type": None, "Title": title, "Status": status, "Detail": detail,
                    "Instance": str(uuid.uuid4()), "Extensions": {}}, status)


def validation_error(elements: list[dict], message: str = "A validation exception occurred") -> Response:
    return json_error({"ErrorNumber": 10, "Type": "ValidationException", "Message": message, "Elements": elements})


def with_errors(element: dict, errors: list[str]) -> dict:
    return {**element, "HasValidationErrors": True, "ValidationErrors": [{"Message": m} for m in errors]}


def plain_text(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/plain; charset=utf-8")


def not_found() -> Response:
    return plain_text(NOT_FOUND_TEXT, 404)
