"""What the request pipeline (``connector.http``) does differently for Zoho: its auth header and how
its answers map to typed errors.

Zoho's pages: https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html (API errors),
https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html (429),
https://www.zoho.com/accounts/protocol/oauth/token-limits.html (token endpoint throttling).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from connector.errors import ApiError, ConnectorError, NeedsReauth, RateLimited, Unauthorized
from connector.http import VendorHooks, body_excerpt, json_body
from connector.json_codec import loads_from_api

# Zoho sends no Retry-After on 429 (limits page above); concurrency clears in seconds, credits are the task's
# problem. The default wait; ZOHO_RATE_LIMIT_WAIT (Settings.zoho_rate_limit_wait) sets it.
RATE_LIMIT_RETRY_AFTER = 30.0
# "Access Denied" = more than 10 token requests in 10 minutes (token limits page above); a minute lets the window move.
THROTTLE_RETRY_AFTER = 60.0
_NO_CONTENT = (204, 304)


def describe_zoho_error(code: Any, message: Any, details: Any) -> str:
    """Zoho's error as an operator reads it: its code, its message and the field or parameter at fault
    (``details.api_name`` / ``param_name``; status-codes page above)."""
    text = " ".join(str(part) for part in (code, message) if part) or "no error code"
    if isinstance(details, dict):
        field = details.get("api_name") or details.get("param_name") or details.get("json_path")
        if field:
            return f"{text} (field {field})"
    return text


def error_of(body: Any) -> str | None:
    """A request-level error body ({"code": ...}), or the first error of a per-item list ({"data": [...]})."""
    if not isinstance(body, dict):
        return None
    if body.get("code"):
        return describe_zoho_error(body.get("code"), body.get("message"), body.get("details"))
    for items in body.values():
        if isinstance(items, list):
            errors = [i for i in items if isinstance(i, dict) and i.get("status") == "error"]
            if errors:
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                first = errors[0]
                return describe_zoho_error(first.get("code"), first.get("message"), first.get("details")) + more
    return None


def zoho_body(response: requests.Response) -> Any:
    """The JSON body, or None for 204/304 and anything not JSON."""
    if response.status_code in _NO_CONTENT:
        return None
    return json_body(response)


def _code(body: Any) -> str:
    return str(body.get("code", "")) if isinstance(body, dict) else ""


class ZohoApiHooks(VendorHooks):
    """CRM v8: request-level errors arrive as ``{"code": ..., "message": ...}`` bodies."""

    vendor = "zoho"
    status_errors = {401: Unauthorized}

    def __init__(self, tokens: Any = None, *, rate_limit_wait: float = RATE_LIMIT_RETRY_AFTER) -> None:
        self._tokens = tokens  # with a token source, targets are paths under its data centre's API
        self._rate_limit_wait = rate_limit_wait

    def url(self, target: str) -> str:
        if self._tokens is None:
            return target
        return self._tokens.api_domain() + "/crm/v8" + target

    def prepare_headers(self, headers: dict[str, str], token: str | None, scoped: bool) -> None:
        if token is not None:
            headers["Authorization"] = f"Zoho-oauthtoken {token}"

    def token_refused(self, response: requests.Response) -> bool:
        # Only INVALID_TOKEN means "expired": OAUTH_SCOPE_MISMATCH and friends need a new consent.
        return response.status_code == 401 and _code(zoho_body(response)) == "INVALID_TOKEN"

    def parse(self, response: requests.Response) -> Any:
        return zoho_body(response)

    def describe(self, response: requests.Response, body: Any) -> str:
        text = error_of(body) or body_excerpt(response) or "(no body)"
        path = urlsplit(response.request.url or "").path
        return f"Zoho {response.request.method} {path}: {response.status_code} {text}"

    def specific_error(self, response: requests.Response, body: Any, message: str,
                       secrets: tuple[str, ...]) -> ConnectorError | None:
        if response.status_code == 401 and _code(body) != "INVALID_TOKEN":
            # OAUTH_SCOPE_MISMATCH, AUTHENTICATION_FAILURE: a new consent is needed
            return NeedsReauth(message, system="zoho")
        return None

    def retry_after(self, response: requests.Response, body: Any) -> float:
        return self._rate_limit_wait

    def rate_problem(self, response: requests.Response, body: Any) -> str | None:
        return _code(body) or None


class ZohoTokenHooks(VendorHooks):
    """Zoho's accounts server: errors arrive as HTTP 200 with ``{"error": ...}``, so the body decides,
    not the status (except a 5xx, whose page is not Zoho's JSON)."""

    vendor = "zoho"

    def __init__(self, connection_id: int, token_url: str) -> None:
        self._where = f"Zoho token request for connection {connection_id}"
        self._accounts_server = token_url.rsplit("/oauth", 1)[0]

    def describe_transport(self, method: str, url: str) -> str:
        return "Zoho token request"

    def parse(self, response: requests.Response) -> Any:
        try:
            return loads_from_api(response.content)  # whatever the Content-Type says
        except ValueError:
            return None

    def accepts(self, response: requests.Response, body: Any) -> bool:
        return (response.status_code == 200 and isinstance(body, dict) and not body.get("error")
                and bool(body.get("access_token")))

    def describe(self, response: requests.Response, body: Any) -> str:
        error = body.get("error") if isinstance(body, dict) and response.status_code < 500 else None
        return f"{self._where}: {response.status_code} {error or body_excerpt(response)}"

    def specific_error(self, response: requests.Response, body: Any, message: str,
                       secrets: tuple[str, ...]) -> ConnectorError | None:
        if response.status_code >= 500:
            return None  # the ladder's TransientError
        error = body.get("error") if isinstance(body, dict) else None
        if error == "invalid_code":  # revoked or evicted refresh token, or a used/expired grant code
            return NeedsReauth(f"{self._where}: invalid_code (refresh token revoked or replaced); reconnect",
                               system="zoho")
        if error == "invalid_client":
            return NeedsReauth(
                f"{self._where}: invalid_client; check ZOHO_CLIENT_ID/SECRET and that the accounts server "
                f"({self._accounts_server}) is the account's data centre (ZOHO_DC)", system="zoho"
            )
        if error == "Access Denied":
            return RateLimited(f"{self._where}: throttled (too many token requests)",
                               retry_after=THROTTLE_RETRY_AFTER)
        return ApiError(message, status=response.status_code)  # the status says nothing more here
