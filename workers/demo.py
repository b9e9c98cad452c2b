"""`connector demo`: the whole pipeline on the embedded default, end to end, in one process.

No Redis, no database server, no credentials: a SQLite file, fakeredis, kombu's in-process
broker with a real Celery worker thread, and the built-in Xero and Zoho sandboxes on loopback.
It seeds a Xero organisation, fires real signed webhooks at the real receiver over HTTP, lets
the pipeline run, delivers every webhook a second time (nothing may change in Zoho), and prints
what each Xero contact became in Zoho. Exit code 0 only if everything synced.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import unicodedata
from decimal import Decimal
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from connector import logs
from typing import TextIO

import requests

from connector.mapping import zoho_fields
from connector.mapping.xero_values import CENT
from connector.queues import EMBEDDED_BROKER_URL
from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.xero_seed import seed_demo_org, seed_invoices
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.settings import Settings
from connector.store import audit as stages
from connector.store.credentials import TokenSet
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from workers.app import app as celery_app
from workers.demo_deals import deal_by_reference, won_deal_invoice
from workers.demo_new_account import new_account_to_xero
from workers.deps import Deps, configure
from workers.embedded import EmbeddedWorker, wait_until

TERMINAL = {stages.WRITTEN, stages.SKIPPED, stages.FAILED, stages.PARKED}
# In every folder a demo made its own: only such a folder (or an empty one) is emptied at the start.
DEMO_MARK = ".connector-demo"


class DemoDirRefused(Exception):
    """The folder cannot be the demo's; the message says why and what to do."""


def default_demo_dir() -> Path:
    """The folder ``demo`` in CONNECTOR_DATA_DIR (default ``var``): demos given their own data dir run side
    by side, and a data dir's own files (mapping.yaml, a database, keys) are never in the folder it empties."""
    return Path(os.environ.get("CONNECTOR_DATA_DIR") or "var") / "demo"


def claim_demo_dir(data_dir: Path):
    """Make ``data_dir`` the demo's and empty it; it stays this demo's while the returned file is open.

    Never empties a folder holding anything but a demo's files (a data dir with someone's database or
    vault keys), nor one another demo is running in (it holds a lock on the mark)."""
    import fcntl

    where = "give it a folder of its own (--data-dir, or CONNECTOR_DATA_DIR)"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        mark = data_dir / DEMO_MARK
        if not mark.exists() and any(data_dir.iterdir()):
            raise DemoDirRefused(f"{data_dir} holds files that are not a demo's, and the demo empties its folder: "
                                 f"{where}, or remove it if an older version's demo left it")
        held = open(mark, "a")
    except OSError as exc:
        raise DemoDirRefused(f"cannot use {data_dir} ({exc.strerror}): {where}") from None
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.close()
        raise DemoDirRefused(f"another demo is running in {data_dir}: wait for it to end, or {where}") from None
    for entry in data_dir.iterdir():
        if entry.name == DEMO_MARK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return held


@dataclass
class Sandboxes:
    xero: XeroSandbox
    zoho: ZohoSandbox
    xero_url: str
    zoho_url: str


def embedded_settings(data_dir: Path, sandboxes: Sandboxes) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{(data_dir / 'connector.db').as_posix()}",
        redis_url=None,
        broker_url=EMBEDDED_BROKER_URL,
        xero_client_id=sandboxes.xero.client_id,
        xero_client_secret=Secret(sandboxes.xero.client_secret),
        xero_webhook_key=Secret(sandboxes.xero.webhook_key),
        xero_api_url=sandboxes.xero_url,
        xero_identity_url=sandboxes.xero_url,
        xero_login_url=sandboxes.xero_url,
        zoho_client_id=sandboxes.zoho.client_id,
        zoho_client_secret=Secret(sandboxes.zoho.client_secret),
        zoho_accounts_url=sandboxes.zoho_url,
    )


