"""Zoho OAuth 2.0 tokens (https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html,
https://www.zoho.com/accounts/protocol/oauth/token-limits.html).

One access token per connection, shared by every worker through the credential store: Zoho allows
only 10 refreshes per refresh token per 10 minutes and 15 live access tokens. A refresh returns no
new refresh token (keep the old one) and errors arrive as HTTP 200 with ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any, Protocol

from connector.errors import NeedsReauth, ZohoNotConnected
from connector.http import StoredTokenManager, VendorHooks
from connector.secret import Secret
from connector.store.credentials import StoredTokens, TokenSet
from connector.zoho.hooks import ZohoTokenHooks


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

    def _with_client_credentials(self, form: dict[str, str]) -> tuple[dict[str, str], Any]:
        # Zoho takes the client credentials in the form (access-token-expiry page above).
        return {**form, "client_id": self._client_id, "client_secret": self._client_secret.reveal()}, None

    def _token_hooks(self) -> VendorHooks:
        return ZohoTokenHooks(self.connection_id, self._token_url)

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
