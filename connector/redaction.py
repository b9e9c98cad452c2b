"""Keeping secrets out of what we write down, for the two shapes it takes.

- ``redact_text``: a message (an exception's text, a log line, a vendor's error body) with the given
  secret values and anything that looks like a token field or an Authorization header hidden;
- ``redact_document``: a copy of a JSON-like document (the audit trail's detail) with secret-looking keys,
  ``Secret`` values and whole credential strings replaced.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

from connector.secret import Secret

REDACTED = "***"

_SECRET_FIELDS = re.compile(
    r"""(?P<key>["']?(?<![\w-])(?:access_token|refresh_token|client_secret|id_token)["']?\s*[:=]\s*["']?)"""
    r"""(?P<value>[^"'&\s,}]+)""",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(r"(?i)\b(Bearer|Basic|Zoho-oauthtoken)\s+[A-Za-z0-9._~+/=-]+")


def redact_text(text: str, *secrets: str) -> str:
    """Hide the given secret values (raw and URL-encoded) and anything that looks like a token field."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED).replace(quote_plus(secret), REDACTED)
    text = _SECRET_FIELDS.sub(lambda m: m["key"] + REDACTED, text)
    return _AUTH_HEADER.sub(lambda m: f"{m[1]} {REDACTED}", text)


_SECRET_KEY_PARTS = ("token", "secret", "password", "passwd", "authorization", "refresh", "api_key", "apikey")
# "code" alone is an OAuth authorization code; CurrencyCode, TaxCode and friends are data we want.
_SECRET_KEYS = {"code", "auth_code", "authcode", "grant_code"}
# An Authorization header value: scheme plus one opaque word ("Bearer Creek Farm Ltd" is a name).
_CREDENTIAL_VALUE = re.compile(r"^\s*(bearer|basic|zoho-oauthtoken)\s+\S+\s*$", re.IGNORECASE)


# Values of these exact types are returned as they are (a subclass takes the checks below).
_PLAIN_TYPES = frozenset({int, float, bool, type(None), Decimal})


def redact_document(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and credential-looking strings replaced by "***"."""
    if isinstance(value, dict):
        return {key: REDACTED if _looks_secret(key if type(key) is str else str(key))
                else item if type(item) in _PLAIN_TYPES else redact_document(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact_document(item) for item in value]
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, str) and _CREDENTIAL_VALUE.match(value):
        return REDACTED
    return value


# Every audit row's detail is redacted, and its keys are few and recur ("zoho_id", "reason", ...): each
# key's verdict is worked out once (a bounded cache: keys come from code and vendors' field names).
_KEY_VERDICTS: dict[str, bool] = {}
_KEY_VERDICTS_MAX = 4096


def _looks_secret(key: str) -> bool:
    verdict = _KEY_VERDICTS.get(key)
    if verdict is None:
        lowered = key.lower()
        verdict = lowered in _SECRET_KEYS or any(part in lowered for part in _SECRET_KEY_PARTS)
        if len(_KEY_VERDICTS) < _KEY_VERDICTS_MAX:
            _KEY_VERDICTS[key] = verdict
    return verdict
