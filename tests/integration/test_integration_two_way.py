"""Two-way, distributed: a person's edit in Zoho reaches Xero once through the real receiver and a real
Celery worker, and the webhooks and notifications our own writes cause change nothing on either side."""

from __future__ import annotations

import pytest
import requests

from connector.channels import ensure_channel
from connector.mapping import zoho_fields as zf
from connector.sandbox.xero_seed import seed_demo_org
from connector.store import audit as stages
from tests.integration.conftest import broker_idle
from workers.embedded import wait_until, wait_until_quiet

pytestmark = pytest.mark.integration


def xero_writes(xero) -> list:
    return [c for c in xero.calls(path_prefix="/api.xro/2.0/") if c.method != "GET"]


def quiet(system, timeout: float = 30.0) -> bool:
    """Nothing queued, nothing in flight, and no request to either sandbox nor audit row for a while
    (longer than the Xero batch window and the Zoho buffer linger)."""
    xero, zoho, deps = system.xero, system.zoho, system.deps

    def measure():
        return len(xero.requests), len(zoho.requests), deps.store.audit.count(), broker_idle(deps)

    return wait_until(lambda: broker_idle(deps), timeout=timeout) and \
        wait_until_quiet(measure, quiet_for=1.0, timeout=timeout) and broker_idle(deps)


def deliver_everything(system) -> int:
    """Deliver every pending Xero webhook and Zoho notification until none is left; returns how many."""
    xero, zoho = system.xero, system.zoho
    delivered = 0
    for _ in range(10):
        assert quiet(system)
        if not xero.pending_events() and not zoho.pending_notifications():
            return delivered
        if xero.pending_events():
            statuses = xero.deliver_webhooks(system.hook_url)
            assert set(statuses) == {200}
            delivered += len(statuses)
        statuses = zoho.deliver_notifications()
        assert set(statuses) <= {200}
        delivered += len(statuses)
    raise AssertionError("deliveries never stopped: something echoes")


def test_person_edit_reaches_xero_exactly_once_and_nothing_echoes(system):
    xero, zoho, deps = system.xero, system.zoho, system.deps
    connection_id, tenant_id = system.connection_id, system.tenant_id
    # The channel is enabled the way `connector connect zoho` does it, pointed at the real receiver.
    ensure_channel(connection_id, zoho=deps.zoho_client_for(connection_id), channels=deps.store.channels,
                   credentials=deps.credentials, notify_url=system.zoho_hook_url)
    assert [c["notify_url"] for c in zoho.channels()] == [system.zoho_hook_url]

    contacts = seed_demo_org(xero, tenant_id, contacts=3)
    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(lambda: all(deps.store.audit.latest_stage(connection_id, "contact", c) == stages.WRITTEN
                                  for c in contacts), timeout=30)
    # Our own Zoho updates notify the channel (".edit"): each one is recognised as an echo.
    xero.update_contact(tenant_id, contacts[1], Name="Renamed in Xero Ltd")
    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(lambda: any(n["module"] == "Accounts" for n in zoho.pending_notifications()), timeout=30)
    assert deliver_everything(system) >= 1
    assert xero_writes(xero) == []

    person = next(r for r in zoho.records("Contacts") if r[zf.CONTACT_PERSON_KEY].startswith(contacts[0]))
    zoho_writes_before = len(zoho.writes())
    zoho.person_edit("Contacts", person["id"], Last_Name="Kahurangi")
    [notification] = zoho.pending_notifications()
    assert zoho.deliver_notifications() == [200]

    # The sandbox logs a request when it arrives: wait for the write's answer too, not just its arrival.
    assert wait_until(lambda: [w.finished is not None for w in xero_writes(xero)] == [True], timeout=30)
    xero_contact = xero.contact(tenant_id, contacts[0])
    assert "Kahurangi" in [xero_contact.get("LastName"), *[p.get("LastName") for p in xero_contact["ContactPersons"]]]
    [write] = xero_writes(xero)
    assert write.path == f"/api.xro/2.0/Contacts/{contacts[0]}" and write.status == 200

    # Xero's webhook for our write, and anything else that follows, is delivered until nothing is pending.
    assert xero.pending_events()
    assert deliver_everything(system) >= 1
    assert len(xero_writes(xero)) == 1
    assert len(zoho.writes()) == zoho_writes_before
    assert deps.store.audit.latest_stage(connection_id, "contact", contacts[0]) == stages.SKIPPED

    # Zoho may send the same notification again: it writes nothing anywhere.
    assert requests.post(system.zoho_hook_url, json=notification, timeout=5).status_code == 200
    deliver_everything(system)
    assert len(xero_writes(xero)) == 1 and len(zoho.writes()) == zoho_writes_before
