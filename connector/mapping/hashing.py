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
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connector.json_codec import Verbatim, dumps_with_verbatim

__all__ = ["canonical_json", "content_hash", "content_hashes_with"]


def content_hash(payload: Mapping[str, Any]) -> str:
    """Hex sha256 of ``canonical_json(payload)``."""
    return _sha256(canonical_json(payload))


def content_hashes_with(header: Mapping[str, Any], key: str, part: Any) -> tuple[str, str]:
    """``(content_hash({**header, key: part}), content_hash({key: part}))``, encoding ``part`` once.

    The pipeline hashes an invoice whole and its lines alone; the lines are most of the text."""
    try:
        part_text = canonical_json(part)
    except (TypeError, ValueError):
        # Unencodable: raise exactly what hashing the whole record raises (its first bad value).
        return content_hash({**header, key: part}), content_hash({key: part})
    try:
        whole = _encoded_by_c({**header, key: Verbatim(part_text)})
    except _NotPlain:
        whole = _written_in_python({**header, key: part})
    return _sha256(whole), _sha256(f"{{{json.dumps(key, ensure_ascii=False)}:{part_text}}}")


def canonical_json(value: Any) -> str:
    """The canonical JSON text described in the module docstring. Raises TypeError/ValueError for
    values JSON cannot carry faithfully (non-str keys, NaN, infinity, unknown types)."""
    try:
        return _encoded_by_c(value)
    except _NotPlain:
        return _written_in_python(value)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _NotPlain(Exception):
    """A value the C encoder path does not take: left to the Python writer (which may refuse it)."""


# Values the C encoder writes exactly as the Python writer does (int: its digits; bool: true/false),
# or hands to the default hook (Decimal, datetime, date). Exact types: subclasses may encode otherwise.
_SCALARS = frozenset({str, int, bool, type(None), Decimal, datetime, date, Verbatim})
_CONTAINERS = frozenset({dict, list, tuple})
_ALLOWED = _SCALARS | _CONTAINERS
_STR = frozenset({str})


def _encoded_by_c(value: Any) -> str:
    """The same text as ``_written_in_python``, written by json's C encoder (sorted keys, ensure_ascii
    off). Numbers other than int go through the default hook as slots, swapped for their canonical text
    afterwards: the C encoder would write floats as repr and cannot write Decimals. This runs for every
    mapped record."""
    kind = type(value)
    if kind in _CONTAINERS:
        _check_plain(value)
    elif kind not in _SCALARS:
        raise _NotPlain

    def verbatim(item: Any) -> Any:
        kind = type(item)
        if kind is Decimal:
            return Verbatim(_number(item))
        if kind is Verbatim:
            return item  # the canonical text of a part (content_hashes_with)
        return item.isoformat()  # datetime or date: _check_plain let nothing else through

    # No circular check: _check_plain has walked the value already (a cycle never ends that walk).
    text = dumps_with_verbatim(value, verbatim, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                               check_circular=False)
    if text is None:
        raise _NotPlain
    return text


def _check_plain(value: dict | list | tuple) -> None:
    """Raise _NotPlain unless every value inside is of an exact type in _ALLOWED and every key a str.

    Floats are left to the Python writer (rare in mapped records); so are non-str keys, which the C
    encoder would write as strings where the Python writer refuses them."""
    if type(value) is dict:
        if not _STR.issuperset(map(type, value)):
            raise _NotPlain
        value = value.values()
    kinds = set(map(type, value))
    if kinds <= _SCALARS:
        return
    if not kinds <= _ALLOWED:
        raise _NotPlain
    for item in value:
        if type(item) in _CONTAINERS:
            _check_plain(item)


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
    # distinct long values collide. str() writes the same digits for less unless it uses an exponent
    # (E, or e under the context's capitals=0); a subclass keeps its own __format__.
    text = str(number) if type(number) is Decimal else "e"
    if "E" in text or "e" in text:
        text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
