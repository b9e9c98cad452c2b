"""Zoho OAuth 2.0 tokens (https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html,
https://www.zoho.com/accounts/protocol/oauth/token-limits.html).

One access token per connection, shared by every worker through the credential store: Zoho allows
only 10 refreshes per refresh token per 10 minutes and 15 live access tokens. A refresh returns no
new refresh token (keep the old one) and errors arrive as HTTP 200 with ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests

from connector.errors import ApiError, NeedsReauth, RateLimited, TransientError, ZohoNotConnected
from connector.http import (
    StoredTokenManager,
    body_excerpt,
    transport_error,
    transport_retry,
)
from connector.json_codec import loads_from_api
from connector.redaction import redact_text
from connector.secret import Secret
from connector.store.credentials import StoredTokens, TokenSet

# "Access Denied" = more than 10 token requests in 10 minutes (token limits page above); a minute lets the window move.
THROTTLE_RETRY_AFTER = 60.0


class ZohoTokenSource(Protocol):
    def access_token(self) -> str: ...

    def api_domain(self) -> str: ...

    def refresh(self, force: bool = False) -> str: ...


class ZohoTokenManager(StoredTokenManager):
    system = "zoho"

    def __init__(self, *, accounts_url: str, **kwargs: Any) -> None:
        """``accounts_url`` is the data centre's accounts server; other arguments as the base."""
        super().__init__(token_url=accounts_url.rstrip("/") + "/oauth/v2/token", **kwargs)

    def _load(self) -> StoredTokens:
        try:
            return super()._load()
        except NeedsReauth:  # raised only when nothing is stored: this Zoho side was never connected
            raise ZohoNotConnected(self.connection_id) from None

    def api_domain(self) -> str:
        """The data centre's API host from the token response (never a hard-coded .com)."""
        stored = self._last if self._last is not None else self._load()
        domain = (stored.tokens.extra or {}).get("api_domain")
        if not domain:
            raise NeedsReauth(f"no Zoho api_domain stored for connection {self.connection_id}: reconnect it",
                              system="zoho")
        return str(domain).rstrip("/")

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Swap the grant code for tokens (not stored here); needs access_type=offline on authorize."""
        body = self._post_token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}, code)
        if not body.get("refresh_token"):
            raise NeedsReauth("Zoho sent no refresh token: authorize with access_type=offline", system="zoho")
        return self._token_set(body, refresh_token=Secret(body["refresh_token"]), extra={})

    def _request_refresh(self, tokens: TokenSet) -> TokenSet:
        refresh_token = tokens.refresh_token.reveal()
        body = self._post_token({"grant_type": "refresh_token", "refresh_token": refresh_token}, refresh_token)
        extra = dict(tokens.extra or {})
        return self._token_set(body, refresh_token=tokens.refresh_token, extra=extra, scope=tokens.scope)

    def _post_token(self, form: dict[str, str], *secrets: str) -> dict:
        hidden = (*secrets, self._client_secret.reveal())
        form = {**form, "client_id": self._client_id, "client_secret": self._client_secret.reveal()}
        try:
            response = transport_retry(self._session.post)(self._token_url, data=form, timeout=self._timeout)
        except requests.RequestException as exc:
            raise transport_error(exc, "Zoho token request", *hidden) from None
        where = f"Zoho token request for connection {self.connection_id}"
        if response.status_code >= 500:
            raise TransientError(redact_text(f"{where}: {response.status_code} {body_excerpt(response)}", *hidden))
        try:
            body = loads_from_api(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(redact_text(f"{where}: {response.status_code} {body_excerpt(response)}", *hidden),
                           status=response.status_code)
        error = body.get("error")
        if response.status_code == 200 and not error and body.get("access_token"):
            return body
        if error == "invalid_code":  # revoked or evicted refresh token, or a used/expired grant code
            raise NeedsReauth(f"{where}: invalid_code (refresh token revoked or replaced); reconnect", system="zoho")
        if error == "invalid_client":
            raise NeedsReauth(
                f"{where}: invalid_client; check ZOHO_CLIENT_ID/SECRET and that the accounts server "
                f"({self._token_url.rsplit('/oauth', 1)[0]}) is the account's data centre (ZOHO_DC)", system="zoho"
            )
        if error == "Access Denied":
            raise RateLimited(f"{where}: throttled (too many token requests)", retry_after=THROTTLE_RETRY_AFTER)
        detail = redact_text(str(error or body_excerpt(response)), *hidden)
        raise ApiError(f"{where}: {response.status_code} {detail}", status=response.status_code)

    def _token_set(self, body: dict, *, refresh_token: Secret, extra: dict, scope: str = "") -> TokenSet:
        if body.get("api_domain"):
            extra["api_domain"] = str(body["api_domain"]).rstrip("/")
        return TokenSet(
            access_token=Secret(body["access_token"]),
            refresh_token=refresh_token,
            expires_at=self._expires_at(body.get("expires_in", 3600)),
            scope=body.get("scope") or scope,
            extra=extra,
        )
