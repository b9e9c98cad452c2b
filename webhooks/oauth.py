"""GET /oauth/<system>/start and /oauth/<system>/callback: the connect flows on the receiver.

The flows themselves (state check, code exchange, tenant linking) live in connector.connect and
are injected as ``oauth``; this blueprint only turns requests into calls and answers. Both routes
are operator-only (webhooks.auth). The start binds the flow to the browser that asked: a random
nonce goes into a signed, HttpOnly cookie and its hash into the state kept in Redis; the callback
finishes only with that cookie. SameSite=Lax, not Strict: the vendor's redirect back to us is a
cross-site top-level GET, which Lax cookies accompany. Redirect URIs come from
CONNECTOR_PUBLIC_URL only, never from the request's Host header (which anyone can set).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Mapping, Protocol

from flask import Blueprint, Response, current_app, jsonify, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from connector.connect import STATE_TTL_SECONDS, StateRejected
from connector.errors import ConnectorError
from webhooks.auth import ADMIN_TOKEN_EXTENSION, operator_required

logger = logging.getLogger("webhooks.oauth")

oauth_blueprint = Blueprint("oauth", __name__)
OAUTH_EXTENSION = "ml_connector.oauth"
PUBLIC_URL_EXTENSION = "ml_connector.public_url"
SYSTEMS = ("xero", "zoho")


class ConnectFlows(Protocol):
    def start(self, system: str, *, redirect_uri: str, **options) -> str: ...

    def finish(self, system: str, params: Mapping[str, str], *, browser: str | None = None) -> list: ...


def _flows() -> ConnectFlows:
    return current_app.extensions[OAUTH_EXTENSION]


def _cookie_name(system: str) -> str:
    return f"mlc_oauth_{system}"


def _signer(system: str) -> URLSafeTimedSerializer:
    # Keyed by the operator token: only a receiver holding it can mint a cookie it will accept.
    return URLSafeTimedSerializer(current_app.extensions[ADMIN_TOKEN_EXTENSION].reveal(), salt=f"oauth-{system}")


def _binding(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


@oauth_blueprint.get("/oauth/<system>/start")
@operator_required
def start(system: str) -> Response | tuple[Response, int]:
    if system not in SYSTEMS:
        return jsonify(error="no such system"), 404
    public_url = current_app.extensions.get(PUBLIC_URL_EXTENSION) or ""
    if not public_url:
        return jsonify(error="CONNECTOR_PUBLIC_URL is not set on the receiver; redirect URIs are built from it"), 503
    args = request.args
    options: dict = {}
    if system == "xero":
        options = {"tenant_ids": args.getlist("tenant") or None, "scopes": args.get("scopes"),
                   "zoho_from": int(args["zoho_from"]) if args.get("zoho_from", "").isdigit() else None}
    else:
        connection_ids = [int(v) for v in args.getlist("connection") if v.isdigit()]
        if not connection_ids:
            return jsonify(error="say which connection(s) this Zoho org is for: ?connection=ID"), 400
        options = {"connection_ids": connection_ids, "dc": args.get("dc")}
    redirect_uri = f"{public_url}/oauth/{system}/callback"
    nonce = secrets.token_urlsafe(32)
    try:
        url = _flows().start(system, redirect_uri=redirect_uri, browser=_binding(nonce), **options)
    except ConnectorError as exc:
        return jsonify(error=str(exc)), 400
    response = redirect(url, code=302)
    response.set_cookie(_cookie_name(system), _signer(system).dumps(nonce), max_age=STATE_TTL_SECONDS,
                        path=f"/oauth/{system}/", httponly=True, samesite="Lax",
                        secure=public_url.startswith("https://"))
    return response


@oauth_blueprint.get("/oauth/<system>/callback")
@operator_required
def callback(system: str) -> tuple[Response, int]:
    if system not in SYSTEMS:
        return jsonify(error="no such system"), 404
    try:
        nonce = _signer(system).loads(request.cookies.get(_cookie_name(system), ""), max_age=STATE_TTL_SECONDS)
    except BadSignature:  # missing, forged or expired (SignatureExpired is a BadSignature)
        logger.warning("oauth.callback_without_browser_binding", extra={"system": system})
        return jsonify(error="this browser did not start a connect flow here (or it expired); start it again"), 403
    try:
        connections = _flows().finish(system, request.args.to_dict(), browser=_binding(str(nonce)))
    except StateRejected as exc:
        logger.warning("oauth.state_rejected", extra={"system": system, "reason": str(exc)})
        return jsonify(error=str(exc)), 403
    except ConnectorError as exc:
        logger.warning("oauth.connect_failed", extra={"system": system, "reason": str(exc)})
        return jsonify(error=str(exc)), 400
    logger.info("oauth.connected", extra={"system": system, "connections": [c.id for c in connections]})
    response = jsonify(status="connected", connections=[
        {"id": c.id, "name": c.name, "tenant_id": c.xero_tenant_id, "state": c.state, "zoho_org_id": c.zoho_org_id}
        for c in connections
    ])
    response.delete_cookie(_cookie_name(system), path=f"/oauth/{system}/")
    return response, 200
