"""Helpers of the console tests: the receiver with the console on a system, and operator credentials.

The console runs on the embedded system (tests/system.py: the sandboxes over HTTP,
SQLite, fakeredis, the in-process broker), through Flask's test client or a real headless Chromium."""

from __future__ import annotations

import base64
from decimal import Decimal

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


LINES = [{"Description": "Consulting", "Quantity": Decimal(2), "UnitAmount": Decimal("50.00"), "AccountCode": "200", "TaxType": "NONE"}]


def synced_invoice(system, *, contact_name: str = "Harbour Lights Ltd", number: str = "INV-7001") -> tuple[str, str]:
    """A contact and an invoice of it created in the Xero sandbox and synced to Zoho (the CLI's in-process
    replay): (contact id, invoice id)."""
    from workers.cli import main

    contact = system.xero.create_contact(system.tenant_id, Name=contact_name,
                                         EmailAddress="accounts@harbour-lights.example")["ContactID"]
    invoice = system.xero.create_invoice(system.tenant_id, contact, LINES, InvoiceNumber=number)["InvoiceID"]
    cid = str(system.connection_id)
    assert main(["replay", cid, "contact", contact]) == 0
    assert main(["replay", cid, "invoice", invoice]) == 0
    return contact, invoice


def failed_contact(system, name: str, *, error: str = "TransientError") -> str:
    """A contact in the Xero sandbox whose last sync failed (audited as the push would): its id."""
    from connector.store import audit as stages

    contact = system.xero.create_contact(system.tenant_id, Name=name)["ContactID"]
    system.deps.store.audit.record(connection_id=system.connection_id, record_type="contact", record_id=contact,
                                   stage=stages.FAILED, detail={"reason": "Zoho answered 503", "error": error})
    return contact


def csrf_of(page: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
