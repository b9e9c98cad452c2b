"""The whole pipeline, distributed: a real Celery worker process on the real Redis broker,
PostgreSQL for storage, the receiver over HTTP, and the sandboxes as Xero and Zoho."""

from __future__ import annotations

import pytest
import requests

from connector.mapping import zoho_fields
from connector.sandbox.xero_seed import seed_demo_org
from connector.store import audit as stages
from workers.embedded import wait_until

pytestmark = pytest.mark.integration

TERMINAL = {stages.WRITTEN, stages.SKIPPED, stages.FAILED, stages.PARKED}


def settled(audit, connection_id, ids, passes=1):
    return all(
        sum(e.stage in TERMINAL for e in audit.trail(connection_id, "contact", cid)) >= passes for cid in ids
    )


def test_signed_webhook_ends_as_zoho_records_with_an_audit_trail(system):
    xero, zoho, deps = system.xero, system.zoho, system.deps
    connection_id = system.connection_id
    contact_ids = seed_demo_org(xero, system.tenant_id, contacts=8)
    events = list(xero.pending_events())

    assert xero.intent_to_receive(system.hook_url).ok
    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(lambda: settled(deps.store.audit, connection_id, contact_ids), timeout=60), \
        [deps.store.audit.trail(connection_id, "contact", c) for c in contact_ids[:2]]

    for cid in contact_ids:
        trail = [e.stage for e in deps.store.audit.trail(connection_id, "contact", cid)]
        assert trail[:4] == [stages.RECEIVED, stages.FETCHED, stages.MAPPED, stages.WRITTEN], trail
        link = deps.store.links.get(connection_id, "contact", cid)
        account = zoho.record("Accounts", link.zoho_id)
        assert account[zoho_fields.ACCOUNT_XERO_ID] == cid
        assert account["Account_Name"] == xero.contact(system.tenant_id, cid)["Name"][:200]

    # The batch was fetched with IDs=, not one GET per event.
    contact_gets = xero.calls(path_prefix="/api.xro/2.0/Contacts", method="GET")
    assert len(contact_gets) <= 2

    # A second delivery of the same events changes nothing in Zoho.
    writes_before = len(zoho.writes())
    body = xero.webhook_body(events)
    response = requests.post(system.hook_url, data=body, timeout=5, headers={
        "Content-Type": "application/json; charset=utf-8", "x-xero-signature": xero.sign(body)})
    assert response.status_code == 200 and response.content == b""
    assert wait_until(lambda: settled(deps.store.audit, connection_id, contact_ids, passes=2), timeout=60)
    assert len(zoho.writes()) == writes_before
    assert all(deps.store.audit.latest_stage(connection_id, "contact", c) == stages.SKIPPED for c in contact_ids)


def test_xero_outage_is_retried_then_synced(system):
    xero, zoho, deps = system.xero, system.zoho, system.deps
    connection_id = system.connection_id
    contact_ids = seed_demo_org(xero, system.tenant_id, contacts=3)
    xero.faults.fail_next(2, status=503, path_prefix="/api.xro/2.0/Contacts", body="The Xero API is temporarily unavailable")

    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(
        lambda: all(deps.store.audit.latest_stage(connection_id, "contact", c) == stages.WRITTEN for c in contact_ids),
        timeout=60,
    )
    trail = [(e.stage, e.times) for e in deps.store.audit.trail(connection_id, "contact", contact_ids[0])]
    assert sum(times for stage, times in trail if stage == stages.RETRYING) == 2, trail
    assert len(zoho.records("Accounts")) == 3


def test_bad_signature_is_refused_and_nothing_is_queued(system):
    xero, deps = system.xero, system.deps
    connection_id, tenant_id = system.connection_id, system.tenant_id
    refused_ids = seed_demo_org(xero, tenant_id, contacts=2)
    statuses = xero.deliver_webhooks(system.hook_url, bad_signature=True)
    assert set(statuses) == {401}

    # A signed delivery after the refused ones, on the same queue: once the worker has synced it, whatever
    # the refused ones might have queued before it has had its turn.
    marker_id = xero.create_contact(tenant_id, Name="Marker Ltd")["ContactID"]
    body = xero.webhook_body([e for e in xero.pending_events() if e["resourceId"] == marker_id])
    response = requests.post(system.hook_url, data=body, timeout=5, headers={
        "Content-Type": "application/json; charset=utf-8", "x-xero-signature": xero.sign(body)})
    assert response.status_code == 200
    assert wait_until(lambda: settled(deps.store.audit, connection_id, [marker_id]), timeout=60), \
        deps.store.audit.trail(connection_id, "contact", marker_id)

    assert [deps.store.audit.trail(connection_id, "contact", cid) for cid in refused_ids] == [[], []]
    assert deps.store.audit.count() == len(deps.store.audit.trail(connection_id, "contact", marker_id))
    assert set(refused_ids) <= {e["resourceId"] for e in xero.pending_events()}, \
        "undelivered events stay pending for Xero's retry"


def test_a_nul_character_in_xero_data_is_stored_and_synced_without_failing_its_batch(system):
    """PostgreSQL's JSONB refuses U+0000; the record still lands (U+FFFD in its place), and so do the
    records fetched in the same batch."""
    xero, zoho, deps = system.xero, system.zoho, system.deps
    connection_id, tenant_id = system.connection_id, system.tenant_id
    contact_ids = seed_demo_org(xero, tenant_id, contacts=3)
    hostile = xero.create_contact(tenant_id, Name="Null\x00Byte Ltd", FirstName="Nu\x00l",
                                  ContactPersons=[{"FirstName": "Ze\x00ro", "LastName": "Byte",
                                                   "EmailAddress": "zero@example.com"}])["ContactID"]
    everyone = [*contact_ids, hostile]

    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(lambda: settled(deps.store.audit, connection_id, everyone), timeout=60), \
        deps.store.audit.trail(connection_id, "contact", hostile)
    for cid in everyone:
        trail = [e.stage for e in deps.store.audit.trail(connection_id, "contact", cid)]
        assert stages.WRITTEN in trail and stages.FAILED not in trail, (cid, trail)
    snapshot = deps.store.snapshots.get(connection_id, "contacts", hostile)
    assert snapshot.payload["Name"] == "Null\ufffdByte Ltd"
    account = zoho.record("Accounts", deps.store.links.get(connection_id, "contact", hostile).zoho_id)
    assert account["Account_Name"] == "Null\ufffdByte Ltd"
