"""What reading a batch's customer documents for their Account figures costs the worker: whole documents less
their lines (the earlier read) against documents cut to the keys the money arithmetic reads (``only_keys``),
on PostgreSQL, in the same run. Prints JSON: the worker's CPU (this process) per customer read and figured,
the wall time, and whether both reads give the same figures.

    .venv/bin/python bench/account_documents.py [--customers 300] [--invoices 10] [--rounds 5]

Documents are the Xero sandbox's own renderings (invoices with lines and payments). BENCH_PG_ADMIN_URL
picks the PostgreSQL server (a throwaway database is created and dropped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.system import throwaway_database  # noqa: E402
from connector.clock import ManualClock  # noqa: E402
from connector.json_codec import loads_from_api  # noqa: E402
from connector.mapping.money import MONEY_DOCUMENT_KEYS, money_figures  # noqa: E402
from connector.sandbox.xero import XeroSandbox, to_json  # noqa: E402
from connector.store import Store  # noqa: E402


def seed(store: Store, connection_id: int, customers: int, invoices: int) -> list[str]:
    xero = XeroSandbox(ManualClock())
    tenant = xero.add_tenant("Bench Ltd")
    contacts = []
    for c in range(customers):
        contact = xero.create_contact(tenant, Name=f"Customer {c}")["ContactID"]
        contacts.append(contact)
        records = []
        for n in range(invoices):
            invoice = xero.create_invoice(tenant, contact, [
                {"Description": f"work {line}", "UnitAmount": 10 + line, "Quantity": 1, "AccountCode": "200"}
                for line in range(5)])
            if n % 3 == 0:
                xero.add_payment(tenant, invoice["InvoiceID"], 5, date=datetime(2026, 1, 5).date())
                invoice = xero.invoice(tenant, invoice["InvoiceID"])
            records.append((invoice["InvoiceID"], datetime.now(timezone.utc), loads_from_api(to_json(invoice))))
        store.snapshots.put_many_if_newer(connection_id, "invoices", records)
    return contacts


def figures(store: Store, connection_id: int, contacts: list[str], only_keys) -> tuple[float, float, list]:
    today = datetime(2026, 3, 1).date()
    results = []
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(contacts), 50):
        documents = store.snapshots.customers_documents(connection_id, contacts[start:start + 50],
                                                        without_lines=True, only_keys=only_keys)
        for stored in documents.values():
            results.append(money_figures(invoices=stored["invoices"], credit_notes=stored["creditnotes"],
                                         payments=stored["payments"], overpayments=stored["overpayments"],
                                         prepayments=stored["prepayments"], base_currency=None, today=today))
    return time.process_time() - cpu, time.perf_counter() - wall, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--invoices", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with throwaway_database("mlc_bench_docs") as url:
        store = Store.open(url)
        try:
            connection_id = store.connections.create(name="bench", xero_tenant_id="t-1").id
            contacts = seed(store, connection_id, args.customers, args.invoices)
            runs = {"without_lines": [], "money_keys": []}
            same = True
            for _ in range(args.rounds):  # alternating, so the machine's load falls on both alike
                cpu_a, wall_a, whole = figures(store, connection_id, contacts, None)
                cpu_b, wall_b, cut = figures(store, connection_id, contacts, MONEY_DOCUMENT_KEYS)
                same = same and whole == cut
                runs["without_lines"].append((cpu_a, wall_a))
                runs["money_keys"].append((cpu_b, wall_b))
        finally:
            store.close()
    per = {name: {"worker_cpu_us_per_customer": round(1e6 * min(c for c, _ in r) / len(contacts), 1),
                  "wall_us_per_customer": round(1e6 * min(w for _, w in r) / len(contacts), 1)}
           for name, r in runs.items()}
    print(json.dumps({"customers": len(contacts), "invoices_per_customer": args.invoices, "rounds": args.rounds,
                      **per, "same_figures": same,
                      "cpu_ratio": round(per["money_keys"]["worker_cpu_us_per_customer"]
                                         / per["without_lines"]["worker_cpu_us_per_customer"], 3)}))


if __name__ == "__main__":
    main()
