"""The Xero and Zoho sandboxes in their own process, seeded for a benchmark, with limits relaxed.

    python bench/support/sandboxes.py --out FILE --tenant NAME:CONTACTS:INVOICES [--tenant ...]
                                      [--org NAME:CONTACTS:INVOICES ...]

Each tenant gets its contacts and invoices (``--lines`` lines each, over a few item codes), an
OAuth grant, and the webhook events Xero would send for them. An org (``--org``) is a large
organisation to import instead: realistic contacts and invoices of 1-5 lines
(connector/sandbox/xero_seed.py), an OAuth grant, and no events. Once serving, everything a
benchmark needs (URLs, client credentials, tokens, events) is written to FILE as JSON; the
process then serves until it is terminated. Xero's and Zoho's limits are raised far out of reach
and no latency is simulated, so only the connector's own overhead is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from connector.sandbox.common import serve  # noqa: E402
from connector.sandbox.xero import XeroSandbox  # noqa: E402
from connector.sandbox.xero_seed import seed_large_org  # noqa: E402
from connector.sandbox.zoho import ZohoSandbox  # noqa: E402

UNLIMITED = 10**9
ITEM_CODES = ("CONSULT", "TRAVEL", "LICENCE", "SUPPORT", "TRAINING", "HARDWARE", "HOSTING", "AUDIT")


def seed_tenant(xero: XeroSandbox, name: str, *, contacts: int, invoices: int, lines: int,
                rng: random.Random) -> tuple[str, list[str], list[str]]:
    tenant_id = xero.add_tenant(name, day_limit=UNLIMITED)
    contact_ids = [xero.create_contact(tenant_id, Name=f"{name} customer {n}",
                                       EmailAddress=f"customer{n}@example.com")["ContactID"]
                   for n in range(max(contacts, 1))]
    invoice_ids = []
    for n in range(invoices):
        line_items = [{"Description": f"Line {k}", "Quantity": rng.randint(1, 5),
                       "UnitAmount": f"{rng.randint(10, 500)}.00", "AccountCode": "200",
                       "ItemCode": rng.choice(ITEM_CODES)} for k in range(lines)]
        invoice_ids.append(xero.create_invoice(tenant_id, contact_ids[n % len(contact_ids)], line_items,
                                               Reference=f"{name}-{n}")["InvoiceID"])
    return tenant_id, contact_ids, invoice_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tenant", action="append", default=[], metavar="NAME:CONTACTS:INVOICES")
    parser.add_argument("--org", action="append", default=[], metavar="NAME:CONTACTS:INVOICES")
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    xero = XeroSandbox(seed=args.seed, minute_limit=UNLIMITED, day_limit=UNLIMITED, concurrent_limit=UNLIMITED,
                       app_minute_limit=UNLIMITED)
    zoho = ZohoSandbox(concurrency_limit=UNLIMITED, sub_concurrency_limit=UNLIMITED)
    with serve(xero, quiet=True) as xero_server, serve(zoho, quiet=True) as zoho_server:
        tenants = {}
        for spec in [*args.tenant, *(f"org={spec}" for spec in args.org)]:
            name, contacts, invoices = spec.rsplit(":", 2)
            seen = len(xero.pending_events())
            if name.startswith("org="):
                name = name.removeprefix("org=")
                tenant_id = xero.add_tenant(name, day_limit=UNLIMITED)
                seed_large_org(xero, tenant_id, contacts=int(contacts), invoices=int(invoices), seed=args.seed)
                seen = None  # an import, not a burst of webhooks
            else:
                tenant_id, _, _ = seed_tenant(xero, name, contacts=int(contacts), invoices=int(invoices),
                                              lines=args.lines, rng=rng)
            grant = xero.issue_grant([tenant_id])
            tenants[name] = {
                "tenant_id": tenant_id,
                "xero_access_token": grant["access_token"],
                "xero_refresh_token": grant["refresh_token"],
                "xero_expires_in": grant["expires_in"],
                "xero_scope": grant.get("scope", ""),
                "zoho_refresh_token": zoho.issue_refresh_token(),
                "events": [] if seen is None else xero.pending_events()[seen:],
            }
        facts = {
            "pid": os.getpid(),
            "xero_url": xero_server.url, "zoho_url": zoho_server.url,
            "xero_client_id": xero.client_id, "xero_client_secret": xero.client_secret,
            "xero_webhook_key": xero.webhook_key,
            "zoho_client_id": zoho.client_id, "zoho_client_secret": zoho.client_secret,
            "tenants": tenants,
        }
        partial = Path(args.out + ".partial")
        partial.write_text(json.dumps(facts))
        partial.replace(args.out)  # readers never see half a file
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
