"""Parsers for the scalar values Xero puts in its JSON: dates, money and plain decimals.

Facts (Xero Accounting API, "Requests and responses" and the official OpenAPI 16.1.0):
- Date fields come as Microsoft JSON dates: ``/Date(1439434356790)/`` or ``/Date(1419937200000+0000)/``:
  Unix epoch milliseconds, optionally followed by a ``+HHMM``/``-HHMM`` offset. The milliseconds are
  already UTC; the offset is informational only, so it is ignored.
- Companion string fields (``DateString``, ``UpdatedDateUTCString``, connection timestamps, webhook
  ``eventDateUtc``) are ISO 8601, with or without ``Z``/offset and with up to 7 fraction digits
  (``2019-12-07T18:46:19.5165400``). A timestamp without an offset is UTC.
- Money is a JSON number with 2 dp, quantities 4 dp, currency rates 6 dp. JSON numbers may reach us as
  float, int, str or Decimal depending on how the body was parsed; ``Decimal(str(x))`` keeps what was
  written (the shortest repr of a float), never the binary expansion.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from connector.errors import DataError

__all__ = ["CENT", "clean_text", "parse_xero_date", "parse_xero_day", "to_decimal", "to_money"]

CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Tolerates the JSON-escaped form (\/Date(...)\/) too, in case a caller hands us undecoded text.
_MS_DATE = re.compile(r"^\\?/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)\\?/$")
_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d+))?)?)?"
    r"\s*(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _describe(field: str | None) -> str:
    return f"{field}: " if field else ""


def _iso_parts(text: str, field: str | None) -> tuple[datetime, bool]:
    """Parse an ISO 8601 string into a datetime; the flag says whether it carried an offset."""
    match = _ISO.match(text)
    if not match:
        raise DataError(f"{_describe(field)}not a Xero date: {text!r}", field=field)
    parts = match.groupdict()
    # Python keeps microseconds; Xero (.NET) writes up to 7 fraction digits, so cut, don't round.
    micro = int((parts["frac"] or "0")[:6].ljust(6, "0"))
    tz_text = parts["tz"]
    tzinfo = timezone.utc
    if tz_text and tz_text not in ("Z", "z"):
        sign = -1 if tz_text[0] == "-" else 1
        digits = tz_text[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or "0")
        if hours > 23 or minutes > 59:
            raise DataError(f"{_describe(field)}bad UTC offset in {text!r}", field=field)
        tzinfo = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        parsed = datetime(
            int(parts["y"]), int(parts["mo"]), int(parts["d"]),
            int(parts["h"] or 0), int(parts["mi"] or 0), int(parts["s"] or 0), micro,
            tzinfo=tzinfo,
        )
    except ValueError as exc:
        raise DataError(f"{_describe(field)}impossible date {text!r}: {exc}", field=field) from None
    return parsed, bool(tz_text)


def _from_epoch_ms(ms_text: str, text: str, field: str | None) -> datetime:
    try:
        return _EPOCH + timedelta(milliseconds=int(ms_text))
    except OverflowError:
        raise DataError(f"{_describe(field)}date out of range: {text!r}", field=field) from None


def _date_text(value: object, field: str | None) -> str | None:
    """The stripped text of a date value from Xero; None when it is empty."""
    if not isinstance(value, str):
        raise DataError(f"{_describe(field)}expected a date string, got {type(value).__name__}", field=field)
    return value.strip() or None


def parse_xero_date(value: object, *, field: str | None = None) -> datetime | None:
    """A Xero timestamp as a UTC-aware datetime; None for a missing or empty value.

    Accepts ``/Date(ms)/``, ``/Date(ms+HHMM)/`` (offset ignored: the ms are UTC), ISO 8601 with or
    without ``Z``/offset/fraction (naive means UTC), and datetime/date objects. Anything else raises
    DataError naming ``field``.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    text = _date_text(value, field)
    if text is None:
        return None
    match = _MS_DATE.match(text)
    if match:
        return _from_epoch_ms(match["ms"], text, field)
    parsed, _ = _iso_parts(text, field)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise DataError(f"{_describe(field)}date out of range: {text!r}", field=field) from None


def parse_xero_day(value: object, *, field: str | None = None) -> date | None:
    """A Xero calendar day (invoice Date, DueDate, ...) as a date; None for a missing or empty value.

    ``/Date(ms)/`` day fields hold midnight UTC of the day, so the UTC date is the day. An ISO string
    keeps the calendar date as written (``2019-03-07T00:00:00+13:00`` is the 7th): a day has no zone.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _date_text(value, field)
    if text is None:
        return None
    match = _MS_DATE.match(text)
    if match:
        return _from_epoch_ms(match["ms"], text, field).date()
    parsed, _ = _iso_parts(text, field)
    return parsed.date()


def to_decimal(value: object, *, field: str | None = None) -> Decimal:
    """The exact decimal Xero wrote (no rounding). Raises DataError for garbage, NaN or infinity."""
    if isinstance(value, bool) or value is None:
        raise DataError(f"{_describe(field)}expected a number, got {value!r}", field=field)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, (int, float, str)):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise DataError(f"{_describe(field)}not a number: {value!r}", field=field) from None
    else:
        raise DataError(f"{_describe(field)}expected a number, got {type(value).__name__}", field=field)
    if not number.is_finite():
        raise DataError(f"{_describe(field)}not a finite number: {value!r}", field=field)
    return number


def to_money(value: object, *, field: str | None = None) -> Decimal:
    """A money amount: exact decimal rounded to 2 dp, half-up (away from zero on a tie)."""
    number = to_decimal(value, field=field)
    try:
        return number.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        # quantize refuses results wider than the context precision: no real amount is that large.
        raise DataError(f"{_describe(field)}amount out of range: {value!r}", field=field) from None


def clean_text(value: object, *, field: str | None = None) -> str | None:
    """A Xero text value stripped of surrounding whitespace; None when absent or blank.

    Xero sends "" for every unused address and phone part; blank means "not set".
    """
    if type(value) is str:
        return value.strip() or None  # most values: what str(value).strip() below makes of them
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{_describe(field)}expected text, got {type(value).__name__}", field=field)
    text = str(value).strip()
    return text or None


def xero_deep_link(path: str, *, base: str = "https://go.xero.com", short_code: str | None = None) -> str:
    """A link that opens ``path`` (e.g. ``/Contacts/View/<ContactID>``) in Xero's web app.

    Xero's "Deep link to Xero" guide builds org-safe links as
    ``https://go.xero.com/organisationlogin/default.aspx?shortcode=<ShortCode>&redirecturl=<path>``,
    where ShortCode comes from GET /Organisation. Without a short code we link ``<base><path>``,
    which opens in whichever org the user last used (UNVERIFIED that Xero switches org for it).
    """
    root = base.rstrip("/")
    if short_code:
        return f"{root}/organisationlogin/default.aspx?shortcode={short_code}&redirecturl={path}"
    return f"{root}{path}"
