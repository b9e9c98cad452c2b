"""The Flask receiver: verify, enqueue, answer. No database writes and no API calls here.

``/healthz`` is public and bare: ok (200) when every liveness probe (Redis, the database) answers,
503 naming the failing parts otherwise. What it once listed (connections, their states, parked
work) is at ``/status``, for the operator only (webhooks.auth).
"""

from __future__ import annotations

from typing import Callable, Mapping

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from connector.secret import Secret
from webhooks.auth import ADMIN_TOKEN_EXTENSION, operator_required
from webhooks.enqueue import Enqueue
from webhooks.receiver import EXTENSION, Receiver, ZohoChannelVerifier, logger, receiver
from webhooks.xero import xero_blueprint
from webhooks.zoho import zoho_blueprint

METRICS_EXTENSION = "ml_connector.metrics"


def create_app(
    *,
    webhook_key: Secret | str,
    enqueue: Enqueue,
    zoho_channels: ZohoChannelVerifier,
    max_body_bytes: int = 1_000_000,
    liveness: Mapping[str, Callable[[], object]] | None = None,
    status: Callable[[], dict] | None = None,
    oauth=None,
    admin_token: Secret | str = "",
    public_url: str = "",
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    console=None,
    heartbeat: Callable[[], object] | None = None,
) -> Flask:
    """``admin_token`` guards the operator routes (none configured: they refuse everyone);
    ``public_url`` is where the vendors' OAuth redirects come back to; ``metrics`` answers /metrics (the
    Prometheus text body and its content type), behind the same operator check; ``console`` (a
    connector.operator_console.ConsoleData) serves the operator console at /console/; ``heartbeat`` is
    called on each request (connector/heartbeats.py: at most one Redis write every few seconds)."""
    app = Flask("webhooks")
    # Werkzeug refuses a larger Content-Length and stops reading a chunked body at this size; one
    # byte of slack lets raw_body() tell "exactly at the limit" from "cut off at the limit".
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes + 1
    counters = {"rejected_zoho_callbacks": 0}
    app.extensions[EXTENSION] = counters
    app.extensions[f"{EXTENSION}.receiver"] = Receiver(
        webhook_key=webhook_key if isinstance(webhook_key, Secret) else Secret(webhook_key),
        enqueue=enqueue,
        zoho_channels=zoho_channels,
        max_body_bytes=max_body_bytes,
        liveness=dict(liveness or {}),
        status=status,
        counters=counters,
    )
    app.extensions[ADMIN_TOKEN_EXTENSION] = admin_token if isinstance(admin_token, Secret) else Secret(admin_token)
    app.register_blueprint(xero_blueprint)
    app.register_blueprint(zoho_blueprint)
    if oauth is not None:  # the connect flows (connector.connect.Connector), when this receiver offers them
        from webhooks.oauth import OAUTH_EXTENSION, PUBLIC_URL_EXTENSION, oauth_blueprint

        app.extensions[OAUTH_EXTENSION] = oauth
        app.extensions[PUBLIC_URL_EXTENSION] = public_url.rstrip("/")
        app.register_blueprint(oauth_blueprint)
    if console is not None:
        from webhooks.console import CONSOLE_EXTENSION, console_blueprint
        from webhooks.console import connections, failures, mapping, records  # noqa: F401 (their routes)
        from webhooks.console import connect  # noqa: F401 (its routes)

        app.extensions[CONSOLE_EXTENSION] = console
        app.register_blueprint(console_blueprint)
    if heartbeat is not None:
        app.before_request(_heartbeat_of(heartbeat))
    app.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
    app.add_url_rule("/status", "status", operator_required(_status), methods=["GET"])
    if metrics is not None:
        app.extensions[METRICS_EXTENSION] = metrics
        app.add_url_rule("/metrics", "metrics", operator_required(_metrics), methods=["GET"])
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_operator_answer_headers)
    return app


# What every console and connect page sends (webhooks/console PAGE_HEADERS), given to every other answer under
# those paths too: a refusal, an unknown path or a JSON body there is not cached, framed, sniffed or referred.
OPERATOR_PATHS = ("/console", "/oauth/")
OPERATOR_ANSWER_HEADERS = {
    "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def _operator_answer_headers(response: Response) -> Response:
    if request.path.startswith(OPERATOR_PATHS):
        for name, value in OPERATOR_ANSWER_HEADERS.items():
            response.headers.setdefault(name, value)  # a page's own (its CSP) stays
    return response


def _heartbeat_of(heartbeat: Callable[[], object]) -> Callable[[], None]:
    def beat() -> None:
        try:
            heartbeat()
        except Exception as exc:  # a heartbeat never fails a request; /healthz reports Redis itself
            logger.warning("webhook.heartbeat_failed", extra={"error_type": type(exc).__name__})
    return beat


def _healthz() -> tuple[Response, int]:
    failing = []
    for name, probe in receiver().liveness.items():
        try:
            probe()
        except Exception as exc:
            # The type only: driver messages can carry hosts and user names.
            logger.warning("webhook.health.unreachable", extra={"part": name, "error_type": type(exc).__name__})
            failing.append(name)
    if failing:
        return jsonify(status="unavailable", failing=failing), 503
    return jsonify(status="ok"), 200


def _status() -> tuple[Response, int]:
    state = receiver()
    try:
        details = dict(state.status()) if state.status is not None else {"status": "ok"}
    except Exception:
        logger.exception("webhook.status.failed")
        return jsonify(status="unavailable", error="status check failed"), 503
    with state.lock:
        details.setdefault("rejected_zoho_callbacks", state.counters["rejected_zoho_callbacks"])
    # "degraded" still answers 200: the receiver itself can accept and queue webhooks.
    return jsonify(details), 200


def _metrics() -> Response:
    try:
        body, content_type = current_app.extensions[METRICS_EXTENSION]()
    except Exception:
        logger.exception("webhook.metrics.failed")
        return Response("metrics unavailable; see the receiver's log\n", status=503, content_type="text/plain")
    return Response(body, status=200, content_type=content_type)


def _http_error(exc: HTTPException) -> Response:
    if exc.code == 404:
        message = "no such endpoint"
    elif exc.code == 405 and isinstance(exc, MethodNotAllowed):
        message = f"method not allowed; use {', '.join(sorted(exc.valid_methods or []))}"
    elif exc.code == 413:
        message = f"request body is larger than the {receiver().max_body_bytes} byte limit"
    else:
        message = exc.description or exc.name
    if request.path.startswith("/webhooks/"):  # a refused delivery is worth a line; its body never is
        logger.warning("webhook.refused", extra={"path": request.path, "status": exc.code, "reason": message})
    response = jsonify(error=message)
    response.status_code = exc.code or 500
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    logger.exception("webhook.unexpected_error", extra={"error_type": type(exc).__name__})
    return jsonify(error="internal error"), 500
