"""GET /oauth/<system>/start and /oauth/<system>/callback: the connect flows on the receiver.

The flows themselves (state check, code exchange, tenant linking) live in connector.connect and
are injected as ``oauth``; this blueprint only turns requests into calls and answers. Both routes
are operator-only (webhooks.auth). The start binds the flow to the browser that asked: a random
nonce goes into a signed, HttpOnly cookie and its hash into the state kept in Redis; the callback
finishes only with that cookie. SameSite=Lax, not Strict: the vendor's redirect back to us is a
cross-site top-level GET, which Lax cookies accompany. Redirect URIs come from
CONNECTOR_PUBLIC_URL only, never from the request's Host header (which anyone can set).

A browser (it asks for text/html first) is answered with a page (webhooks/templates/, autoescaped):
what was connected and the next step, or what went wrong and what to do. A client asking for JSON,
or for nothing in particular (curl, scripts), gets the same answer as JSON. Neither ever shows a token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Mapping, Protocol
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from connector.connect import STATE_TTL_SECONDS, ConsentDeclined, StateRejected, TenantChoice
from connector.errors import ConnectorError
from connector.settings import ZOHO_ACCOUNTS_SERVERS
from webhooks.auth import ADMIN_TOKEN_EXTENSION, operator_required

logger = logging.getLogger("webhooks.oauth")

oauth_blueprint = Blueprint("oauth", __name__, template_folder="templates")
OAUTH_EXTENSION = "ml_connector.oauth"
PUBLIC_URL_EXTENSION = "ml_connector.public_url"
SYSTEMS = ("xero", "zoho")
SYSTEM_NAMES = {"xero": "Xero", "zoho": "Zoho CRM"}
ZOHO_DATA_CENTRES = {server: dc for dc, server in ZOHO_ACCOUNTS_SERVERS.items()}
# The pages name connections and organisations: no cache keeps them, no other site frames or styles them, and a
# link followed from the callback's page sends no Referer (its URL carries the code and the state).
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"}


class ConnectFlows(Protocol):
    def start(self, system: str, *, redirect_uri: str, **options) -> str: ...

    def finish(self, system: str, params: Mapping[str, str], *, browser: str | None = None) -> list | TenantChoice:
        ...

    def choose_tenants(self, pending: str, tenant_ids: list[str], *, browser: str | None = None) -> list: ...


def _flows() -> ConnectFlows:
    return current_app.extensions[OAUTH_EXTENSION]


def _cookie_name(system: str) -> str:
    return f"mlc_oauth_{system}"


def _signer(system: str) -> URLSafeTimedSerializer:
    # Keyed by the operator token: only a receiver holding it can mint a cookie it will accept.
    return URLSafeTimedSerializer(current_app.extensions[ADMIN_TOKEN_EXTENSION].reveal(), salt=f"oauth-{system}")


def _binding(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


def _wants_page() -> bool:
    """True for a browser, which asks for text/html before anything else."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _page(template: str, status: int, **context) -> tuple[Response, int]:
    return Response(render_template(template, **context), status=status, mimetype="text/html",
                    headers=PAGE_HEADERS), status


def _failed(system: str, message: str, status: int, *, title: str | None = None) -> tuple[Response, int]:
    """The refusal: ``{"error": message}`` for a client, a page with what to do for a person."""
    if not _wants_page():
        return jsonify(error=message), status
    name = SYSTEM_NAMES.get(system, system)
    if system == "zoho":  # its start needs the connection(s), which only the person knows
        message += " To connect Zoho, open /oauth/zoho/start?connection=ID (the ids: `connector connections`)."
    return _page("oauth_failed.html", status, title=title or f"Connecting {name} did not finish", reason=message,
                 system_name=name, start_url="/oauth/xero/start" if system == "xero" else None,
                 console_url=_console_url())


def _connected(system: str, connections: list) -> tuple[Response, int]:
    """What was connected and what comes next: Zoho for connections without it, else check and backfill."""
    rows = [{"id": c.id, "name": c.name, "tenant_id": c.xero_tenant_id, "state": c.state,
             "zoho_org_id": c.zoho_org_id} for c in connections]
    if not _wants_page():
        return jsonify(status="connected", connections=rows), 200
    zoho_missing = [c.id for c in connections if not c.zoho_org_id]
    shown = [{"id": c.id, "name": c.name, "xero_tenant_id": c.xero_tenant_id, "state": c.state,
              "zoho_org_id": c.zoho_org_id, "zoho_api_domain": c.zoho_api_domain,
              "zoho_dc": ZOHO_DATA_CENTRES.get((c.zoho_accounts_url or "").rstrip("/"))} for c in connections]
    return _page("oauth_connected.html", 200, title=f"{SYSTEM_NAMES[system]} connected", connections=shown,
                 zoho_missing=zoho_missing, console_url=_console_url(),
                 zoho_start="/oauth/zoho/start?" + urlencode([("connection", i) for i in zoho_missing]))


def _console_url() -> str | None:
    """Where a person goes on from a result page: the console's "Connect and fit" flow, when this receiver
    serves the console."""
    return "/console/connect" if "console" in current_app.blueprints else None


