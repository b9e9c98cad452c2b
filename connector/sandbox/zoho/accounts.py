"""The Zoho sandbox's accounts server: OAuth consent, grant codes, refresh and access tokens, scopes.

One data centre per sandbox (``dc``); the token endpoint answers bad clients and codes with HTTP 200
and an ``error`` body, as Zoho does (https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html,
https://www.zoho.com/accounts/protocol/oauth/multi-dc/client-authorization.html).
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from connector.sandbox.zoho.render import _error, _json

FULL_SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.notifications.ALL"
ACCESS_TOKEN_SECONDS = 3600  # Zoho: access tokens live one hour
MAX_LIVE_ACCESS_TOKENS = 15  # Zoho: 15 live per refresh token, the 16th evicts the oldest
TOKEN_REQUESTS_PER_WINDOW = 10  # Zoho: 10 access-token requests per refresh token per 10 minutes
TOKEN_WINDOW_SECONDS = 600
GRANT_CODE_SECONDS = 180  # Zoho v7/v8 docs: a grant code lives 3 minutes, one use


@dataclass
class _Grant:
    refresh_token: str
    scope: str
    access_tokens: deque = field(default_factory=deque)  # oldest first
    request_times: deque = field(default_factory=deque)
    revoked: bool = False


class AccountsServer:
    """The accounts server of ZohoSandbox (which holds the grants and tokens), plus its test hooks."""

    def issue_refresh_token(self, scope: str = FULL_SCOPE) -> str:
        """A refresh token as if a person had consented (no HTTP round trip)."""
        with self._lock:
            token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self._grants[token] = _Grant(token, scope)
            return token

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            grant = self._grants.get(refresh_token)
            if grant:
                grant.revoked = True
                for access in grant.access_tokens:
                    self._access.pop(access, None)

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access = {t: (g, 0.0) for t, (g, _) in self._access.items()}

    def token_requests(self) -> int:
        with self._lock:
            return self._token_calls

    def _accounts(self, request: Request) -> Response:
        if request.path == "/oauth/v2/auth" and request.method == "GET":
            return self._authorize_page(request)
        if request.path == "/oauth/v2/token" and request.method == "POST":
            return self._token(request)
        if request.path == "/oauth/v2/token/revoke" and request.method == "POST":
            self.revoke(request.values.get("token", ""))
            return _json({"status": "success"})  # body shape UNVERIFIED
        return _json({"error": "invalid_request"}, 400)

    def _authorize_page(self, request: Request) -> Response:
        """Consent happens at once; Zoho redirects with code, location and accounts-server."""
        args = request.args
        if args.get("client_id") != self.client_id or not args.get("redirect_uri"):
            return _json({"error": "invalid_client"}, 400)
        code = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self._lock:
            # refresh tokens only come with access_type=offline (Zoho multi-DC doc)
            self._codes[code] = (args.get("scope", FULL_SCOPE), self.clock.time() + GRANT_CODE_SECONDS,
                                 args.get("access_type") == "offline")
        query = {"code": code, "location": self.dc, "accounts-server": self.base_url}
        if "state" in args:
            query["state"] = args["state"]
        redirect = args["redirect_uri"]
        return Response(status=302, headers={"Location": f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(query)}"})

    def _token(self, request: Request) -> Response:
        params = request.values  # query string or form body, as Zoho allows
        with self._lock:
            self._token_calls += 1
            if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
                return _json({"error": "invalid_client"})  # Zoho answers these with HTTP 200
            grant_type = params.get("grant_type")
            now = self.clock.time()
            if grant_type == "authorization_code":
                scope, expires_at, offline = self._codes.pop(params.get("code", ""), ("", 0.0, False))
                if expires_at <= now:
                    return _json({"error": "invalid_code"})
                grant = self._grants[self.issue_refresh_token(scope)]
                body = self._mint_access_token(grant, now)
                if offline:
                    body["refresh_token"] = grant.refresh_token
                return _json(body)
            if grant_type == "refresh_token":
                grant = self._grants.get(params.get("refresh_token", ""))
                if grant is None or grant.revoked:
                    return _json({"error": "invalid_code"})
                while grant.request_times and grant.request_times[0] <= now - TOKEN_WINDOW_SECONDS:
                    grant.request_times.popleft()
                if len(grant.request_times) >= TOKEN_REQUESTS_PER_WINDOW:
                    return _json({"error_description": "You have made too many requests continuously. "
                                  "Please try again after some time.", "error": "Access Denied", "status": "failure"})
                grant.request_times.append(now)
                return _json(self._mint_access_token(grant, now))
            return _json({"error": "unsupported_grant_type"})

    def _mint_access_token(self, grant: _Grant, now: float) -> dict:
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        grant.access_tokens.append(token)
        while len(grant.access_tokens) > MAX_LIVE_ACCESS_TOKENS:
            self._access.pop(grant.access_tokens.popleft(), None)
        self._access[token] = (grant, now + ACCESS_TOKEN_SECONDS)
        return {"access_token": token, "scope": grant.scope, "api_domain": self.base_url,
                "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS}

    def _authorize(self, request: Request) -> _Grant | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme not in ("Zoho-oauthtoken", "Bearer"):
            return None
        with self._lock:
            grant, expires_at = self._access.get(token.strip(), (None, 0.0))
            if grant is None or grant.revoked or expires_at <= self.clock.time():
                return None
            return grant

    @staticmethod
    def _check_scope(grant: _Grant, parts: list[str]) -> Response | None:
        family = {"settings": "ZohoCRM.settings.", "actions": "ZohoCRM.notifications.", "org": "ZohoCRM.org."}.get(
            parts[0] if parts else "", "ZohoCRM.modules.")
        if any(s.strip().startswith(family) for s in grant.scope.split(",")):
            return None
        return _error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")
