"""A burst of 1,000 invoice webhook events for one tenant, through the real receiver and pipeline.

Embedded like `connector demo` (in-process broker, a real Celery worker thread, fakeredis, SQLite)
against the Xero sandbox with Xero's real limits: 60 calls a minute, 5 in flight, 5,000 a day.
The events hold duplicates (Xero may deliver twice) and updates delivered out of order. The
figures come from the sandbox's own request log, i.e. what Xero would have seen, and are compared
with the naive way webhook-driven connectors work: one GET per event.

    .venv/bin/python bench/xero_burst.py [--invoices 500] [--updates 300] [--duplicates 200]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.sandbox.common import serve  # noqa: E402
from connector.sandbox.xero import XeroSandbox, max_calls_in_window, max_in_flight  # noqa: E402
from connector.sandbox.zoho import ZohoSandbox  # noqa: E402
from connector.store import audit as stages  # noqa: E402
from webhooks import create_app  # noqa: E402
from webhooks.enqueue import celery_enqueuer  # noqa: E402
from workers.app import app as celery_app  # noqa: E402
from workers.demo import Sandboxes, connect_sandbox_tenant, embedded_settings  # noqa: E402
from workers.deps import configure  # noqa: E402
from workers.embedded import EmbeddedWorker, wait_until  # noqa: E402

API = "/api.xro/2.0"
EVENTS_PER_POST = 20  # Xero batches events per POST (https://developer.xero.com/documentation/webhooks/overview)
LINE = [{"Description": "Consulting", "Quantity": 2, "UnitAmount": "150.00", "AccountCode": "200"}]


def build_events(xero: XeroSandbox, tenant_id: str, *, invoices: int, updates: int, duplicates: int,
                 rng: random.Random) -> tuple[list[dict], list[str]]:
    contacts = [xero.create_contact(tenant_id, Name=f"Burst Customer {n}")["ContactID"] for n in range(10)]
    invoice_ids = [xero.create_invoice(tenant_id, rng.choice(contacts), LINE)["InvoiceID"] for _ in range(invoices)]
    for _ in range(updates):
        xero.update_invoice(tenant_id, rng.choice(invoice_ids), Reference=f"PO-{rng.randrange(10**6)}")
    events = [e for e in xero.pending_events() if e["eventCategory"] == "INVOICE"]
    events += [rng.choice(events) for _ in range(duplicates)]  # delivered twice
    rng.shuffle(events)  # an UPDATE may now arrive before its CREATE, or an older UPDATE after a newer one
    return events, invoice_ids


def deliver(xero: XeroSandbox, url: str, events: list[dict]) -> list[int]:
    statuses = []
    for start in range(0, len(events), EVENTS_PER_POST):
        body = xero.webhook_body(events[start:start + EVENTS_PER_POST])
        answer = requests.post(url, data=body, timeout=10, headers={
            "Content-Type": "application/json; charset=utf-8", "x-xero-signature": xero.sign(body)})
        statuses.append(answer.status_code)
    return statuses


def run(*, invoices: int, updates: int, duplicates: int, data_dir: Path, timeout: float) -> dict:
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per sandbox request is noise here
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.conf.update(broker_url="memory://", broker_transport_options={"polling_interval": 0.02})
    rng = random.Random(3)
    xero, zoho = XeroSandbox(seed=3), ZohoSandbox()  # Xero's real limits: 60/min, 5 in flight, 5,000/day
    with serve(xero) as xero_server, serve(zoho) as zoho_server:
        deps = configure(embedded_settings(data_dir, Sandboxes(xero, zoho, xero_server.url, zoho_server.url)))
        connection_id, tenant_id = connect_sandbox_tenant(deps, Sandboxes(xero, zoho, xero_server.url,
                                                                          zoho_server.url), "Burst Ltd")
        events, invoice_ids = build_events(xero, tenant_id, invoices=invoices, updates=updates,
                                           duplicates=duplicates, rng=rng)
        receiver = create_app(webhook_key=deps.settings.xero_webhook_key, enqueue=celery_enqueuer(celery_app),
                              zoho_channels=deps.store.channels)
        snapshots, audit = deps.store.snapshots, deps.store.audit

        def newest_fetched(invoice_id: str) -> bool:
            snapshot = snapshots.get(connection_id, "invoices", invoice_id)
            return snapshot is not None and snapshot.payload["UpdatedDateUTC"] == \
                xero.invoice(tenant_id, invoice_id)["UpdatedDateUTC"]

        def synced(invoice_id: str) -> bool:
            return audit.latest_stage(connection_id, "invoice", invoice_id) in (stages.WRITTEN, stages.SKIPPED)

        with serve(receiver) as receiver_server, EmbeddedWorker(concurrency=4):
            started = time.monotonic()
            statuses = deliver(xero, f"{receiver_server.url}/webhooks/xero", events)
            delivered_seconds = time.monotonic() - started
            all_fetched = wait_until(lambda: all(newest_fetched(i) for i in invoice_ids), timeout=timeout,
                                     interval=0.25)
            fetched_seconds = time.monotonic() - started
            all_synced = wait_until(lambda: all(synced(i) for i in invoice_ids), timeout=timeout, interval=0.25)
            drain_seconds = time.monotonic() - started

    calls = xero.calls(path_prefix=API, tenant=tenant_id)
    records = len(invoice_ids)
    return {
        "events": len(events),
        "records": records,
        "webhook_posts": len(statuses),
        "webhook_statuses": sorted(set(statuses)),
        "xero_calls": len(calls),
        "naive_xero_calls": len(events),
        "calls_per_record": round(len(calls) / records, 4),
        "naive_calls_per_record": round(len(events) / records, 4),
        "max_calls_any_60s": max_calls_in_window(calls, 60.0),
        "max_in_flight": max_in_flight(calls),
        "http_429": sum(1 for r in calls if r.status == 429),
        "records_fetched_newest": sum(1 for i in invoice_ids if newest_fetched(i)),
        "records_synced_to_zoho": sum(1 for i in invoice_ids if synced(i)),
        "all_fetched": all_fetched,
        "all_synced": all_synced,
        "delivered_seconds": round(delivered_seconds, 2),
        "fetched_seconds": round(fetched_seconds, 2),
        "drain_seconds": round(drain_seconds, 2),
        "batch_window_seconds": deps.settings.xero_batch_window,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=500)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--duplicates", type=int, default=200)
    parser.add_argument("--data-dir", default="var/bench-xero-burst")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    figures = run(invoices=args.invoices, updates=args.updates, duplicates=args.duplicates,
                  data_dir=Path(args.data_dir), timeout=args.timeout)
    print(f"{figures['events']} events for {figures['records']} invoices: {figures['xero_calls']} Xero calls "
          f"(naive: {figures['naive_xero_calls']}), {figures['calls_per_record']} per record, "
          f"at most {figures['max_calls_any_60s']} in any 60 s and {figures['max_in_flight']} in flight, "
          f"{figures['http_429']} HTTP 429; fetched in {figures['fetched_seconds']} s, "
          f"synced {figures['records_synced_to_zoho']}/{figures['records']} in {figures['drain_seconds']} s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
