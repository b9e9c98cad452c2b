"""The one JSON codec: every document with Decimals we store, send, hash or serve is written here.

- ``dumps_for_storage`` / ``loads_from_storage``: database JSON columns (Decimal as a string, compact,
  ASCII-escaped, NUL replaced);
- ``dumps_for_api`` / ``loads_from_api``: Xero and Zoho request and response bodies (Decimal as a bare
  JSON number, read back as Decimal: money never passes through float);
- ``dumps_with_verbatim``: the C encoder with chosen values written as given text, which the content
  hash (connector/mapping/hashing.py) and the Xero sandbox's money (connector/sandbox/xero/formats.py) build on;
- ``dumps_lenient``: what people and simulators read (log lines, the sandbox control pages, the Zoho
  sandbox's bodies): ``json.dumps`` with a ``default`` for what JSON has no type for (``str`` unless given).

orjson is several times faster than ``json.dumps``, but it differs in ways that matter where a
document is stored, hashed or sent: it writes NaN and infinities as ``null`` (json.dumps writes ``NaN``
or refuses them), formats some floats differently (``1e-05`` against ``0.00001``), writes enums and
dataclasses that json.dumps refuses, and writes UTF-8 where json.dumps escapes (``ensure_ascii``).
So orjson is only handed documents made of types it writes the same way (``orjson_writable``), and its
output is escaped as json.dumps escapes (``escaped_as_stdlib``); anything else takes the old path.
Each writer's output is fixed byte for byte: stored documents and content hashes depend on it.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from itertools import chain
from typing import Any, Callable
from uuid import UUID

import orjson

from connector.secret import Secret

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


def _storage_default(value: Any) -> Any:
    # Money arrives as Decimal; a string keeps every digit (a float would not).
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Secret):
        return "***"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# PostgreSQL text and JSONB cannot hold U+0000 (JSONB refuses even the \u0000 escape), and Xero
# data may carry it: every JSON document is written with it replaced by U+FFFD, the Unicode
# replacement character, on every database, so the same record reads back the same everywhere.
NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(NUL, NUL_REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(v) for v in value]
    return value


_STORAGE_ENCODER = json.JSONEncoder(default=_storage_default, separators=(",", ":"))
# Documents orjson writes as json.dumps does, with _storage_orjson_default converting Decimal and Secret as
# _storage_default does (orjson writes dates, UUIDs and naive or UTC datetimes as _storage_default does).
_storage_writable = orjson_writable(frozenset({str, int, bool, type(None), Decimal, date, UUID, Secret}),
                                   naive_or_utc_datetimes=True)


def _storage_orjson_default(value: Any) -> Any:
    if type(value) is Decimal:
        return str(value)
    if type(value) is Secret:
        return "***"
    raise TypeError(f"{type(value).__name__} is left to json.dumps")


def dumps_for_storage(value: Any) -> str:
    """``value`` as compact JSON, exactly as ``json.dumps(value, default=_storage_default, separators=(",", ":"))``
    writes it (NUL aside, see ``without_nul``). orjson writes it when it can write the same text (two to four
    times faster); a float, enum, subclass, big integer or lone surrogate leaves it to json.dumps."""
    if _storage_writable(value):
        try:
            text = escaped_as_stdlib(orjson.dumps(value, default=_storage_orjson_default, option=ORJSON_OPTIONS))
        except orjson.JSONEncodeError:
            text = _STORAGE_ENCODER.encode(value)
    else:
        text = _STORAGE_ENCODER.encode(value)
    # json.dumps writes NUL as the escape \u0000: only a document that shows one is walked and written
    # again (an escaped backslash before "u0000" also matches; that costs the walk, nothing else).
    if "\\u0000" in text:
        text = _STORAGE_ENCODER.encode(without_nul(value))
    return text


# orjson reads integers beyond 64 bits as floats, where json.loads keeps them exact: a document with a
# run of 19 digits anywhere (inside a string too; that only costs the slower read) goes to json.loads.
# Found by turning every digit into 0 and looking for 19 of them: several times faster than a regex.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def loads_from_storage(document: bytes | str) -> Any:
    """``json.loads(document)``, as psycopg calls it for json and jsonb columns (with bytes). orjson reads
    it (up to three times faster) when it reads the same values:
    it refuses what it cannot read as json.loads does (NaN, lone surrogates, 1e400, a BOM, deep nesting),
    and json.loads then reads it, or raises its own error."""
    if type(document) is bytes and _NINETEEN_DIGITS not in document.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(document)
        except orjson.JSONDecodeError:
            pass
    return json.loads(document)


def loads_from_api(data: bytes | str) -> Any:
    """Parse a JSON body with every non-integer number as Decimal (money must not pass through float)."""
    return json.loads(data, parse_float=Decimal)


# Documents orjson writes as _dumps_for_api_stdlib does, with _api_orjson_number writing finite Decimals
# (orjson writes dates as "YYYY-MM-DD" too; datetimes are refused there, so here).
_api_writable = orjson_writable(frozenset({str, int, bool, type(None), Decimal, date}))


def _api_orjson_number(value: Any) -> Any:
    if type(value) is Decimal and value.is_finite():
        return orjson.Fragment(str(value))
    # NaN or infinite Decimal: _dumps_for_api_stdlib raises the error the callers expect.
    raise TypeError(f"{type(value).__name__} {value} is left to _dumps_for_api_stdlib")


def dumps_for_api(value: Any) -> str:
    """Serialise to JSON writing Decimal as a plain JSON number via str() (no quotes, no float noise).

    orjson writes the body when it can write the same text (about six times faster than the recursive
    writer); a float, enum, subclass, non-str key, big integer or lone surrogate leaves it to the latter."""
    if _api_writable(value):
        try:
            return escaped_as_stdlib(orjson.dumps(value, default=_api_orjson_number, option=ORJSON_OPTIONS))
        except orjson.JSONEncodeError:
            pass
    return _dumps_for_api_stdlib(value)


def _dumps_for_api_stdlib(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send {value} as a JSON number")
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dumps_for_api_stdlib(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_dumps_for_api_stdlib(v) for v in value) + "]"
    if isinstance(value, date) and not isinstance(value, datetime):
        return f'"{value.isoformat()}"'  # both APIs take YYYY-MM-DD dates; datetimes differ, so format them upstream
    return json.dumps(value, allow_nan=False)


class Verbatim:
    """Text a ``dumps_with_verbatim`` default hook wants written as it is (a number's digits, a
    document already written)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# Where the default hook put a Verbatim: the JSON string of one NUL. The hook runs in output order, so
