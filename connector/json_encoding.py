"""What lets orjson write JSON byte for byte as the standard library's ``json.dumps`` does.

orjson is several times faster, but it differs from ``json.dumps`` in ways that matter where a
document is stored, hashed or sent: it writes NaN and infinities as ``null`` (json.dumps writes ``NaN``
or refuses them), formats some floats differently (``1e-05`` against ``0.00001``), writes enums and
dataclasses that json.dumps refuses, and writes UTF-8 where json.dumps escapes (``ensure_ascii``).
So orjson is only handed documents made of types it writes the same way (``orjson_writable``), and its
output is escaped as json.dumps escapes (``escaped_as_stdlib``); anything else takes the old path.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

_CONTAINERS = (dict, list, tuple)
# Subclasses and dataclasses reach the caller's ``default``, which refuses them: orjson would write them
# as their base type or as a dict, where json.dumps refuses them.
ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS


def orjson_writable(leaf_types: frozenset[type], *, naive_or_utc_datetimes: bool = False) -> Callable[[Any], bool]:
    """A test that a document is dicts, lists and tuples (exactly those types) of ``leaf_types`` (exact
    types too: a subclass, a float or an enum fails it), and, if ``naive_or_utc_datetimes``, of datetimes
    without tzinfo or in ``timezone.utc``, which orjson writes as ``isoformat()`` does (about eight times
    faster); other offsets it rounds to the minute. Dict keys are not looked at: orjson refuses any key
    that is not exactly a str, which sends the document down the old path too. A document that nests
    itself fails, so the old path raises what it raised."""

    def leaf(value: Any) -> bool:
        value_type = type(value)
        if value_type in leaf_types:
            return True
        if value_type is datetime:
            return naive_or_utc_datetimes and (value.tzinfo is None or value.tzinfo is timezone.utc)
        return value_type in _CONTAINERS and made_of(value)

    def made_of(value: Any) -> bool:
        value_type = type(value)
        if value_type is dict:
            children = value.values()
        elif value_type is list or value_type is tuple:
            children = value
        else:
            return leaf(value)
        for child in children:
            # The common cases inline: a call per string or number would double the cost.
            child_type = type(child)
            if child_type in leaf_types:
                continue
            if child_type is dict or child_type is list:
                if not made_of(child):
                    return False
            elif not leaf(child):
                return False
        return True

    def writable(value: Any) -> bool:
        try:
            return made_of(value)
        except RecursionError:
            return False

    return writable


# json.dumps (ensure_ascii) escapes every character outside space..tilde; orjson already escapes the
# controls, quote and backslash the same way, which leaves DEL and everything beyond ASCII.
_NOT_ESCAPED_BY_ORJSON = re.compile(r"[^\x00-\x7e]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as json.dumps writes it
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def escaped_as_stdlib(document: bytes) -> str:
    """orjson's UTF-8 output with characters escaped exactly as ``json.dumps(..., ensure_ascii=True)``.
    Such characters only occur inside strings, so the whole document can be scanned at once."""
    if document.isascii():
        text = document.decode("ascii")
        return _NOT_ESCAPED_BY_ORJSON.sub(_escape, text) if "\x7f" in text else text
    return _NOT_ESCAPED_BY_ORJSON.sub(_escape, document.decode("utf-8"))
