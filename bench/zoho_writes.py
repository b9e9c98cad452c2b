"""Benchmark: 2,000 Xero contacts and 2,000 invoices (5 lines each) through the embedded pipeline.

Real signed webhooks → receiver → Celery worker (in-process broker) → fetch → buffered batch push
into the Zoho sandbox. Compares the Zoho calls made with the naive way (one write per record and
one per product line). Last line: one JSON object.

    .venv/bin/python -m bench.zoho_writes [--contacts 2000] [--invoices 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from connector.sandbox.common import serve  # noqa: E402
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.xero_seed import seed_demo_org
from connector.sandbox.zoho import ZohoSandbox
from connector.store import audit as stages
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from workers.app import app as celery_app
from workers.demo import TERMINAL, Sandboxes, connect_sandbox_tenant, embedded_settings
from workers.deps import configure
from workers.embedded import EmbeddedWorker, wait_until

LINES_PER_INVOICE = 5


def seed_invoices_with_items(xero: XeroSandbox, tenant_id: str, contact_ids: list[str], count: int) -> list[str]:
    ids = []
    for n in range(count):
        lines = [{"Description": f"Item {k}", "ItemCode": f"ITEM-{k:02d}" if k % 2 == 0 else "",
                  "Quantity": Decimal(k + 1), "UnitAmount": Decimal("19.95") + k, "AccountCode": "200",
                  "TaxType": "OUTPUT" if k % 3 else "NONE"} for k in range(LINES_PER_INVOICE)]
        lines = [{k: v for k, v in line.items() if v != ""} for line in lines]
        ids.append(xero.create_invoice(tenant_id, contact_ids[n % len(contact_ids)], lines)["InvoiceID"])
    return ids


def watch_our_own_writes(deps, connection_id: int, notify_url: str) -> None:
    """A Zoho channel on Accounts and Contacts, as the connect flow registers it."""
    connection = deps.store.connections.get(connection_id)
    [answer] = deps.zoho_client(connection).enable_watch([{
        "channel_id": "1000000068002", "events": ["Accounts.all", "Contacts.all"], "notify_url": notify_url,
        "token": "bench-channel-token"}])
    expiry = answer["details"]["events"][0]["channel_expiry"]
    deps.store.channels.save(connection_id, "1000000068002", token="bench-channel-token",
                             events=["Accounts.all", "Contacts.all"], expires_at=datetime.fromisoformat(expiry))


def run(contacts: int, invoices: int, timeout: float) -> dict:
    celery_app.conf.update(broker_url="memory://", broker_transport_options={"polling_interval": 0.02})
    xero, zoho = XeroSandbox(), ZohoSandbox(concurrency_limit=100, sub_concurrency_limit=100)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-zoho-"))
    with serve(xero) as xero_server, serve(zoho) as zoho_server:
        sandboxes = Sandboxes(xero, zoho, xero_server.url, zoho_server.url)
        deps = configure(embedded_settings(data_dir, sandboxes))
        connection_id, tenant_id = connect_sandbox_tenant(deps, sandboxes, "Bench Ltd")
        contact_ids = seed_demo_org(xero, tenant_id, contacts=contacts)
        invoice_ids = seed_invoices_with_items(xero, tenant_id, contact_ids, invoices)
        naive = sum(1 + len(p["ContactPersons"]) + (1 if p.get("FirstName") else 0)
                    for p in (xero.contact(tenant_id, c) for c in contact_ids)) + invoices * (1 + LINES_PER_INVOICE)
        receiver = create_app(webhook_key=deps.settings.xero_webhook_key, enqueue=celery_enqueuer(celery_app),
                              zoho_channels=deps.store.channels)
        started = time.monotonic()
        with serve(receiver) as receiver_server, EmbeddedWorker(concurrency=4):
            hook = f"{receiver_server.url}/webhooks/xero"
            watch_our_own_writes(deps, connection_id, f"{receiver_server.url}/webhooks/zoho")
            xero.deliver_webhooks(hook)
            audit = deps.store.audit

            def done(kind, ids):
                return all(audit.latest_stage(connection_id, kind, i) in TERMINAL - {stages.FAILED} for i in ids)

            ok = wait_until(lambda: done("invoice", invoice_ids) and done("contact", contact_ids),
                            timeout=timeout, interval=1.0)
            elapsed = time.monotonic() - started
            sync_calls = [c for c in zoho.calls(path_prefix="/crm/v8/") if not c.path.startswith("/crm/v8/settings")]
            # Zoho notifies for every write we made; none of them may travel back to Xero.
            notified = zoho.pending_notifications()
            zoho.deliver_notifications()
            wait_until(lambda: all(audit.latest_stage(connection_id, n["module"], n["ids"][-1]) in TERMINAL
                                   for n in notified), timeout=60, interval=0.5)
            echo_writes = len(xero.calls(path_prefix="/api.xro/2.0/Contacts", method="POST"))
    records = contacts + invoices
    return {
        "ok": ok, "records": records, "zoho_calls": len(sync_calls), "naive_zoho_calls": naive,
        "zoho_calls_per_record": round(len(sync_calls) / records, 4), "echo_writes": echo_writes,
        "seconds": round(elapsed, 1), "records_per_second": round(records / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per sandbox request drowns the figures
    result = run(args.contacts, args.invoices, args.timeout)
    print(f"{result['records']} records in {result['seconds']}s: {result['zoho_calls']} Zoho calls "
          f"(naive: {result['naive_zoho_calls']})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
