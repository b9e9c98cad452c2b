"""Checks on values that come in signed or tokened and still cannot be trusted.

A NUL character cannot be stored in PostgreSQL text or JSONB, and no Xero or Zoho id is anywhere
near 128 characters long (Xero ids are GUIDs, Zoho's are 64-bit numbers); either would only fail
later, after the sender had its 200, so both are refused at the door with a 400.
"""

from __future__ import annotations

from typing import Any

MAX_ID_LENGTH = 128


def contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def may_hold_nul(body: bytes | str) -> bool:
    """False when no string parsed from the JSON ``body`` can contain a NUL: JSON forbids a raw control
    character inside a string (RFC 8259 §7), so a NUL can only come from the escape ``\\u0000``."""
    if isinstance(body, str):
        return "\\u0000" in body or "\x00" in body
    return b"\\u0000" in body or b"\x00" in body


def value_problem(value: Any, where: str, *, is_id: bool = False) -> str | None:
    """What is wrong with ``value`` (named ``where`` in the message), or None."""
    if contains_nul(value):
        return f"{where} contains a NUL character"
    if is_id and len(str(value)) > MAX_ID_LENGTH:
        return f"{where} is longer than {MAX_ID_LENGTH} characters"
    return None
