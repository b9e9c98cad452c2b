"""What lets orjson write JSON byte for byte as the standard library's ``json.dumps`` does.

orjson is several times faster, but it differs from ``json.dumps`` in ways that matter where a
document is stored, hashed or sent: it writes NaN and infinities as ``null`` (json.dumps writes ``NaN``
or refuses them), formats some floats differently (``1e-05`` against ``0.00001``), writes enums and
dataclasses that json.dumps refuses, and writes UTF-8 where json.dumps escapes (``ensure_ascii``).
So orjson is only handed documents made of types it writes the same way (``made_of``), and its
output is escaped as json.dumps escapes (``escaped_as_stdlib``); anything else takes the old path.
"""

from __future__ import annotations

import re
from typing import Any

_CONTAINERS = (dict, list, tuple)


def made_of(value: Any, leaf_types: frozenset[type]) -> bool:
    """True if ``value`` is dicts, lists and tuples (exactly those types) of ``leaf_types`` (exact types too:
    a subclass, a float or an enum makes it False). Dict keys are not looked at: orjson refuses any key
    that is not exactly a str, which sends the document down the old path too. A document that nests
    itself is False, so the old path raises what it raised."""
    try:
        return _made_of(value, leaf_types)
    except RecursionError:
        return False


def _made_of(value: Any, leaf_types: frozenset[type]) -> bool:
    value_type = type(value)
    if value_type is dict:
        children = value.values()
    elif value_type is list or value_type is tuple:
        children = value
    else:
        return value_type in leaf_types
    for child in children:
        child_type = type(child)
        if child_type in leaf_types:
            continue
        if child_type not in _CONTAINERS or not _made_of(child, leaf_types):
            return False
    return True


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
