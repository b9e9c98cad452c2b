"""What the request pipeline (``connector.http``) does differently for Xero: its headers, its rate
governor, and how its answers map to typed errors.

Xero's pages: https://developer.xero.com/documentation/api/http-response-codes (errors),
https://developer.xero.com/documentation/guides/oauth2/limits/ (429, Retry-After, X-Rate-Limit-Problem),
https://developer.xero.com/documentation/guides/oauth2/auth-flow (token endpoint errors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

import requests

from connector.errors import (
    ConnectorError,
    NeedsReauth,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationRefused,
)
from connector.http import VendorHooks, body_excerpt
from connector.ratelimit import Denial, Limits
from connector.redaction import redact_text

if TYPE_CHECKING:
    from connector.ratelimit import XeroRateGovernor

# Xero promises Retry-After only for minute/day 429s (limits page above); a concurrency 429 clears fast.
DEFAULT_RETRY_AFTER = {"concurrent": 1.0}
FALLBACK_RETRY_AFTER = 60.0
TOKEN_RETRY_AFTER = 60.0  # the token endpoint's 429 says nothing more


def retry_after_seconds(headers: Mapping[str, str]) -> float:
    try:
        return max(float(headers["Retry-After"]), 0.0)
    except (KeyError, ValueError):
        problem = (headers.get("X-Rate-Limit-Problem") or "").lower()
        return DEFAULT_RETRY_AFTER.get(problem, FALLBACK_RETRY_AFTER)


class XeroApiHooks(VendorHooks):
    """The Accounting API for one tenant; every scoped call goes through the shared rate governor."""

    vendor = "xero"
    status_errors = {401: Unauthorized, 404: NotFound}

    def __init__(self, tenant_id: str, *, governor: "XeroRateGovernor | None" = None, limits: Limits = Limits(),
                 priority: int = 0, dry_run: bool = False) -> None:
        self.tenant_id = tenant_id
        self._governor = governor
        self._limits = limits
        self._priority = priority
        self._dry_run = dry_run  # its calls are counted apart by the governor (a backfill's --dry-run)

    def prepare_headers(self, headers: dict[str, str], token: str | None, scoped: bool) -> None:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers["Accept"] = "application/json"
        if scoped:
            headers["xero-tenant-id"] = self.tenant_id

    def admit(self, scoped: bool) -> Any:
        if not scoped or self._governor is None:
            return None
        outcome = self._governor.try_acquire(self.tenant_id, self._limits, priority=self._priority,
                                             dry_run=self._dry_run)
        if isinstance(outcome, Denial):
            raise RateLimited(
                f"Xero rate governor: {outcome.reason} limit for tenant {self.tenant_id}",
                retry_after=outcome.retry_after,
                problem=outcome.reason,
            )
        return outcome

    def settle(self, permit: Any, response: requests.Response | None) -> None:
        if self._governor is None:
            return
        if permit is not None:
            self._governor.release(permit, response.headers if response is not None else None)  # X-*Limit-Remaining
        if response is not None and response.status_code == 429:
            self._governor.observe_429(self.tenant_id, retry_after=retry_after_seconds(response.headers),
                                       problem=response.headers.get("X-Rate-Limit-Problem"))

    def describe(self, response: requests.Response, body: Any) -> str:
        detail = _detail(body) if isinstance(body, dict) else body_excerpt(response)
        correlation = response.headers.get("Xero-Correlation-Id")
        return (f"{_where(response)}: {response.status_code} {detail}"
                + (f" (correlation {correlation})" if correlation else ""))

    def specific_error(self, response: requests.Response, body: Any, message: str,
                       secrets: tuple[str, ...]) -> ConnectorError | None:
        status = response.status_code
        if status == 400 and isinstance(body, dict) and body.get("Type") == "ValidationException":
            messages = [redact_text(m, *secrets) for m in _validation_messages(body)]
            detail = messages[0] if messages else _detail(body)
            return ValidationRefused(redact_text(f"{_where(response)}: {detail}", *secrets), messages=messages)
        detail = _detail(body) if isinstance(body, dict) else body_excerpt(response)
        if status == 403 and "AuthenticationUnsuccessful" in detail:
            tenant = f"tenant {self.tenant_id}" if self.tenant_id else "the tenant"
            return NeedsReauth(
                f"{_where(response)}: 403 AuthenticationUnsuccessful: {tenant} is no longer connected to this app; "
                "reconnect it",
                system="xero",
            )
        return None

    def retry_after(self, response: requests.Response, body: Any) -> float:
        return retry_after_seconds(response.headers)

    def rate_problem(self, response: requests.Response, body: Any) -> str | None:
        return response.headers.get("X-Rate-Limit-Problem")


class XeroTokenHooks(VendorHooks):
    """Xero's token endpoint: OAuth error codes in a JSON body; the status says the rest."""

    vendor = "xero"

    def __init__(self, connection_id: int) -> None:
        self._where = f"Xero token request for connection {connection_id}"

    def prepare_headers(self, headers: dict[str, str], token: str | None, scoped: bool) -> None:
        headers["Accept"] = "application/json"

    def describe_transport(self, method: str, url: str) -> str:
        return "Xero token request"

    def accepts(self, response: requests.Response, body: Any) -> bool:
        return response.status_code == 200 and isinstance(body, dict) and bool(body.get("access_token"))

    def describe(self, response: requests.Response, body: Any) -> str:
        error = body.get("error") if isinstance(body, dict) else None
        return f"{self._where}: {response.status_code} {error or body_excerpt(response)}"

    def specific_error(self, response: requests.Response, body: Any, message: str,
                       secrets: tuple[str, ...]) -> ConnectorError | None:
        error = body.get("error") if isinstance(body, dict) else None
        if error == "invalid_grant":
            return NeedsReauth(f"{self._where}: invalid_grant (refresh token expired, revoked or already rotated); "
                               "reconnect", system="xero")
        if error in {"invalid_client", "unauthorized_client"}:
            return NeedsReauth(f"{self._where}: {error}; check XERO_CLIENT_ID and XERO_CLIENT_SECRET", system="xero")
        return None

    def retry_after(self, response: requests.Response, body: Any) -> float:
        return TOKEN_RETRY_AFTER


def _where(response: requests.Response) -> str:
    request = response.request
    return f"Xero {request.method} {urlsplit(request.url or '').path}" if request is not None else "Xero"


def _detail(body: dict) -> str:
    return str(body.get("Detail") or body.get("Message") or body.get("Title") or body)[:300]


def _validation_messages(body: dict) -> list[str]:
    return [str(error["Message"]) for element in body.get("Elements") or []
            for error in element.get("ValidationErrors") or [] if error.get("Message")]
