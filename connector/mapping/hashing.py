"""A content fingerprint for mapped payloads, so the pipeline can skip unchanged writes.

The hash is sha256 over a canonical JSON text: object keys sorted, no whitespace, strings as JSON
with non-ASCII kept as-is (UTF-8), and every number (int, float, Decimal) written as its plain decimal
value with no exponent and no trailing zeros. Decision: numbers hash by VALUE, so Decimal("1.0"),
Decimal("1.00"), 1 and 1.0 hash the same: Zoho stores the value, not our spelling of it, so a
re-spelled amount is not a change worth a write (and an echo of our own write reads back equal).
A number and the string of its digits still differ ("1" vs 1). Booleans are not numbers here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["canonical_json", "content_hash"]


def content_hash(payload: Mapping[str, Any]) -> str:
    """Hex sha256 of ``canonical_json(payload)``."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """The canonical JSON text described in the module docstring. Raises TypeError/ValueError for
    values JSON cannot carry faithfully (non-str keys, NaN, infinity, unknown types)."""
    try:
        return _encoded_by_c(value)
    except _NotPlain:
        return _written_in_python(value)


class _NotPlain(Exception):
    """A value the C encoder path does not take: left to the Python writer (which may refuse it)."""


# A number's placeholder: NUL cannot occur in a plain value's strings (those go the Python way).
_PLACEHOLDER = re.compile(r'"\\u0000(\d+)\\u0000"')


def _encoded_by_c(value: Any) -> str:
    """The same text as ``_written_in_python``, written by json's C encoder (sorted keys, ensure_ascii
    off). Numbers other than int are placeholders, swapped for their canonical text afterwards: the C
    encoder would write floats as repr and cannot write Decimals. This runs for every mapped record."""
    numbers: list[str] = []
    text = json.dumps(_plain(value, numbers), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if numbers:
        text = _PLACEHOLDER.sub(lambda match: numbers[int(match.group(1))], text)
    return text


def _plain(value: Any, numbers: list[str]) -> Any:
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise _NotPlain
        return value
    if kind is dict:
        if not all(type(key) is str and "\x00" not in key for key in value):
            raise _NotPlain
        return {key: _plain(item, numbers) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_plain(item, numbers) for item in value]
    if value is None or kind is bool or kind is int:
        return value  # the C encoder writes these as the Python writer does
    if kind is Decimal or kind is float:
        numbers.append(_number(value))
        return f"\x00{len(numbers) - 1}\x00"
    if kind is datetime or kind is date:
        return value.isoformat()
    raise _NotPlain  # subclasses, other mappings, unencodable values


def _written_in_python(value: Any) -> str:
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, (bool, str)):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (int, float, Decimal)):
        out.append(_number(value))
    elif isinstance(value, Mapping):
        out.append("{")
        keys = list(value.keys())
        if not all(isinstance(key, str) for key in keys):
            raise TypeError("content_hash: object keys must be strings")
        for position, key in enumerate(sorted(keys)):
            if position:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, (datetime, date)):
        out.append(json.dumps(value.isoformat()))
    else:
        raise TypeError(f"content_hash: cannot encode {type(value).__name__}")


def _number(value: int | float | Decimal) -> str:
    # str(float) is the shortest text that round-trips, i.e. the number as it was written.
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"content_hash: {value!r} is not a finite number")
    if number.is_zero():
        return "0"  # also folds -0 into 0
    # Plain digits ("f" never writes an exponent nor rounds), then the fractional part's trailing zeros
    # dropped as text: Decimal.normalize() would round to the context precision (28 digits) and make
    # distinct long values collide.
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