# the n-th slot is the n-th Verbatim; a string of the document's own that writes the same text (a NUL,
# or a quote before or after one) makes one slot too many, and the caller writes it another way.
_SLOT = "\x00"
_SLOT_TEXT = '"\\u0000"'


def dumps_with_verbatim(value: Any, default: Callable[[Any], Any], **options: Any) -> str | None:
    """``json.dumps(value, default=default, **options)`` (the C encoder), except that what ``default``
    returns as a ``Verbatim`` is written as its text, unquoted. None when a string in ``value`` could be
    taken for a slot: the caller then writes the document its slower, exact way."""
    verbatim: list[str] = []

    def slot(item: Any) -> Any:
        written = default(item)
        if type(written) is Verbatim:
            verbatim.append(written.text)
            return _SLOT
        return written

    text = json.dumps(value, default=slot, **options)
    pieces = text.split(_SLOT_TEXT)
    if len(pieces) != len(verbatim) + 1:
        return None
    if not verbatim:
        return text
    verbatim.append("")
    return "".join(chain.from_iterable(zip(pieces, verbatim)))


# The C half of json's encoder (None without the _json accelerator) and its string encoders.
_C_MAKE_ENCODER = json.encoder.c_make_encoder
_ENCODE_STR = {True: json.encoder.encode_basestring_ascii, False: json.encoder.encode_basestring}
_LENIENT_ENCODERS: dict[tuple[bool, Callable[[Any], Any], int | None], json.JSONEncoder] = {}


def dumps_lenient(value: Any, *, ensure_ascii: bool = True, default: Callable[[Any], Any] = str,
                  indent: int | None = None) -> str:
    """``json.dumps(value, ensure_ascii=ensure_ascii, default=default, indent=indent)``: text people or
    simulators read, where a value JSON has no type for is written as ``default`` makes it (its ``str``
    unless given) rather than refused. A cycle still raises ValueError, as json.dumps does."""
    key = (ensure_ascii, default, indent)
    encoder = _LENIENT_ENCODERS.get(key)
    if encoder is None:
        encoder = _LENIENT_ENCODERS[key] = json.JSONEncoder(ensure_ascii=ensure_ascii, default=default,
                                                            indent=indent)
    # The C encoder writes no indentation (json.JSONEncoder uses it only without one).
    if _C_MAKE_ENCODER is None or type(value) is not dict or indent is not None:
        return encoder.encode(value)
    # What encoder.encode does for a dict, minus its two Python frames and the float closure the C
    # encoder never uses (a log line is one dict): the same C encoder, arguments and fresh markers.
    return "".join(_C_MAKE_ENCODER({}, encoder.default, _ENCODE_STR[encoder.ensure_ascii], encoder.indent,
                                   encoder.key_separator, encoder.item_separator, encoder.sort_keys,
                                   encoder.skipkeys, encoder.allow_nan)(value, 0))
