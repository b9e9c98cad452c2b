"""Xero webhook signatures (https://developer.xero.com/documentation/webhooks/configuring-your-server).

``x-xero-signature`` is Base64(HMAC-SHA256(key=signing key as UTF-8, msg=raw body bytes)).
Xero's bodies are not canonical JSON, so the HMAC must run over the exact bytes received,
never over re-serialised JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def xero_signature(body: bytes, key: str) -> str:
    """The signature Xero would send for ``body`` signed with ``key``."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_xero_signature(body: bytes, header: str | None, key: str) -> bool:
    """True only if ``header`` is the signature of ``body``; compared in constant time."""
    if not header:
        return False
    expected = xero_signature(body, key).encode("ascii")
    # Bytes on both sides: compare_digest refuses non-ASCII str, and a header may carry any byte.
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))
