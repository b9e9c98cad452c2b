"""Xero OAuth 2.0 tokens: refresh with rotation, stored before use.

Xero's pages: https://developer.xero.com/documentation/guides/oauth2/auth-flow (refresh) and
https://developer.xero.com/faq/oauth2 (lifetimes, rotation).
"""

from __future__ import annotations

from typing import Any, Protocol

import requests

from connector.errors import ApiError, NeedsReauth, RateLimited, TransientError
from connector.http import (
    StoredTokenManager,
    body_excerpt,
    is_json,
    transport_error,
    transport_retry,
)
from connector.json_codec import loads_from_api
from connector.redaction import redact_text
from connector.secret import Secret
from connector.store.credentials import TokenSet


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

    def _post_token(self, form: dict[str, str], *secrets: str) -> dict:
        hidden = (*secrets, self._client_secret.reveal())
        try:
            response = transport_retry(self._session.post)(
                self._token_url,
                data=form,
                auth=(self._client_id, self._client_secret.reveal()),  # HTTP Basic client auth (auth flow above)
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise transport_error(exc, "Xero token request", *hidden) from None
        body = _json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 200 and body and body.get("access_token"):
            return body
        where = f"Xero token request for connection {self.connection_id}"
        if error == "invalid_grant":
            raise NeedsReauth(f"{where}: invalid_grant (refresh token expired, revoked or already rotated); reconnect",
                              system="xero")
        if error in {"invalid_client", "unauthorized_client"}:
            raise NeedsReauth(f"{where}: {error}; check XERO_CLIENT_ID and XERO_CLIENT_SECRET", system="xero")
        detail = redact_text(str(error or body_excerpt(response)), *hidden)
        if response.status_code == 429:
            raise RateLimited(f"{where}: 429 {detail}", retry_after=60.0)
        if response.status_code >= 500:
            raise TransientError(f"{where}: {response.status_code} {detail}")
        raise ApiError(f"{where}: {response.status_code} {detail}", status=response.status_code)

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


def _json_or_none(response: requests.Response) -> Any:
    if not is_json(response) or not response.content:
        return None
    try:
        return loads_from_api(response.content)
    except ValueError:
        return None
