"""Xero OAuth 2.0 tokens: refresh with rotation, stored before use.

Xero's pages: https://developer.xero.com/documentation/guides/oauth2/auth-flow (refresh) and
https://developer.xero.com/faq/oauth2 (lifetimes, rotation).
"""

from __future__ import annotations

from typing import Any, Protocol

from connector.errors import NeedsReauth
from connector.http import StoredTokenManager, VendorHooks
from connector.secret import Secret
from connector.store.credentials import TokenSet
from connector.xero.hooks import XeroTokenHooks


class XeroTokenSource(Protocol):
    def access_token(self) -> str: ...

    def refresh(self, force: bool = False) -> str: ...


class XeroTokenManager(StoredTokenManager):
    """Hands out the stored access token and refreshes it (once, for every worker) near expiry."""

    system = "xero"  # a read timeout on the token call is a possibly lost rotation: see _request_refresh

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Swap the authorization code from the connect redirect for a token set (not stored here)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return self._token_set(self._post_token(form, code), extra={})

    def _request_refresh(self, tokens: TokenSet) -> TokenSet:
        refresh_token = tokens.refresh_token.reveal()
        # A lost answer is retried with the same refresh token: Xero honours it for 30 minutes (FAQ above).
        body = self._post_token({"grant_type": "refresh_token", "refresh_token": refresh_token}, refresh_token)
        return self._token_set(body, extra=dict(tokens.extra or {}), scope=tokens.scope)

    def _with_client_credentials(self, form: dict[str, str]) -> tuple[dict[str, str], Any]:
        return form, (self._client_id, self._client_secret.reveal())  # HTTP Basic client auth (auth flow above)

    def _token_hooks(self) -> VendorHooks:
        return XeroTokenHooks(self.connection_id)

    def _token_set(self, body: dict, *, extra: dict, scope: str = "") -> TokenSet:
        if not body.get("refresh_token"):
            raise NeedsReauth("Xero sent no refresh token: the offline_access scope is missing", system="xero")
        return TokenSet(
            access_token=Secret(body["access_token"]),
            refresh_token=Secret(body["refresh_token"]),  # rotated on every refresh: replace the stored one
            expires_at=self._expires_at(body.get("expires_in", 1800)),
            scope=body.get("scope") or scope,
            extra=extra,
        )

