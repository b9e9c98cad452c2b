"""Zoho channels: the expiry Zoho really granted, renewal by PATCH, a lost channel re-created and its gap reconciled."""

from __future__ import annotations

from datetime import timedelta

from connector.channels import ensure_channel, renew_channels
from connector.clock import ManualClock
from connector.sandbox.zoho import ZohoSandbox
from tests.connections.conftest import NOTIFY_URL, World


def connect_both(world):
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    world.consent("zoho", connection_ids=[kea.id])
    return kea


def renew(world, enqueued):
    return renew_channels(zoho_for=world.zoho_client, channels=world.store.channels, credentials=world.credentials,
                          notify_url=NOTIFY_URL, enqueue=lambda cid, n: enqueued.append((cid, n)), clock=world.clock)


def test_asking_for_more_than_a_week_stores_the_one_hour_zoho_granted(world):
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    # No on_zoho_connected channel here: make the channel by hand with a too-long lifetime.
    world.flows.on_zoho_connected = None
    world.consent("zoho", connection_ids=[kea.id])
    outcome = ensure_channel(kea.id, zoho=world.zoho_client(kea.id), channels=world.store.channels,
                             credentials=world.credentials, notify_url=NOTIFY_URL, clock=world.clock,
                             lifetime=timedelta(days=8))
    granted = world.clock.now().replace(microsecond=0) + timedelta(hours=1)
    assert outcome.expires_at == granted
    assert world.store.channels.get(outcome.channel_id).expires_at == granted
    # The hour is then renewed like any near-expiry channel, this time for six days.
    world.clock.advance(timedelta(minutes=30))
    [renewed] = renew(world, [])
    assert renewed.action == "renewed" and renewed.expires_at == world.clock.now().replace(microsecond=0) + timedelta(days=6)


def test_a_deleted_channel_is_recreated_with_its_token_and_the_gap_reconciled(world):
    kea = connect_both(world)
    account = world.zoho.person_create("Accounts", Account_Name="Before the gap")
    [channel] = world.store.channels.for_connection(kea.id)
    world.clock.advance(timedelta(hours=2))
    world.zoho_client(kea.id).disable_watch([channel.channel_id])  # someone removes it in Zoho
    world.clock.advance(timedelta(hours=1))
    edited = world.zoho.person_edit("Accounts", account["id"], Phone="+64 9 555 0100")
    contact = world.zoho.person_create("Contacts", Last_Name="Ngata", Email="ngata@example.com")
    assert world.zoho.pending_notifications() == []  # nobody was listening: these would be lost

    enqueued = []
    [outcome] = renew(world, enqueued)
    assert outcome.action == "recreated" and outcome.reconciled >= 2
    [live] = world.zoho.channels()
    assert live["channel_id"] == channel.channel_id
    assert world.store.channels.verify(channel.channel_id, live["token"]) == kea.id  # same token from the vault
    handed = {(n["module"], i) for _, n in enqueued for i in n["ids"]}
    assert ("Accounts", edited["id"]) in handed and ("Contacts", contact["id"]) in handed
    assert {cid for cid, _ in enqueued} == {kea.id}
    assert all(n["operation"] == "update" and n["channel_id"] == channel.channel_id for _, n in enqueued)


def test_an_expired_channel_is_recreated_and_renewals_are_idempotent(world):
    kea = connect_both(world)
    [channel] = world.store.channels.for_connection(kea.id)
    world.clock.advance(timedelta(days=7))  # the beat was down for a week: the channel lapsed
    enqueued = []
    [outcome] = renew(world, enqueued)
    assert outcome.action == "recreated"
    assert world.store.channels.get(channel.channel_id).expires_at > world.clock.now()
    assert renew(world, []) == []  # fresh now: nothing to do, no calls that change anything
    assert len(world.zoho.channels()) == 1


def test_an_edition_without_invoices_gets_a_channel_for_the_modules_it_has(make_system):
    """Free and Standard editions have no Invoices module, and Zoho refuses a watch on a module the org lacks
    (https://www.zoho.com/crm/developer/docs/api/v8/notifications/enable.html): the channel watches what exists."""
    clock = ManualClock()
    world = World(**vars(make_system(clock=clock, zoho=ZohoSandbox(clock, edition="standard"))))
    kea = connect_both(world)
    [live] = world.zoho.channels()
    assert sorted(live["events"]) == ["Accounts.edit", "Contacts.edit"]
    assert [c.channel_id for c in world.store.channels.for_connection(kea.id)] == [live["channel_id"]]
    enqueued = []
    world.clock.advance(timedelta(days=5))
    [renewed] = renew(world, enqueued)
    assert renewed.action == "renewed" and sorted(world.zoho.channels()[0]["events"]) == ["Accounts.edit", "Contacts.edit"]


def test_switching_won_deal_invoices_on_enables_the_channel_again_with_deals_at_the_next_renewal(world):
    kea = connect_both(world)
    [channel] = world.store.channels.for_connection(kea.id)
    assert "Deals.edit" not in channel.events
    assert renew(world, []) == []  # nothing due: nothing done

    [outcome] = renew_channels(zoho_for=world.zoho_client, channels=world.store.channels, credentials=world.credentials,
                               notify_url=NOTIFY_URL, enqueue=lambda cid, n: None, clock=world.clock, with_deals=True)
    assert outcome.action == "recreated" and outcome.channel_id == channel.channel_id
    [live] = world.zoho.channels()
    assert "Deals.edit" in live["events"] and "Deals.edit" in world.store.channels.get(channel.channel_id).events
    assert renew_channels(zoho_for=world.zoho_client, channels=world.store.channels, credentials=world.credentials,
                          notify_url=NOTIFY_URL, enqueue=lambda cid, n: None, clock=world.clock, with_deals=True) == []
