"""A revoked Xero consent parks the work (not retried in a loop, not dropped); reconnecting through
the connect flow resumes it by itself. The real pipeline: signed webhooks → receiver → a Celery
worker process on Redis → PostgreSQL, with the sandboxes as Xero and Zoho."""

from __future__ import annotations

import pytest

from connector.clock import SYSTEM_CLOCK
from connector.parking import resume_parked_work
from connector.mapping import zoho_fields
from connector.sandbox.xero_seed import seed_demo_org
from connector.store import audit as stages
from connector.store.parked import NEEDS_REAUTH, ZOHO_NOT_CONNECTED
from tests.conftest import integration_broker
from workers.embedded import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def live(make_world):
    world = make_world(SYSTEM_CLOCK, redis="integration", processes=True,  # the worker process runs on real time
                       env={"XERO_BATCH_WINDOW": "0.2"})
    broker = integration_broker("reconnect-test")
    # As workers/deps.py wires it: a reconnect queues the resume of the connection's parked work.
    world.flows.on_connected = lambda ids: broker.send_task(
        "connector.resume_parked_work", args=[ids], queue="maintenance")
    return world, world.hook_url, world.worker


def test_revoked_consent_parks_work_and_reconnecting_resumes_it(live):
    world, hook_url, _ = live
    tenant = world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    world.consent("zoho", connection_ids=[kea.id])
    contact_ids = seed_demo_org(world.xero, tenant, contacts=3)

    # The customer revokes the app in Xero: the stored tokens stop working, refreshing gives invalid_grant.
    world.xero.revoke(world.credentials.load(kea.id, "xero").tokens.refresh_token.reveal())
    assert set(world.xero.deliver_webhooks(hook_url)) == {200}

    parked = world.store.parked
    assert wait_until(lambda: parked.count(kea.id, reason=NEEDS_REAUTH) >= len(contact_ids), timeout=45), \
        [world.store.audit.trail(kea.id, "contact", c) for c in contact_ids]
    assert world.store.connections.get(kea.id).state == "needs_reauth"
    token_calls = len(world.xero.calls(path_prefix="/connect/token"))
    assert not wait_until(lambda: len(world.xero.calls(path_prefix="/connect/token")) > token_calls, timeout=2), \
        "a connection waiting for a person is not retried in a loop"
    assert world.zoho.records("Accounts") == []

    world.consent("xero")  # the person reconnects through the connect flow
    assert world.store.connections.get(kea.id).state == "active"

    def synced() -> bool:
        links = [world.store.links.get(kea.id, "contact", c) for c in contact_ids]
        return all(link and world.zoho.record("Accounts", link.zoho_id) for link in links) and all(
            world.store.audit.latest_stage(kea.id, "contact", c) == stages.WRITTEN for c in contact_ids)

    assert wait_until(synced, timeout=45), [world.store.audit.trail(kea.id, "contact", c) for c in contact_ids]
    for contact_id in contact_ids:
        account = world.zoho.record("Accounts", world.store.links.get(kea.id, "contact", contact_id).zoho_id)
        assert account[zoho_fields.ACCOUNT_XERO_ID] == contact_id
        trail = [e.stage for e in world.store.audit.trail(kea.id, "contact", contact_id)]
        assert stages.PARKED in trail and stages.WRITTEN in trail[trail.index(stages.PARKED):], trail
    assert parked.count(kea.id, reason=NEEDS_REAUTH) == 0


def test_work_for_zoho_waits_until_zoho_is_connected_and_the_connection_stays_active(live):
    """Xero connected, Zoho not yet (the first deployment's step 6 before step 7): the records are fetched
    and wait for Zoho, saying what to do; nothing asks to re-authorise Xero. Connecting Zoho sends them."""
    world, hook_url, _ = live
    tenant = world.xero.add_tenant("Tui Ltd")
    [tui] = world.consent("xero")
    contact_ids = seed_demo_org(world.xero, tenant, contacts=3)
    assert set(world.xero.deliver_webhooks(hook_url)) == {200}

    parked = world.store.parked
    trails = lambda: [world.store.audit.trail(tui.id, "contact", c) for c in contact_ids]  # noqa: E731
    assert wait_until(lambda: parked.count(tui.id, reason=ZOHO_NOT_CONNECTED) >= len(contact_ids), timeout=45), \
        trails()
    connection = world.store.connections.get(tui.id)
    assert connection.state == "active", connection.state_reason
    for trail in trails():
        assert trail[-1].stage == stages.PARKED, trail
        reason = trail[-1].detail["reason"]
        assert (f"Zoho is not connected yet for connection {tui.id}: run `connector connect zoho --connection {tui.id}` "
                "(or follow README's First deployment)") in reason, reason
        assert "connect xero" not in reason, reason
    # The beat's resume leaves the work waiting: there is nowhere to push it yet.
    handed: list = []
    assert resume_parked_work(store=world.store, enqueue=handed.append) == 0 and handed == []
    assert world.zoho.records("Accounts") == []

    world.consent("zoho", connection_ids=[tui.id])

    def synced() -> bool:
        links = [world.store.links.get(tui.id, "contact", c) for c in contact_ids]
        return all(link and world.zoho.record("Accounts", link.zoho_id) for link in links) and all(
            world.store.audit.latest_stage(tui.id, "contact", c) == stages.WRITTEN for c in contact_ids)

    assert wait_until(synced, timeout=45), trails()
    assert parked.count(tui.id) == 0
    assert world.store.connections.get(tui.id).state == "active"
