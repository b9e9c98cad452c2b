"""Operator authentication: one check for every route that starts, completes or changes a
connection, and every status route.

The credential is CONNECTOR_ADMIN_TOKEN, sent as ``Authorization: Bearer <token>`` (scripts) or
as the password of HTTP Basic user ``operator`` (a browser asks for it, which is how a person
runs the OAuth connect flow). Compared in constant time. With no token configured every such
request is refused: fail closed.
"""

from __future__ import annotations

import hmac
from functools import wraps
from typing import Callable

from flask import Response, current_app, jsonify, request

from connector.secret import Secret

OPERATOR_USER = "operator"
REALM = "ml-connector operator"
ADMIN_TOKEN_EXTENSION = "ml_connector.admin_token"


def operator_credentials_match(authorization, token: Secret) -> bool:
    """True when the request's Authorization header carries ``token`` (Bearer, or Basic operator:token)."""
    expected = token.reveal()
    if not expected or authorization is None:
        return False
    if authorization.type == "bearer":
        given_user, given = OPERATOR_USER, authorization.token or ""
    elif authorization.type == "basic":
        given_user, given = authorization.username or "", authorization.password or ""
    else:
        return False
    # Both compared, always, so the answer time does not tell which one was wrong.
    user_ok = hmac.compare_digest(given_user.encode("utf-8"), OPERATOR_USER.encode("utf-8"))
    token_ok = hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
    return user_ok and token_ok


def _refused(message: str) -> tuple[Response, int]:
    response = jsonify(error=message)
    # Basic first: a browser shows its login prompt for it.
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8", Bearer realm="{REALM}"'
    return response, 401


def operator_required(view: Callable) -> Callable:
    @wraps(view)
    def guarded(*args, **kwargs):
        token: Secret = current_app.extensions.get(ADMIN_TOKEN_EXTENSION) or Secret("")
        if not token:
            return _refused("operator routes are disabled: CONNECTOR_ADMIN_TOKEN is not set on the receiver")
        if not operator_credentials_match(request.authorization, token):
            return _refused("operator authentication required (Bearer token, or Basic user 'operator')")
        return view(*args, **kwargs)

    return guarded
