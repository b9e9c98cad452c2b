"""Helpers of the console tests: the receiver with the console on a system, and operator credentials.

The console runs on the embedded system (tests/system.py: the sandboxes over HTTP,
SQLite, fakeredis, the in-process broker), through Flask's test client or a real headless Chromium."""

from __future__ import annotations

import base64

from connector.operator_console import ConsoleData
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from workers.app import app as celery_app

ADMIN_TOKEN = "console-admin-token-0123456789abcdef"


def basic(token: str = ADMIN_TOKEN, user: str = "operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def console_app(system, *, admin_token: str = ADMIN_TOKEN):
    """The receiver as webhooks/wsgi.py composes it, on ``system``'s deps, with the console."""
    return create_app(webhook_key=system.xero.webhook_key, enqueue=celery_enqueuer(celery_app),
                      zoho_channels=system.deps.store.channels, admin_token=admin_token,
                      console=ConsoleData(system.deps))
