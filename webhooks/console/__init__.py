"""The operator console: server-rendered pages on the receiver (connections, records, failures, mapping).

Every page is the operator's only (webhooks.auth: CONNECTOR_ADMIN_TOKEN, Bearer or Basic user ``operator``;
refused to everyone when unset). Every change is a POST carrying a CSRF token: a signature, keyed by the
admin token, that a page of this console embeds and no other site can mint or read (itsdangerous, which
Flask already depends on; it compares signatures in constant time). The pages read ``ConsoleData``
(connector/operator_console.py) and their forms call it or enqueue a task: no API call in a request.

The routes live in one module per page group (connections.py, records.py, failures.py, mapping.py, and
connect.py); webhooks/app.py imports them before registering ``console_blueprint``.
"""

from __future__ import annotations

from functools import wraps
from typing import Callable

from flask import Blueprint, Response, current_app, render_template, request
from itsdangerous import BadData, URLSafeTimedSerializer

from webhooks.auth import ADMIN_TOKEN_EXTENSION, operator_required

console_blueprint = Blueprint("console", __name__, url_prefix="/console")
CONSOLE_EXTENSION = "ml_connector.console"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE_SECONDS = 12 * 3600  # a page left open over a working day still submits
# The pages name connections, records and people: no cache keeps them, no other site frames them, and they
# load nothing from anywhere (inline CSS and SVG only, no script).
PAGE_HEADERS = {
    "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}
NAVIGATION = (("connect", "Connect", "/console/connect"), ("connections", "Connections", "/console/"),
              ("records", "Records", "/console/records"), ("failures", "Failures", "/console/failures"),
              ("mapping", "Mapping", "/console/mapping"))


def console_data():
    """The console's reads and changes (connector.operator_console.ConsoleData)."""
    return current_app.extensions[CONSOLE_EXTENSION]


def _signer() -> URLSafeTimedSerializer:
    # Keyed by the operator's credential: a token is good only on a receiver holding the same admin token,
    # and stops working when the token is rotated.
    return URLSafeTimedSerializer(current_app.extensions[ADMIN_TOKEN_EXTENSION].reveal(), salt="console-csrf")


def csrf_token() -> str:
    return _signer().dumps("operator")


def csrf_valid(token: str | None) -> bool:
    if not token:
        return False
    try:
        return _signer().loads(token, max_age=CSRF_MAX_AGE_SECONDS) == "operator"
    except BadData:
        return False


def page(template: str, *, section: str, status: int = 200, **context) -> Response:
    """A console page: the layout (navigation, the CSRF token for its forms) around ``template``."""
    body = render_template(template, section=section, navigation=NAVIGATION, csrf_field=CSRF_FIELD,
                           csrf_token=csrf_token(), **context)
    return Response(body, status=status, mimetype="text/html", headers=PAGE_HEADERS)


def console_page(view: Callable) -> Callable:
    """A console route: the operator only; a POST only with a valid CSRF token (403 and what to do otherwise)."""

    @wraps(view)
    def guarded(*args, **kwargs):
        if request.method == "POST" and not csrf_valid(request.form.get(CSRF_FIELD)):
            return page("console/refused.html", section="", status=403,
                        message="This form is out of date or did not come from the console. Reload the page and "
                                "submit it again.")
        return view(*args, **kwargs)

    return operator_required(guarded)
