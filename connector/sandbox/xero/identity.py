"""Xero's identity server: the OAuth 2.0 authorization-code flow (with PKCE), refresh-token
rotation with a grace period, revocation, access-token checks and scopes, and /connections.

Pages: https://developer.xero.com/documentation/guides/oauth2/auth-flow,
https://developer.xero.com/faq/oauth2 and
https://developer.xero.com/documentation/guides/oauth2/scopes; the OAS-ID spec in
https://github.com/XeroAPI/Xero-OpenAPI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from connector.clock import Clock
from connector.sandbox.xero.formats import ApiResponse, connection_time, json_error, not_found, problem
from connector.sandbox.xero.state import Org

AUTH_CODE_TTL = 300
REFRESH_TOKEN_IDLE_TTL = 60 * 86400  # unused refresh tokens die after 60 days
# The scopes that open each accounting resource; a ``.read`` variant of each opens GETs.
RESOURCE_SCOPES = {"contacts": ["accounting.contacts"],
                   "invoices": ["accounting.transactions", "accounting.invoices"],
                   "creditnotes": ["accounting.transactions", "accounting.invoices"],
                   "payments": ["accounting.transactions", "accounting.payments"],
                   "overpayments": ["accounting.transactions", "accounting.payments"],
                   "prepayments": ["accounting.transactions", "accounting.payments"],
                   "banktransactions": ["accounting.transactions", "accounting.banktransactions"],
                   # GET /Organisation: accounting.settings or .read (Xero's OpenAPI, operation getOrganisations;
                   # https://developer.xero.com/documentation/guides/oauth2/scopes/); the granular change left it.
                   "organisation": ["accounting.settings"]}


@dataclass
class Grant:
    id: str  # authEventId
    tenant_ids: list
    scope: str
    revoked: bool = False


@dataclass
class RefreshToken:
    grant: Grant
    issued: float
    rotated_at: float | None = None
    successor: str | None = None


@dataclass
class AccessToken:
    grant: Grant
    expires: float


@dataclass
class Connection:
    id: str
    auth_event_id: str
    tenant_id: str
    created: datetime
    updated: datetime


class IdentityServer:
    """Grants over the sandbox's organisations (``orgs``, shared), under the sandbox's ``lock``."""

    def __init__(self, clock: Clock, orgs: dict[str, Org], lock: threading.RLock, *, client_id: str,
                 client_secret: str, access_token_ttl: int, refresh_grace: int) -> None:
        self.clock = clock
        self.orgs = orgs
        self.lock = lock
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_ttl = access_token_ttl
        self.refresh_grace = refresh_grace
        self.codes: dict[str, dict] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.connections: dict[str, Connection] = {}

    # ------------------------------------------------------------------ hooks for tests and demo

    def issue_grant(self, tenant_ids: list[str] | None, scope: str) -> dict:
        with self.lock:
            grant = Grant(str(uuid.uuid4()), list(self.orgs if tenant_ids is None else tenant_ids), scope)
            self.grants[grant.id] = grant
            self._connect(grant)
            return self._token_response(grant)

    def revoke(self, refresh_token: str) -> None:
        """Revoke the grant behind a refresh token and remove its connections."""
        with self.lock:
            state = self.refresh_tokens.get(refresh_token)
            if state is None:
                return
            state.grant.revoked = True
            for conn_id in [c.id for c in self.connections.values() if c.tenant_id in state.grant.tenant_ids]:
                del self.connections[conn_id]

    def expire_access_tokens(self) -> None:
        with self.lock:
            now = self.clock.time()
            for token in self.access_tokens.values():
                token.expires = min(token.expires, now)

    # ------------------------------------------------------------------ endpoints

    def authorize(self, request: Request) -> Response:
        args = request.args
        if args.get("client_id") != self.client_id:
            return Response("unauthorized_client", status=400, content_type="text/plain")
        redirect_uri = args.get("redirect_uri")
        if not redirect_uri:
            return Response("invalid redirect_uri", status=400, content_type="text/plain")
        state = {"state": args["state"]} if "state" in args else {}
        if args.get("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", **state})
        if not args.get("scope"):
            return _redirect(redirect_uri, {"error": "invalid_scope", **state})
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "redirect_uri": redirect_uri,
                "scope": args["scope"],
                "expires": self.clock.time() + AUTH_CODE_TTL,
                "code_challenge": args.get("code_challenge"),
            }
        return _redirect(redirect_uri, {"code": code, **state})

    def token(self, request: Request) -> Response:
        client_id, secret = _client_credentials(request)
        form = request.form
        grant_type = form.get("grant_type")
        with self.lock:
            if grant_type == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                pkce_ok = bool(code and code["code_challenge"] and form.get("code_verifier")
                               and _s256(form["code_verifier"]) == code["code_challenge"])
                if client_id != self.client_id or (secret != self.client_secret and not pkce_ok):
                    return json_error({"error": "invalid_client"})
                if (code is None or code["expires"] < self.clock.time()
                        or code["redirect_uri"] != form.get("redirect_uri")
                        or (code["code_challenge"] and not pkce_ok)):
                    return json_error({"error": "invalid_grant"})
                grant = Grant(str(uuid.uuid4()), list(self.orgs), code["scope"])
                self.grants[grant.id] = grant
                self._connect(grant)
                return _token_json(self._token_response(grant))
            if client_id != self.client_id or secret != self.client_secret:
                return json_error({"error": "invalid_client"})
            if grant_type == "refresh_token":
                response = self._refresh(form.get("refresh_token", ""))
                return _token_json(response) if response else json_error({"error": "invalid_grant"})
        return json_error({"error": "unsupported_grant_type"})

    def revocation(self, request: Request) -> Response:
        client_id, secret = _client_credentials(request)
        if client_id != self.client_id or secret != self.client_secret:
            return json_error({"error": "invalid_client"})
        self.revoke(request.form.get("token", ""))
        return Response("", status=200)

    def connections_endpoint(self, request: Request) -> Response:
        grant = self.bearer(request)
        tenants = self.connected_tenants(grant)
        parts = request.path.strip("/").split("/")
        with self.lock:
            if request.method == "DELETE" and len(parts) == 2:
                conn = self.connections.get(parts[1])
                if conn is None or conn.tenant_id not in tenants:
                    return not_found()
                del self.connections[conn.id]
                return Response(status=204)
            if request.method != "GET" or len(parts) != 1:
                return not_found()
            auth_event = request.args.get("authEventId")
            rows = [
                {
                    "id": c.id,
                    "authEventId": c.auth_event_id,
                    "tenantId": c.tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": self.orgs[c.tenant_id].name,
                    "createdDateUtc": connection_time(c.created),
                    "updatedDateUtc": connection_time(c.updated),
                }
                for c in self.connections.values()
                if c.tenant_id in tenants and (auth_event is None or c.auth_event_id == auth_event)
            ]
        return Response(json.dumps(rows), content_type="application/json; charset=utf-8")

    # ------------------------------------------------------------------ checks on API calls

    def bearer(self, request: Request) -> Grant:
        """The grant behind the call's access token; raises ``ApiResponse`` with Xero's 401 otherwise."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with self.lock:
            state = self.access_tokens.get(token)
        now = self.clock.time()
        if state is None or state.grant.revoked:
            raise ApiResponse(problem(401, "Unauthorized", "AuthenticationUnsuccessful"))
        if state.expires <= now:
            expired = datetime.fromtimestamp(state.expires, timezone.utc).strftime("%m/%d/%Y %H:%M:%S")
            raise ApiResponse(problem(401, "Unauthorized", f"TokenExpired: token expired at {expired}"))
        return state.grant

    def connected_tenants(self, grant: Grant) -> set[str]:
        with self.lock:
            live = {c.tenant_id for c in self.connections.values()}
        return live & set(grant.tenant_ids)

    @staticmethod
    def check_scope(grant: Grant, resource: str, method: str) -> None:
        """Broad or granular scopes; a missing one is 401 AuthorizationUnsuccessful."""
        family = RESOURCE_SCOPES[resource]
        accepted = set(family) | ({f"{s}.read" for s in family} if method == "GET" else set())
        if not accepted & set(grant.scope.split()):
            raise ApiResponse(problem(401, "Unauthorized", "AuthorizationUnsuccessful"))

    # ------------------------------------------------------------------ tokens

    def _refresh(self, refresh_token: str) -> dict | None:
        """Rotate on every use; the used token stays valid for ``refresh_grace`` seconds."""
        now = self.clock.time()
        state = self.refresh_tokens.get(refresh_token)
        if state is None or state.grant.revoked or now - state.issued > REFRESH_TOKEN_IDLE_TTL:
            return None
        if state.rotated_at is None:
            response = self._token_response(state.grant)
            state.rotated_at, state.successor = now, response["refresh_token"]
            return response
        if now - state.rotated_at <= self.refresh_grace:
            # A retry after a lost response: same family, hand back the successor with a fresh access token.
            return self._token_response(state.grant, refresh_token=state.successor)
        return None

    def _token_response(self, grant: Grant, *, refresh_token: str | None = None) -> dict:
        now = self.clock.time()
        access_token = secrets.token_urlsafe(32)
        self.access_tokens[access_token] = AccessToken(grant, now + self.access_token_ttl)
        scopes = grant.scope.split()
        response = {}
        if "openid" in scopes:
            response["id_token"] = _fake_id_token(self.client_id, now)
        response.update(access_token=access_token, expires_in=self.access_token_ttl, token_type="Bearer")
        if "offline_access" in scopes:  # no refresh token without offline_access
            if refresh_token is None:
                refresh_token = secrets.token_hex(32)
                self.refresh_tokens[refresh_token] = RefreshToken(grant, now)
            response["refresh_token"] = refresh_token
        response["scope"] = grant.scope
        return response

    def _connect(self, grant: Grant) -> None:
        now = self.clock.now()
        for tenant_id in grant.tenant_ids:
            existing = next((c for c in self.connections.values() if c.tenant_id == tenant_id), None)
            if existing:  # re-consent keeps the connection and records the new auth event
                existing.auth_event_id, existing.updated = grant.id, now
            else:
                conn = Connection(str(uuid.uuid4()), grant.id, tenant_id, now, now)
                self.connections[conn.id] = conn


def _client_credentials(request: Request) -> tuple[str | None, str | None]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username, auth.password
    return request.form.get("client_id"), request.form.get("client_secret")


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _fake_id_token(client_id: str, now: float) -> str:
    """JWT-shaped but unsigned: the sandbox makes no claims anyone should verify."""
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    claims = {"iss": "https://identity.xero.com", "aud": client_id, "iat": int(now), "exp": int(now) + 300,
              "sub": "sandbox-user", "email": "sandbox@example.com"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sandbox"


def _redirect(uri: str, params: dict) -> Response:
    joiner = "&" if "?" in uri else "?"
    return Response("", status=302, headers={"Location": f"{uri}{joiner}{urlencode(params)}"})


def _token_json(payload: dict) -> Response:
    return Response(json.dumps(payload), content_type="application/json; charset=utf-8",
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
