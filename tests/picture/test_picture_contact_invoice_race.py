"""An invoice pushed while its contact is being pushed is written once, with its Account and Contact lookups.

Contacts and invoices arrive in separate webhooks and are pushed by separate tasks, often at the same
moment. An invoice carries two lookups from its contact's links: Account_Name (the contact's Account)
and Contact_Name (its primary person). Were the invoice mapped while the contact's Account was linked
but its people were not yet, the first write would lack Contact_Name and every later push would write
the invoice again. Real Redis, the sandboxes over HTTP, SQLite and PostgreSQL; the pushes run in threads.
"""

from __future__ import annotations

import logging
import random
import threading

import pytest

from connector.sandbox.xero_seed import seed_demo_org, seed_invoices
from connector.store import audit as stages
from workers.embedded import wait_until


class _Push(threading.Thread):
    def __init__(self, picture, resource: str, ids: list[str], start_gate: threading.Event | None = None,
                 jitter: float = 0.0):
        super().__init__(daemon=True)
        self.picture, self.resource, self.ids = picture, resource, ids
        self.start_gate, self.jitter = start_gate, jitter
        self.outcome, self.error = None, None

    def run(self):
        try:
            push = self.picture.push()
            if self.start_gate is not None:
                self.start_gate.wait()
                if self.jitter:
                    threading.Event().wait(self.jitter)  # lands somewhere inside the contact push
            self.outcome = push.contacts(self.ids) if self.resource == "contacts" else push.invoices(self.ids)
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.fixture(params=["sqlite", "postgresql"])
def any_picture(request, make_system):
    if request.param == "sqlite":
        return make_system()
    return make_system(database_url=request.getfixturevalue("pg_database_url"))


def _lookups_of(picture, invoice_id: str) -> tuple[str | None, str | None]:
    """(Account_Name id, Contact_Name id) of the invoice as Zoho holds it."""
    link = picture.deps.store.links.get(picture.connection_id, "invoice", invoice_id)
    record = picture.zoho.record("Invoices", link.zoho_id)
    return (record.get("Account_Name") or {}).get("id"), (record.get("Contact_Name") or {}).get("id")


def _expected_lookups(picture, contact_id: str) -> tuple[str, str]:
    links = picture.deps.store.links
    account = links.get(picture.connection_id, "contact", contact_id)
    primary = links.get(picture.connection_id, "contact_person", f"{contact_id}:primary")
    assert account is not None and primary is not None, "the contact and its primary person are linked"
    return account.zoho_id, primary.zoho_id


def _assert_a_second_push_writes_nothing(picture, contacts: list[str], invoices: list[str]) -> None:
    writes = len(picture.zoho.writes())
    again_contacts = picture.push().contacts(contacts)
    again_invoices = picture.push().invoices(invoices)
    assert again_contacts.written == [] and again_invoices.written == [], (again_contacts, again_invoices)
    assert len(picture.zoho.writes()) == writes
    for invoice_id in invoices:
        assert picture.deps.store.audit.latest_stage(picture.connection_id, "invoice", invoice_id) == stages.SKIPPED


def test_an_invoice_pushed_between_its_contacts_account_and_people_writes_waits_for_them(any_picture, caplog):
    picture = any_picture
    caplog.set_level(logging.INFO, logger="connector.record_locks")
    [contact] = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    [invoice] = seed_invoices(picture.xero, picture.tenant_id, [contact], per_contact=1)
    picture.fetch("contacts", [contact])
    picture.fetch("invoices", [invoice])

    # The contact push stops between its Accounts write and its Contacts (people) write.
    held = picture.zoho.faults.hold_next(path_prefix="/crm/v8/Contacts/upsert")
    contact_push = _Push(picture, "contacts", [contact])
    contact_push.start()
    assert held.wait_reached(), "the contact push never wrote its people"
    invoice_push = _Push(picture, "invoices", [invoice])
    invoice_push.start()
    # The invoice push either finishes (nothing orders it after the contact's write) or waits its turn.
    assert wait_until(lambda: not invoice_push.is_alive()
                      or any("zoho.records_busy" in r.getMessage() for r in caplog.records), timeout=30)
    held.release()
    contact_push.join(60)
    invoice_push.join(60)
    assert not contact_push.is_alive() and not invoice_push.is_alive()
    assert contact_push.error is None and invoice_push.error is None, (contact_push.error, invoice_push.error)

    assert invoice_push.outcome.written == [invoice]
    assert _lookups_of(picture, invoice) == _expected_lookups(picture, contact)
    assert len(picture.zoho.writes("Invoices")) == 1  # the first write was already right
    _assert_a_second_push_writes_nothing(picture, [contact], [invoice])


def test_contacts_and_invoices_pushed_at_once_write_every_invoice_right_the_first_time(any_picture):
    """The demo's push path, many times over: a contact push and an invoice push of the same records
    race, the invoice push starting at a random moment inside the contact push."""
    picture = any_picture
    rng = random.Random(17)
    attempts, per_attempt = 12, 4
    seeded = seed_demo_org(picture.xero, picture.tenant_id, contacts=attempts * per_attempt)
    for attempt in range(attempts):
        contacts = seeded[attempt * per_attempt:(attempt + 1) * per_attempt]
        invoices = seed_invoices(picture.xero, picture.tenant_id, contacts, per_contact=1, seed=attempt)
        picture.fetch("contacts", contacts)
        picture.fetch("invoices", invoices)
        invoice_writes = len(picture.zoho.writes("Invoices"))
        # People are written a moment after their Accounts, as a loaded machine would.
        picture.zoho.faults.fail_next(latency=True, delay=0.2, path_prefix="/crm/v8/Contacts/upsert")
        gate = threading.Event()
        pushes = [_Push(picture, "contacts", contacts, gate),
                  _Push(picture, "invoices", invoices, gate, jitter=rng.uniform(0.0, 0.3))]
        for push in pushes:
            push.start()
        gate.set()
        for push in pushes:
            push.join(90)
        assert not any(p.is_alive() for p in pushes)
        assert [p.error for p in pushes] == [None, None], f"attempt {attempt}"

        for invoice in invoices:
            contact = picture.xero.invoice(picture.tenant_id, invoice)["Contact"]["ContactID"]
            assert _lookups_of(picture, invoice) == _expected_lookups(picture, contact), f"attempt {attempt}"
        assert len(picture.zoho.writes("Invoices")) == invoice_writes + 1, f"attempt {attempt}: one Invoices upsert"
        _assert_a_second_push_writes_nothing(picture, contacts, invoices)
