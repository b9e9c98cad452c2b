"""Two Xero tenants sharing one Zoho org (`connector connect xero --zoho-from`): the org's one notification
channel belongs to the first connection, yet a person's edit of a record reaches the Xero tenant whose
record it is, our own Zoho writes for either tenant are recognised as echoes without asking Xero, and a
record no tenant links (or whose Xero contact is gone) ends in a clear skip, not a failure."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from connector.channels import ensure_channel
from connector.clock import SYSTEM_CLOCK
from connector.connect import link_zoho
from connector.mapping import zoho_fields as zf
from connector.sandbox.common import serve
from connector.secret import Secret
from connector.store import audit as stages
from connector.store.credentials import TokenSet
from tests.reliability.conftest import run_until_quiet
from webhooks import create_app
from workers.app import app

INGEST = "connector.ingest_zoho_notification"


@pytest.fixture
def shared(world):
    """Tenant A connected with the Zoho org (its channel pointed at a real receiver), tenant B sent to the
    same org the way ``--zoho-from`` does it."""
    deps = world.deps
    tenant_b = world.xero.add_tenant("Second Tenant Ltd")
    connection_b = deps.store.connections.create(name="Second Tenant Ltd", xero_tenant_id=tenant_b)
    grant = world.xero.issue_grant([tenant_b])
    deps.credentials.save(connection_b.id, "xero", TokenSet(
        access_token=Secret(grant["access_token"]), refresh_token=Secret(grant["refresh_token"]),
        expires_at=SYSTEM_CLOCK.now() + timedelta(seconds=grant["expires_in"]), scope=grant["scope"]))
    link_zoho(deps.connector(), [connection_b.id], world.connection_id)

    receiver = serve(create_app(webhook_key=world.xero.webhook_key, zoho_channels=deps.store.channels,
                                enqueue=lambda name, args, queue: app.send_task(name, args=args, queue=queue)))
    ensure_channel(world.connection_id, zoho=deps.zoho_client_for(world.connection_id), channels=deps.store.channels,
                   credentials=deps.credentials, notify_url=f"{receiver.url}/webhooks/zoho")
    assert deps.store.channels.for_connection(connection_b.id) == []  # B has no channel of its own
    yield world, world.for_connection(connection_b.id, tenant_b)
    receiver.shutdown()


def deliver(world, published) -> None:
    """Zoho calls the receiver with every pending notification; the worker takes in all it queues."""
    assert set(world.zoho.deliver_notifications()) <= {200}
    run_until_quiet(published, INGEST)


def xero_contact_reads(world) -> int:
    return len(world.xero.calls(path_prefix="/api.xro/2.0/Contacts", method="GET"))


def zoho_person(picture, contact_id: str) -> str:
    return next(r["id"] for r in picture.zoho.records("Contacts")
                if str(r[zf.CONTACT_PERSON_KEY]).startswith(contact_id))


def last_names(picture, contact_id: str) -> list:
    contact = picture.xero.contact(picture.tenant_id, contact_id)
    return [contact.get("LastName"), *[p.get("LastName") for p in contact.get("ContactPersons") or []]]


def make_contacts(picture, label: str, count: int) -> list[str]:
    return [picture.xero.create_contact(picture.tenant_id, Name=f"{label} {n} Ltd", FirstName="Aroha",
                                        LastName=f"{label}{n}", EmailAddress=f"aroha{n}@{label.lower()}.example"
                                        )["ContactID"] for n in range(count)]


def test_a_crm_edit_reaches_the_tenant_whose_record_it_is_and_its_echoes_ask_xero_nothing(shared, published):
    world, tenant_b = shared
    tenant_a = world
    contacts = {tenant_a: make_contacts(tenant_a, "Alpha", 2), tenant_b: make_contacts(tenant_b, "Bravo", 3)}
    for picture, ids in contacts.items():
        picture.sync("contacts", ids)
        for contact_id in ids:  # renamed in Xero: our update of the Zoho person notifies A's channel
            picture.xero.update_contact(picture.tenant_id, contact_id, LastName=f"Renamed {contact_id[:8]}")
        picture.sync("contacts", ids)
    assert any(n["module"] == "Contacts" for n in world.zoho.pending_notifications())

    # Our own writes for both tenants come back on A's channel: echoes, each recognised without a Xero read.
    reads = xero_contact_reads(world)
    deliver(world, published)
    assert xero_contact_reads(world) == reads
    store = world.deps.store
    for picture, ids in contacts.items():
        for contact_id in ids:
            trail = store.audit.trail(picture.connection_id, "Contacts", zoho_person(picture, contact_id))
            assert trail and trail[-1].stage == stages.SKIPPED and trail[-1].detail.get("echo") is True, \
                [(e.stage, e.detail) for e in trail]

    # A person edits one of B's people and one of A's in Zoho: each edit reaches its own tenant only.
    world.zoho.person_edit("Contacts", zoho_person(tenant_b, contacts[tenant_b][1]), Last_Name="Kahurangi")
    world.zoho.person_edit("Contacts", zoho_person(tenant_a, contacts[tenant_a][0]), Last_Name="Ngata")
    deliver(world, published)
    assert "Kahurangi" in last_names(tenant_b, contacts[tenant_b][1])
    assert "Ngata" in last_names(tenant_a, contacts[tenant_a][0])
    assert store.audit.latest_stage(tenant_b.connection_id, "Contacts",
                                    zoho_person(tenant_b, contacts[tenant_b][1])) == stages.WRITTEN
    assert not any("Kahurangi" in last_names(tenant_a, c) for c in contacts[tenant_a])


def _person_made_contact(world, person_key: str) -> str:
    """A Contact a person added in Zoho naming a Xero person the connector never wrote there."""
    return world.zoho.person_create("Contacts", Last_Name="Typed In", **{zf.CONTACT_PERSON_KEY: person_key})["id"]


def test_a_record_no_tenant_of_the_org_links_is_skipped_saying_so(shared, published):
    world, tenant_b = shared
    person = _person_made_contact(world, f"{uuid.uuid4()}:primary")
    world.zoho.person_edit("Contacts", person, Last_Name="Edited By Hand")
    reads = xero_contact_reads(world)

    deliver(world, published)

    trail = world.deps.store.audit.trail(world.connection_id, "Contacts", person)
    assert [e.stage for e in trail][-2:] == [stages.RECEIVED, stages.SKIPPED], [(e.stage, e.detail) for e in trail]
    reason = trail[-1].detail["reason"]
    assert "no Xero record" in reason and "\n" not in reason
    assert world.deps.store.audit.trail(tenant_b.connection_id, "Contacts", person) == []
    assert xero_contact_reads(world) == reads


def test_a_linked_record_whose_xero_contact_is_gone_is_skipped_saying_so(shared, published):
    world, _tenant_b = shared
    gone = str(uuid.uuid4())  # the link outlived its Xero contact
    person = _person_made_contact(world, f"{gone}:primary")
    world.deps.store.links.save(world.connection_id, "contact_person", f"{gone}:primary", zoho_module="Contacts",
                                zoho_id=person, content_hash="")
    world.zoho.person_edit("Contacts", person, Last_Name="Edited By Hand")

    deliver(world, published)

    trail = world.deps.store.audit.trail(world.connection_id, "Contacts", person)
    assert trail[-1].stage == stages.SKIPPED, [(e.stage, e.detail) for e in trail]
    assert f"Xero no longer has contact {gone}" in trail[-1].detail["reason"]
    assert not world.xero.calls(path_prefix="/api.xro/2.0/Contacts", method="POST")


def test_a_linked_record_deleted_in_zoho_before_its_edit_is_taken_in_is_skipped_saying_so(shared, published):
    world, _tenant_b = shared
    tenant_a = world
    [contact_id] = make_contacts(tenant_a, "Gone", 1)
    tenant_a.sync("contacts", [contact_id])
    person = zoho_person(tenant_a, contact_id)
    world.zoho.person_edit("Contacts", person, Last_Name="Edited")
    world.zoho.person_delete("Contacts", person)

    deliver(world, published)  # the edit's notification arrives after the delete

    trail = world.deps.store.audit.trail(world.connection_id, "Contacts", person)
    assert trail[-1].stage == stages.SKIPPED, [(e.stage, e.detail) for e in trail]
    assert trail[-1].detail["reason"] == "the record is no longer in Zoho"
    assert "Edited" not in last_names(tenant_a, contact_id)


def test_a_won_deal_is_invoiced_in_the_tenant_whose_contact_its_account_is(shared, published):
    world, tenant_b = shared
    world.deps.sync_config = dataclasses.replace(world.deps.sync_config, won_deal_invoices=True,
                                                 won_deal_account_code="200")
    ensure_channel(world.connection_id, zoho=world.deps.zoho_client_for(world.connection_id),
                   channels=world.deps.store.channels, credentials=world.deps.credentials,
                   notify_url=world.zoho.channels()[0]["notify_url"], with_deals=True)  # now watching Deals too
    [contact] = make_contacts(tenant_b, "Bravo", 1)
    tenant_b.sync("contacts", [contact])
    account = tenant_b.deps.store.links.get(tenant_b.connection_id, "contact", contact).zoho_id
    deal = world.zoho.person_create("Deals", Deal_Name="Bravo expansion", Account_Name={"id": account},
                                    Closing_Date="2026-06-30", Stage="Closed Won", Amount=Decimal("900"))["id"]
    world.zoho.person_edit("Deals", deal, Description="won on the phone")

    deliver(world, published)  # reaches tenant A's channel; forwarded to tenant B, whose contact it is

    assert [i for i in world.xero.invoices(tenant_b.tenant_id) if i.get("Reference") == deal] != []
    assert [i for i in world.xero.invoices(world.tenant_id) if i.get("Reference") == deal] == []
    assert world.deps.store.parked.count() == 0
