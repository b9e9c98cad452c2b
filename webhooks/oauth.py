"""GET /oauth/<system>/start and /oauth/<system>/callback: the connect flows on the receiver.

The flows themselves (state check, code exchange, tenant linking) live in connector.connect and
are injected as ``oauth``; this blueprint only turns requests into calls and answers.
"""

from __future__ import annotations

import logging
from typing import Mapping, Protocol

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from connector.errors import ConnectorError

logger = logging.getLogger("webhooks.oauth")

oauth_blueprint = Blueprint("oauth", __name__)
OAUTH_EXTENSION = "ml_connector.oauth"
SYSTEMS = ("xero", "zoho")


class ConnectFlows(Protocol):
    def start(self, system: str, *, redirect_uri: str, **options) -> str: ...

    def finish(self, system: str, params: Mapping[str, str]) -> list: ...


def _flows() -> ConnectFlows:
    return current_app.extensions[OAUTH_EXTENSION]


@oauth_blueprint.get("/oauth/<system>/start")
def start(system: str) -> Response | tuple[Response, int]:
    if system not in SYSTEMS:
        return jsonify(error="no such system"), 404
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
    redirect_uri = request.url_root.rstrip("/") + f"/oauth/{system}/callback"
    try:
        url = _flows().start(system, redirect_uri=redirect_uri, **options)
    except ConnectorError as exc:
        return jsonify(error=str(exc)), 400
    return redirect(url, code=302)


@oauth_blueprint.get("/oauth/<system>/callback")
def callback(system: str) -> tuple[Response, int]:
    if system not in SYSTEMS:
        return jsonify(error="no such system"), 404
    try:
        connections = _flows().finish(system, request.args.to_dict())
    except ConnectorError as exc:
        logger.warning("oauth.connect_failed", extra={"system": system, "reason": str(exc)})
        return jsonify(error=str(exc)), 400
    logger.info("oauth.connected", extra={"system": system, "connections": [c.id for c in connections]})
    return jsonify(status="connected", connections=[
        {"id": c.id, "name": c.name, "tenant_id": c.xero_tenant_id, "state": c.state, "zoho_org_id": c.zoho_org_id}
        for c in connections
    ]), 200