@oauth_blueprint.get("/oauth/<system>/start")
@operator_required
def start(system: str) -> Response | tuple[Response, int]:
    if system not in SYSTEMS:
        return _failed(system, f"there is no system {system!r} to connect; use /oauth/xero/start or /oauth/zoho/start",
                       404)
    public_url = current_app.extensions.get(PUBLIC_URL_EXTENSION) or ""
    if not public_url:
        return _failed(system, "CONNECTOR_PUBLIC_URL is not set on the receiver; redirect URIs are built from it",
                       503)
    args = request.args
    options: dict = {}
    if system == "xero":
        # A form's empty tenant field means "every organisation ticked in Xero".
        options = {"tenant_ids": [t.strip() for t in args.getlist("tenant") if t.strip()] or None, "scopes": args.get("scopes"),
                   "zoho_from": int(args["zoho_from"]) if args.get("zoho_from", "").isdigit() else None,
                   # pick=1: a consent reaching several organisations shows a page to choose them on
                   "pick": args.get("pick") == "1"}
    else:
        connection_ids = [int(v) for v in args.getlist("connection") if v.isdigit()]
        if not connection_ids:
            return _failed(system, "say which connection(s) this Zoho org is for: ?connection=ID", 400)
        options = {"connection_ids": connection_ids, "dc": args.get("dc")}
    redirect_uri = f"{public_url}/oauth/{system}/callback"
    nonce = secrets.token_urlsafe(32)
    try:
        url = _flows().start(system, redirect_uri=redirect_uri, browser=_binding(nonce), **options)
    except ConnectorError as exc:
        return _failed(system, str(exc), 400)
    response = redirect(url, code=302)
    response.set_cookie(_cookie_name(system), _signer(system).dumps(nonce), max_age=STATE_TTL_SECONDS,
                        path=f"/oauth/{system}/", httponly=True, samesite="Lax",
                        secure=public_url.startswith("https://"))
    return response


@oauth_blueprint.get("/oauth/<system>/callback")
@operator_required
def callback(system: str) -> tuple[Response, int]:
    if system not in SYSTEMS:
        return _failed(system, f"there is no system {system!r} to connect", 404)
    nonce = _browser_nonce(system)
    if nonce is None:
        return _failed(system, "this browser did not start a connect flow here (or it expired); start it again",
                       403, title="This connect flow cannot finish in this browser")
    try:
        connections = _flows().finish(system, request.args.to_dict(), browser=_binding(nonce))
    except StateRejected as exc:
        logger.warning("oauth.state_rejected", extra={"system": system, "reason": str(exc)})
        return _failed(system, str(exc), 403, title="This connect flow cannot finish")
    except ConsentDeclined as exc:  # the person said no: nothing to fix but their choice
        logger.warning("oauth.consent_declined", extra={"system": system, "reason": str(exc)})
        return _failed(system, str(exc), 403, title=f"{SYSTEM_NAMES[system]} consent was declined")
    except ConnectorError as exc:
        logger.warning("oauth.connect_failed", extra={"system": system, "reason": str(exc)})
        return _failed(system, str(exc), 400)
    if isinstance(connections, TenantChoice):  # the binding cookie stays: the choice is made in this browser
        logger.info("oauth.tenants_to_choose", extra={"system": system, "organisations": len(connections.organisations)})
        if not _wants_page():
            return jsonify(status="choose_tenants", organisations=connections.organisations,
                           choose_at="/oauth/xero/tenants", pending=connections.pending), 200
        return _page("oauth_tenants.html", 200, title="Choose the Xero organisations to connect",
                     choice=connections)
    return _finished(system, connections)


@oauth_blueprint.post("/oauth/xero/tenants")
@operator_required
def choose_tenants() -> tuple[Response, int]:
    """The organisations ticked on the choice page. It changes state, so it is guarded like the callback: only
    with this browser's binding cookie (signed, HttpOnly, SameSite=Lax: another site's form posting here carries
    none) and the single-use id of the held grant, which only the page shown to this browser holds."""
    nonce = _browser_nonce("xero")
    if nonce is None:
        return _failed("xero", "this browser did not start a connect flow here (or it expired); start it again",
                       403, title="This connect flow cannot finish in this browser")
    try:
        connections = _flows().choose_tenants(request.form.get("pending", ""), request.form.getlist("tenant"),
                                              browser=_binding(nonce))
    except StateRejected as exc:
        logger.warning("oauth.state_rejected", extra={"system": "xero", "reason": str(exc)})
        return _failed("xero", str(exc), 403, title="This connect flow cannot finish")
    except ConnectorError as exc:
        return _failed("xero", f"{exc}. Go back to the list and tick one", 400, title="Nothing was chosen")
    return _finished("xero", connections)


def _browser_nonce(system: str) -> str | None:
    """The nonce in this browser's signed binding cookie; None when it is missing, forged or expired."""
    try:
        return str(_signer(system).loads(request.cookies.get(_cookie_name(system), ""), max_age=STATE_TTL_SECONDS))
    except BadSignature:  # SignatureExpired is a BadSignature
        logger.warning("oauth.callback_without_browser_binding", extra={"system": system})
        return None


def _finished(system: str, connections: list) -> tuple[Response, int]:
    logger.info("oauth.connected", extra={"system": system, "connections": [c.id for c in connections]})
    response, status = _connected(system, connections)
    response.delete_cookie(_cookie_name(system), path=f"/oauth/{system}/")
    return response, status