def connect_sandbox_tenant(deps: Deps, sandboxes: Sandboxes, tenant_name: str,
                           tenant_id: str | None = None) -> tuple[int, str]:
    """Link a sandbox Xero tenant (a new one unless ``tenant_id`` is given) to the sandbox Zoho org, as
    `connector connect` would after consent."""
    tenant_id = tenant_id or sandboxes.xero.add_tenant(tenant_name)
    connection = deps.store.connections.create(name=tenant_name, xero_tenant_id=tenant_id, xero_tenant_name=tenant_name)
    # The scopes the connector asks for (XERO_SCOPES and offline_access), as a consent would grant them.
    from connector.connect import xero_scopes

    save_sandbox_grants(deps, connection.id, sandboxes.xero.issue_grant([tenant_id], scope=xero_scopes(None, deps.settings)),
                        sandboxes.zoho.issue_refresh_token())
    return connection.id, tenant_id


def save_sandbox_grants(deps: Deps, connection_id: int, xero_grant: dict, zoho_refresh_token: str) -> None:
    """Store what the sandboxes granted a connection: Xero's token set, and only a refresh token for Zoho,
    as after Zoho's consent (the first call refreshes and learns api_domain)."""
    now = deps.clock.now()
    deps.credentials.save(
        connection_id, "xero",
        TokenSet(
            access_token=Secret(xero_grant["access_token"]), refresh_token=Secret(xero_grant["refresh_token"]),
            expires_at=now + timedelta(seconds=int(xero_grant["expires_in"])), scope=xero_grant.get("scope", ""),
        ),
    )
    deps.credentials.save(
        connection_id, "zoho",
        TokenSet(access_token=Secret(""), refresh_token=Secret(zoho_refresh_token), expires_at=now - timedelta(seconds=1)),
    )


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def print_table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        out.write("  ".join(pad(cell, widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def run_demo(*, contacts: int = 25, data_dir: Path | None = None, out: TextIO = sys.stdout, timeout: float = 45.0) -> int:
    data_dir = default_demo_dir() if data_dir is None else data_dir
    try:
        _held = claim_demo_dir(data_dir)  # released when the demo returns
    except DemoDirRefused as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    # The report is the output; log lines (the intent-to-receive check's deliberate bad signatures among
    # them) go to a file beside the database, which the report names.
    log_path = data_dir / "demo.log"
    logs.setup("demo", level=logging.WARNING, log_format="text", stream=open(log_path, "w", encoding="utf-8"))
    # The demo is always embedded, even where REDIS_URL is set for the distributed setup.
    celery_app.conf.update(broker_url=EMBEDDED_BROKER_URL, broker_transport_options={"polling_interval": 0.02})

    xero, zoho = XeroSandbox(), ZohoSandbox()
    with serve(xero) as xero_server, serve(zoho) as zoho_server:
        sandboxes = Sandboxes(xero, zoho, xero_server.url, zoho_server.url)
        deps = configure(embedded_settings(data_dir, sandboxes))
        connection_id, tenant_id = connect_sandbox_tenant(deps, sandboxes, "Aotearoa Outfitters Ltd")
        contact_ids = seed_demo_org(xero, tenant_id, contacts=contacts)
        invoice_ids = seed_invoices(xero, tenant_id, contact_ids, per_contact=1)  # some part- or fully paid
        events = list(xero.pending_events())

        receiver = create_app(
            webhook_key=deps.settings.xero_webhook_key,
            enqueue=celery_enqueuer(celery_app),
            zoho_channels=deps.store.channels,
        )
        with serve(receiver) as receiver_server, EmbeddedWorker(concurrency=4) as worker:
            hook_url = f"{receiver_server.url}/webhooks/xero"
            itr = xero.intent_to_receive(hook_url)
            out.write(f"intent to receive: {'passed' if itr.ok else 'FAILED'}\n")
            statuses = xero.deliver_webhooks(hook_url)
            out.write(f"delivered {len(events)} Xero webhook events in {len(statuses)} signed POSTs: HTTP {sorted(set(statuses))}\n")

            audit = deps.store.audit
            # Each check that fails adds one "check: the records concerned" to the FAILED line.
            failures: list[str] = [] if itr.ok else ["intent to receive: the receiver failed Xero's check"]
            records = [("contact", c, xero.contact(tenant_id, c)["Name"]) for c in contact_ids] + [
                ("invoice", i, xero.invoice(tenant_id, i)["InvoiceNumber"]) for i in invoice_ids]

            def unsettled(passes: int) -> list[str]:
                """The contacts and invoices without ``passes`` outcomes yet (written, skipped, failed, parked)."""
                return [name for kind, xero_id, name in records
                        if sum(e.stage in TERMINAL for e in audit.trail(connection_id, kind, xero_id)) < passes]

            def wait_settled(passes: int, delivery: str) -> None:
                if not wait_until(lambda: not unsettled(passes), timeout=timeout):
                    failures.append(f"{delivery}: not settled within {timeout:.0f}s: {listed(unsettled(passes))}")
                # Every task the delivery caused has run (follow-on pushes included), so no write of the first
                # delivery can be counted as the second's, however slowly the machine runs.
                elif not wait_until(worker.idle, timeout=timeout):
                    failures.append(f"{delivery}: the worker was still busy after {timeout:.0f}s")

            wait_settled(1, "first delivery")
            writes_after_first = len(zoho.writes())
            writes_first = {(kind, x): zoho_writes(audit, connection_id, kind, x) for kind, x, _ in records}

            # Xero may deliver an event twice: the second delivery must change nothing in Zoho.
            body = xero.webhook_body(events)
            requests.post(
                hook_url, data=body, timeout=5,
                headers={"Content-Type": "application/json; charset=utf-8", "x-xero-signature": xero.sign(body)},
            ).raise_for_status()
            wait_settled(2, "duplicate delivery")
            duplicate_writes = len(zoho.writes()) - writes_after_first
            if duplicate_writes:
                calls = Counter(f"{w['module']} {w['op']}" for w in zoho.writes()[writes_after_first:])
                again = [f"{name} ({audit.latest_stage(connection_id, kind, x)})" for kind, x, name in records
                         if zoho_writes(audit, connection_id, kind, x) > writes_first[(kind, x)]]
                failures.append(f"duplicate delivery: wrote {duplicate_writes} more "
                                f"({', '.join(f'{n} {call}' for call, n in calls.items())}) for {listed(again)}")
            def invoices_written() -> bool:
                return all(audit.latest_stage(connection_id, "invoice", i) in (stages.WRITTEN, stages.SKIPPED)
                           for i in invoice_ids)

            # A parked invoice may yet be written by its retry; once the worker is idle no retry is coming, so
            # an invoice Zoho refused is reported then, not after the whole timeout.
            wait_until(lambda: invoices_written() or worker.idle(), timeout=timeout)
            if not invoices_written():
                failures.append("invoices not written or skipped: " + listed([
                    f"{name} ({audit.latest_stage(connection_id, kind, x)})" for kind, x, name in records
                    if kind == "invoice"
                    and audit.latest_stage(connection_id, kind, x) not in (stages.WRITTEN, stages.SKIPPED)]))
            payment_ok, payment, money_rows = payment_by_poll(deps, xero, zoho, connection_id, tenant_id, invoice_ids,
                                                              timeout)
            # The payment's push writes on after its amount shows (the deal, the payment's note): let it
            # finish, so none of its writes is counted as an echo of the two-way edit.
            wait_until(worker.idle, timeout=timeout)
            two_way = two_way_edit(deps, xero, zoho, connection_id, tenant_id, contact_ids,
                                   f"{receiver_server.url}/webhooks/zoho", timeout)
            deal_ok, deal_lines = deal_by_reference(deps, xero, zoho, connection_id, tenant_id, contact_ids,
                                                    hook_url, timeout)
            wait_until(worker.idle, timeout=timeout)
            won_ok, won_lines = won_deal_invoice(deps, xero, zoho, connection_id, tenant_id, contact_ids,
                                                 f"{receiver_server.url}/webhooks/zoho", timeout)
            wait_until(worker.idle, timeout=timeout)
            new_ok, new_lines = new_account_to_xero(deps, xero, zoho, connection_id, tenant_id,
                                                    f"{receiver_server.url}/webhooks/zoho", hook_url, worker.idle,
                                                    timeout)

        rows, unsynced = collect_rows(deps, xero, zoho, connection_id, tenant_id, contact_ids)
        synced = len(contact_ids) - len(unsynced)

    print_table(rows, out)
    elapsed = time.monotonic() - started
    invoice_rows, invoice_lines, invoices_unsynced = invoice_summary(deps, xero, zoho, connection_id, tenant_id,
                                                                     invoice_ids)
    invoices_synced = len(invoice_ids) - len(invoices_unsynced)
    out.write("\n")
    print_table(invoice_rows[:11], out)
    out.write(f"\n{invoices_synced}/{len(invoice_ids)} Xero invoices synced with {invoice_lines} lines; "
              f"totals, amounts paid and due match Xero to the cent\n")
    out.write(f"payment: {payment}\n")
    out.write("\nAccount money in Zoho (computed from Xero's stored records), before -> after the payment:\n")
    print_table(money_rows, out)
    two_way_ok, two_way = two_way
    out.write(f"two-way: {two_way}\n")
    out.write("".join(f"{line}\n" for line in deal_lines))
    if not deal_ok:
        failures.append(f"deal by reference: {deal_lines[-1]}")
    out.write("".join(f"{line}\n" for line in won_lines))
    if not won_ok:
        failures.append(f"won deal: {won_lines[-1]}")
    out.write("".join(f"{line}\n" for line in new_lines))
    if not new_ok:
        failures.append(new_lines[-1])
    if unsynced:
        failures.append(f"contacts not synced to Zoho: {listed(unsynced)}")
    if invoices_unsynced:
        failures.append(f"invoices missing or off in Zoho (lines, total, paid, due): {listed(invoices_unsynced)}")
    if not payment_ok:
        failures.append(f"payment by poll: {payment}")
    if not two_way_ok:
        failures.append(f"two-way edit: {two_way}")
    out.write(
        f"\n{synced}/{len(contact_ids)} Xero contacts synced to Zoho; "
        f"{writes_after_first} Zoho write calls; duplicate delivery wrote {duplicate_writes} more; "
        f"{elapsed:.1f}s\n"
    )
    out.write(f"log lines (warnings and errors): {log_path}\n")
    out.write(f"FAILED: {'; '.join(failures)}\n" if failures else "OK\n")
    return 1 if failures else 0


def zoho_writes(audit, connection_id: int, kind: str, xero_id: str) -> int:
    """How many pushes of the record ended written or failed (refused by Zoho, say): a duplicate delivery
    should add neither."""
    return sum(e.stage in (stages.WRITTEN, stages.FAILED) for e in audit.trail(connection_id, kind, xero_id))


def listed(names: list[str], limit: int = 10) -> str:
    """The first ``limit`` names, and how many more: one readable line whatever the count."""
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "") if names else "no record named"


def collect_rows(deps: Deps, xero, zoho, connection_id: int, tenant_id: str, contact_ids: list[str]):
    """One row per Xero contact, checked against what the Zoho sandbox actually holds; (rows, names of the
    contacts that did not sync)."""
    rows = [["Xero contact", "Zoho Account", "Zoho Contacts", "audit"]]
    unsynced = []
    audit, links = deps.store.audit, deps.store.links
    for cid in contact_ids:
        contact = xero.contact(tenant_id, cid)
        trail = audit.trail(connection_id, "contact", cid)
        # Two pushes of one contact may race (its own, and an invoice's that needs it first): the
        # loser audits "skipped" for the write the winner made, so "written" anywhere is the test.
        first_terminal = stages.WRITTEN if any(e.stage == stages.WRITTEN for e in trail) else next(
            (e.stage for e in trail if e.stage in TERMINAL), "pending")
        link = links.get(connection_id, "contact", cid)
        account = zoho.record("Accounts", link.zoho_id) if link else None
        people = [
            r for r in zoho.records("Contacts")
            if account is not None and (r.get("Account_Name") or {}).get("id") == account["id"]
        ]
        ok = (
            account is not None
            and account.get(zoho_fields.ACCOUNT_XERO_ID) == cid
            and first_terminal == stages.WRITTEN
            and audit.latest_stage(connection_id, "contact", cid) in (stages.WRITTEN, stages.SKIPPED)
        )
        if not ok:
            unsynced.append(contact["Name"])
        names = ", ".join(
            " ".join(filter(None, [p.get("First_Name"), p.get("Last_Name")])) for p in people
        ) or "-"
        rows.append([
            contact["Name"][:40],
            account["id"] if account else "missing",
            f"{len(people)}: {names}"[:60],
            f"{first_terminal} → {audit.latest_stage(connection_id, 'contact', cid)}",
        ])
    return rows, unsynced


# --- invoices with lines, payments, and a two-way contact edit ------------------------------------


def invoice_summary(deps: Deps, xero, zoho, connection_id: int, tenant_id: str, invoice_ids: list[str]):
    """(table rows, lines in Zoho, numbers of the invoices missing in Zoho or whose lines, totals or amounts
    differ from Xero's to the cent)."""
    rows = [["Xero invoice", "customer", "lines", "Xero total", "Zoho total", "paid", "due", "Zoho status"]]
    lines = 0
    unsynced = []
    for invoice_id in invoice_ids:
        link = deps.store.links.get(connection_id, "invoice", invoice_id)
        record = zoho.record("Invoices", link.zoho_id) if link else None
        source = xero.invoice(tenant_id, invoice_id)
        if record is None:
            rows.append([source["InvoiceNumber"], source["Contact"]["Name"][:28], "-", str(source["Total"]),
                         "missing", "", "", ""])
            unsynced.append(source["InvoiceNumber"])
            continue
        lines += len(record["Invoiced_Items"])
        if not (all(Decimal(str(record[z])).quantize(CENT) == Decimal(str(source[x])).quantize(CENT) for z, x in (
                ("Grand_Total", "Total"), (zoho_fields.INVOICE_AMOUNT_PAID, "AmountPaid"),
                (zoho_fields.INVOICE_AMOUNT_DUE, "AmountDue")))
                and len(record["Invoiced_Items"]) == len(source["LineItems"])):
            unsynced.append(source["InvoiceNumber"])
        rows.append([source["InvoiceNumber"], source["Contact"]["Name"][:28], str(len(record["Invoiced_Items"])),
                     *(money(v) for v in (source["Total"], record["Grand_Total"],
                                          record[zoho_fields.INVOICE_AMOUNT_PAID], record[zoho_fields.INVOICE_AMOUNT_DUE])),
                     str(record.get("Status", ""))])
    return rows, lines, unsynced


def money(value) -> str:
    return str(Decimal(str(value)).quantize(CENT))


def payment_by_poll(deps: Deps, xero, zoho, connection_id: int, tenant_id: str, invoice_ids: list[str],
                    timeout: float) -> tuple[bool, str, list[list[str]]]:
    """Xero sends no payment webhooks: a payment made now reaches Zoho through the beat's poll, on the
    invoice and on its customer's Account. Also returns the money table of a few Accounts, before and after."""
    from workers.xero_tasks import poll_xero

    invoice_id = next(i for i in invoice_ids if Decimal(str(xero.invoice(tenant_id, i)["AmountDue"])) > 1)
    invoice = xero.invoice(tenant_id, invoice_id)
    payer = invoice["Contact"]["ContactID"]
    shown = list(dict.fromkeys([payer, *(xero.invoice(tenant_id, i)["Contact"]["ContactID"] for i in invoice_ids)]))[:3]
    before = {cid: account_money_row(deps, zoho, connection_id, cid) for cid in shown}
    amount = (Decimal(str(invoice["AmountDue"])) / 2).quantize(CENT)
    xero.add_payment(tenant_id, invoice_id, amount)
    expected_paid = Decimal(str(xero.invoice(tenant_id, invoice_id)["AmountPaid"]))
    expected_owed = Decimal(str(xero.contact(tenant_id, payer)["Balances"]["AccountsReceivable"]["Outstanding"]))
    poll_xero.apply_async(args=[connection_id, ["payments"]])  # what the schedule queues when payments are due

    def paid_in_zoho() -> bool:
        link = deps.store.links.get(connection_id, "invoice", invoice_id)
        record = zoho.record("Invoices", link.zoho_id) if link else None
        account = account_record(deps, zoho, connection_id, payer)
        return (record is not None and Decimal(str(record[zoho_fields.INVOICE_AMOUNT_PAID])) == expected_paid
                and account is not None and account.get(zoho_fields.ACCOUNT_OUTSTANDING) is not None
                and Decimal(str(account[zoho_fields.ACCOUNT_OUTSTANDING])) == expected_owed)

    ok = wait_until(paid_in_zoho, timeout=timeout)
    rows = [["Account", "status", "outstanding", "overdue", "invoiced", "last payment"]]
    for cid in shown:
        after = account_money_row(deps, zoho, connection_id, cid)
        rows.append([after[0], *(b if b == a else f"{b} -> {a}" for b, a in zip(before[cid][1:], after[1:]))])
    return ok, (f"{amount} paid on {invoice['InvoiceNumber']} in Xero (no webhook) reached Zoho by the "
                f"If-Modified-Since poll: paid {expected_paid}, the Account owes {expected_owed}" if ok
                else f"FAILED: the payment of {amount} on {invoice['InvoiceNumber']} did not reach Zoho"), rows


def account_record(deps: Deps, zoho, connection_id: int, contact_id: str) -> dict | None:
    link = deps.store.links.get(connection_id, "contact", contact_id)
    return zoho.record("Accounts", link.zoho_id) if link else None


def account_money_row(deps: Deps, zoho, connection_id: int, contact_id: str) -> list[str]:
    """An Account's money fields as the Zoho sandbox holds them: name, status, amounts, last payment."""
    account = account_record(deps, zoho, connection_id, contact_id) or {}

    def amount(field: str) -> str:
        value = account.get(field)
        return "-" if value is None else money(value)

    last = account.get(zoho_fields.ACCOUNT_LAST_PAYMENT_DATE)
    return [str(account.get("Account_Name", contact_id)), str(account.get(zoho_fields.ACCOUNT_PAYMENT_STATUS, "-")),
            amount(zoho_fields.ACCOUNT_OUTSTANDING), amount(zoho_fields.ACCOUNT_OVERDUE),
            amount(zoho_fields.ACCOUNT_TOTAL_INVOICED),
            f"{amount(zoho_fields.ACCOUNT_LAST_PAYMENT_AMOUNT)} on {last}" if last else "-"]


def two_way_edit(deps: Deps, xero, zoho, connection_id: int, tenant_id: str, contact_ids: list[str],
                 notify_url: str, timeout: float) -> tuple[bool, str]:
    """A salesperson renames a person in Zoho: it reaches Xero once, and nothing echoes either way."""
    connection = deps.store.connections.get(connection_id)
    token = "demo-channel-token"
    [answer] = deps.zoho_client(connection).enable_watch([{
        "channel_id": "1000000068003", "events": ["Contacts.edit"], "notify_url": notify_url, "token": token}])
    deps.store.channels.save(connection_id, "1000000068003", token=token, events=["Contacts.edit"],
                             expires_at=datetime.fromisoformat(answer["details"]["events"][0]["channel_expiry"]))
    person = next((r for r in zoho.records("Contacts") if r.get("First_Name") and r.get("Last_Name")), None)
    if person is None:
        return False, "FAILED: no Zoho contact with a first and last name to edit (the contacts did not sync)"
    contact_id = person[zoho_fields.CONTACT_PERSON_KEY].split(":", 1)[0]
    zoho_writes = len(zoho.writes())
    zoho.person_edit("Contacts", person["id"], Last_Name="Te Whare")
    zoho.deliver_notifications()

    def in_xero() -> bool:
        contact = xero.contact(tenant_id, contact_id)
        return "Te Whare" in [contact.get("LastName"), *[p.get("LastName") for p in contact["ContactPersons"]]]

    if not wait_until(in_xero, timeout=timeout):
        return False, f"FAILED: the Zoho edit of {person['Full_Name']} did not reach Xero"
    trail_before = len(deps.store.audit.trail(connection_id, "contact", contact_id))
    xero.deliver_webhooks(notify_url.replace("/webhooks/zoho", "/webhooks/xero"))  # Xero's event for our write
    wait_until(lambda: [e.stage for e in deps.store.audit.trail(connection_id, "contact", contact_id)][
        trail_before:][-1:] == [stages.SKIPPED], timeout=timeout)
    xero_writes = len(xero.calls(path_prefix="/api.xro/2.0/Contacts", method="POST"))
    echoed = len(zoho.writes()) - zoho_writes
    return xero_writes == 1 and echoed == 0, (f"Zoho edit of {person['Full_Name']} -> Last_Name 'Te Whare' reached Xero in {xero_writes} write; "
            f"echo writes back to Zoho: {echoed}")
