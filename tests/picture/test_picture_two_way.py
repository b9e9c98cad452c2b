"""A person's edit in Zoho reaches Xero once; neither our Zoho writes nor our Xero write echo back."""

from __future__ import annotations

from connector.mapping import zoho_fields as zf
from connector.pipeline.from_zoho import pull_zoho_changes
from connector.sandbox.xero_seed import seed_demo_org


def _pull(picture, notification):
    deps = picture.deps
    return pull_zoho_changes(
        picture.connection_id, notification["module"], notification["ids"], operation=notification["operation"],
        zoho=deps.zoho_client(picture.connection), xero=deps.xero_client(picture.connection),
        snapshots=deps.store.snapshots, links=deps.store.links, audit=deps.store.audit,
        ledger=deps.store.write_ledger, config=deps.sync_config,
    )


def _watch(picture):
    picture.deps.zoho_client(picture.connection).enable_watch([{
        "channel_id": "1000000068001", "events": ["Contacts.all", "Accounts.all"],
        "notify_url": "https://example.invalid/webhooks/zoho", "token": "t"}])


def test_person_edit_reaches_xero_once_without_echo(picture):
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=4)
    _watch(picture)
    picture.sync("contacts", contacts)
    seeded_events = len(picture.xero.pending_events())

    # Our own writes notified Zoho channels: every one is recognised as an echo, nothing goes to Xero.
    echoes = picture.zoho.pending_notifications()
    assert echoes
    for notification in echoes:
        assert _pull(picture, notification).xero_writes == 0
    assert len(picture.xero.pending_events()) == seeded_events

    primary_key = f"{contacts[0]}:primary"
    link = picture.deps.store.links.get(picture.connection_id, "contact_person", primary_key)
    if link is None:  # the first seeded contact may have no primary person: use its first person
        link = next(picture.deps.store.links.get(picture.connection_id, "contact_person", r[zf.CONTACT_PERSON_KEY])
                    for r in picture.zoho.records("Contacts") if r[zf.CONTACT_PERSON_KEY].startswith(contacts[0]))
    picture.zoho._outbox.clear()
    picture.zoho.person_edit("Contacts", link.zoho_id, Last_Name="Kahurangi")
    [edit] = picture.zoho.pending_notifications()

    outcome = _pull(picture, edit)
    assert outcome.xero_writes == 1 and outcome.echoes == 0
    xero_contact = picture.xero.contact(picture.tenant_id, contacts[0])
    assert "Kahurangi" in [xero_contact.get("LastName"), *[p["LastName"] for p in xero_contact["ContactPersons"]]]
    writes = picture.xero.calls(path_prefix="/api.xro/2.0/Contacts", method="POST")
    assert len(writes) == 1 and writes[0].status == 200

    # The same notification again (Zoho may resend): no second Xero write.
    assert _pull(picture, edit).xero_writes == 0

    # Xero's webhook for our write: fetched and pushed, it writes nothing to Zoho.
    zoho_writes = len(picture.zoho.writes())
    ours = picture.pending_xero_ids("CONTACT")
    assert contacts[0] in ours
    outcome = picture.sync("contacts", [contacts[0]])
    assert outcome.written == [] and outcome.skipped == [contacts[0]]
    assert len(picture.zoho.writes()) == zoho_writes
