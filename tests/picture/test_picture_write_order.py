"""Writes to one Zoho record are ordered: an older Xero version never lands after a newer one.

Real PostgreSQL and Redis; two pushes race in threads. The older push's write is held open in the
Zoho sandbox while the newer version is fetched and pushed, then let through.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

import pytest

from connector.sandbox.xero_seed import seed_demo_org
from workers.embedded import wait_until


class _Push(threading.Thread):
    def __init__(self, picture, resource, xero_id):
        super().__init__(daemon=True)
        self.picture, self.resource, self.xero_id, self.error = picture, resource, xero_id, None

    def run(self):
        try:
            getattr(self.picture.push(), self.resource)([self.xero_id])
        except BaseException as exc:  # reported by the test
            self.error = exc


def _race(picture, caplog, resource: str, xero_id: str, path_prefix: str, change) -> None:
    """Two pushes of one record race: the older version's write (to ``path_prefix``) is held open in the
    Zoho sandbox while ``change()`` edits the record in Xero and the newer version is fetched and pushed,
    then let through. Both pushes end, neither with an error."""
    caplog.set_level(logging.INFO, logger="connector.record_locks")
    picture.fetch(resource, [xero_id])
    held = picture.zoho.faults.hold_next(path_prefix=path_prefix)
    older = _Push(picture, resource, xero_id)
    older.start()
    assert held.wait_reached(), "the older push never wrote"

    change()
    picture.fetch(resource, [xero_id])
    newer = _Push(picture, resource, xero_id)
    newer.start()
    # The newer push either finishes (nothing orders it after the held write) or waits its turn.
    assert wait_until(lambda: not newer.is_alive() or any("zoho.records_busy" in r.getMessage()
                                                          for r in caplog.records), timeout=30)
    held.release()
    older.join(30)
    newer.join(60)
    assert not older.is_alive() and not newer.is_alive()
    assert older.error is None and newer.error is None, (older.error, newer.error)


@pytest.fixture
def pg_picture(make_system, pg_database_url):
    return make_system(database_url=pg_database_url)


def test_a_push_of_an_older_version_never_lands_after_the_newer_one(pg_picture, caplog):
    picture = pg_picture
    [contact] = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    picture.sync("contacts", [contact])
    picture.xero.update_contact(picture.tenant_id, contact, Name="Kea Older Name Ltd")

    _race(picture, caplog, "contacts", contact, "/crm/v8/Accounts/upsert",
          lambda: picture.xero.update_contact(picture.tenant_id, contact, Name="Kea Newer Name Ltd"))

    link = picture.deps.store.links.get(picture.connection_id, "contact", contact)
    account = picture.zoho.record("Accounts", link.zoho_id)
    assert account["Account_Name"] == "Kea Newer Name Ltd"
    snapshot = picture.deps.store.snapshots.get(picture.connection_id, "contacts", contact)
    assert link.source_updated_at == snapshot.source_updated_at
    assert len(picture.zoho.records("Accounts")) == 1


def test_racing_pushes_of_an_invoice_never_double_its_lines(pg_picture, caplog):
    picture = pg_picture
    [contact] = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    line = {"Description": "Consulting", "Quantity": Decimal(1), "UnitAmount": Decimal("100.00"),
            "AccountCode": "200", "TaxType": "NONE"}
    # A new invoice: both pushes find no id link, so each would create it with all its lines.
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, [line, {**line, "Description": "Travel"}])[
        "InvoiceID"]

    _race(picture, caplog, "invoices", invoice_id, "/crm/v8/Invoices/upsert",
          lambda: picture.xero.update_invoice(picture.tenant_id, invoice_id, LineItems=[
              line, {**line, "Description": "Travel"},
              {**line, "Description": "Materials", "UnitAmount": Decimal("7.25")}]))

    [record] = picture.zoho.records("Invoices")
    source = picture.xero.invoice(picture.tenant_id, invoice_id)
    assert [item["Description"] for item in record["Invoiced_Items"]] == ["Consulting", "Travel", "Materials"]
    assert Decimal(str(record["Grand_Total"])).quantize(Decimal("0.01")) == Decimal(str(source["Total"]))
