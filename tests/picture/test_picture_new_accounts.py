"""New Zoho Accounts (and Contacts with no Account) become Xero contacts: matched before created, never
doubled, no echo; clashes wait for a person (connector link / connector create)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from connector.channels import ensure_channel, renew_channels, watch_options
from connector.errors import ConfigError, TransientError
from connector.mapping import zoho_fields as zf
from connector.mapping.xero_new_contact import xero_contact_for_account
from connector.mapping_config import parse_sync_config
from connector.pipeline.to_xero.contacts import (
    CREATED,
    LINKED,
    MATCHED,
    NEEDS_REVIEW,
    create_key,
    ensure_xero_contact,
)
from connector.replay import list_failures
from connector.status import collect_status
from workers import cli_contacts
from workers.zoho_tasks import ingest_zoho_notification, make_contact_creation

CONTACTS_PATH = "/api.xro/2.0/Contacts"


@pytest.fixture
def creating(picture):
    picture.deps.sync_config = dataclasses.replace(picture.deps.sync_config, create_modules=("Accounts", "Contacts"),
                                                   create_account_types=("Customer",))
    return picture


def _watch(picture):
    picture.deps.zoho_client(picture.connection).enable_watch([{
        "channel_id": "1000000068001", "events": ["Contacts.all", "Accounts.all"],
        "notify_url": "https://example.invalid/webhooks/zoho", "token": "t"}])


def _account(picture, name="Acme Ltd", account_type="Customer", people=(("Aroha", "Ngata", "aroha@acme.example"),)):
    account = picture.zoho.person_create("Accounts", Account_Name=name, Account_Type=account_type,
                                         Phone="+64 9 555 0101", Billing_City="Auckland")
    for first, last, email in people:
        picture.zoho.person_create("Contacts", First_Name=first, Last_Name=last, Email=email,
                                   Account_Name={"id": account["id"]})
    return account["id"]


def _ingest(picture, module, zoho_id, operation="insert"):
    notification = {"module": module, "ids": [zoho_id], "operation": operation, "channel_id": "1", "sync_id": "s"}
    result = ingest_zoho_notification.apply(args=[picture.connection_id, notification])
    assert result.successful(), result.traceback
    return result.result


def _xero_contacts_numbered(picture, zoho_id):
    return [c for c in picture.xero.contacts(picture.tenant_id) if c.get("ContactNumber") == zoho_id]


def _puts(picture):
    return picture.xero.calls(path_prefix=CONTACTS_PATH, method="PUT")


def _ensure(picture, module, zoho_id, **options):
    creation = make_contact_creation(picture.deps, picture.connection)
    return ensure_xero_contact(creation, picture.connection_id, module, zoho_id, reason="test", **options)


def test_off_by_default_a_new_account_stays_in_zoho(picture):
    account_id = _account(picture)
    _ingest(picture, "Accounts", account_id)
    assert _puts(picture) == [] and picture.xero.calls(path_prefix=CONTACTS_PATH) == []
    stage = picture.deps.store.audit.latest_stage(picture.connection_id, "Accounts", account_id)
    assert stage == "skipped"


def test_a_new_customer_reaches_xero_once_with_its_people_and_never_echoes(creating):
    picture = creating
    _watch(picture)
    account_id = _account(picture, people=[("Aroha", "Ngata", "aroha@acme.example"),
                                           ("Ben", "Smith", "ben@acme.example")])
    picture.zoho._outbox.clear()
    _ingest(picture, "Accounts", account_id)
    calls_after_first = len(picture.xero.calls(path_prefix=CONTACTS_PATH))
    _ingest(picture, "Accounts", account_id)  # Zoho delivers the notification twice
    _ingest(picture, "Accounts", account_id, operation="update")  # and a channel gap's reconciliation

    [contact] = _xero_contacts_numbered(picture, account_id)
    assert len(_puts(picture)) == 1
    assert len(picture.xero.calls(path_prefix=CONTACTS_PATH)) == calls_after_first  # (a) the id link: no call
    assert contact["Name"] == "Acme Ltd" and contact["EmailAddress"] == "aroha@acme.example"
    assert [p["EmailAddress"] for p in contact["ContactPersons"]] == ["ben@acme.example"]
    assert picture.zoho.record("Accounts", account_id)[zf.ACCOUNT_XERO_ID] == contact["ContactID"]
    audit = picture.deps.store.audit.trail(picture.connection_id, "Accounts", account_id)
    assert [e.detail.get("action") for e in audit if e.stage == "written"] == [CREATED]

    # Our Zoho updates (the Xero ids) notify: recognised, nothing goes to Xero.
    posts = len(picture.xero.calls(path_prefix=CONTACTS_PATH, method="POST"))
    echoes = picture.zoho.pending_notifications()
    assert {(n["module"], n["operation"]) for n in echoes} == {("Accounts", "update"), ("Contacts", "update")}
    for echo in echoes:
        assert ingest_zoho_notification.apply(args=[picture.connection_id, echo]).result == 0
    assert len(picture.xero.calls(path_prefix=CONTACTS_PATH, method="POST")) == posts
    # Xero's webhook for our create: fetched and pushed, it writes nothing to Zoho and creates nothing.
    assert contact["ContactID"] in picture.pending_xero_ids("CONTACT")
    zoho_writes = picture.zoho_writes()
    outcome = picture.sync("contacts", [contact["ContactID"]])
    assert outcome.written == [] and outcome.skipped == [contact["ContactID"]]
    assert picture.zoho_writes() == zoho_writes
    assert len(picture.zoho.records("Accounts")) == 1 and len(picture.zoho.records("Contacts")) == 2

    # Later edits go both ways, as for any linked contact.
    ben = next(r for r in picture.zoho.records("Contacts") if r["Email"] == "ben@acme.example")
    picture.zoho._outbox.clear()
    picture.zoho.person_edit("Contacts", ben["id"], Last_Name="Smithson")
    [edit] = picture.zoho.pending_notifications()
    assert ingest_zoho_notification.apply(args=[picture.connection_id, edit]).result == 1
    xero_contact = picture.xero.contact(picture.tenant_id, contact["ContactID"])
    assert [p["LastName"] for p in xero_contact["ContactPersons"]] == ["Smithson"]


def test_the_filter_leaves_other_account_types_and_waits_for_the_deal_stage(creating):
    picture = creating
    prospect = _account(picture, name="Prospect Ltd", account_type="Prospect")
    _ingest(picture, "Accounts", prospect)
    assert _puts(picture) == []

    picture.deps.sync_config = dataclasses.replace(picture.deps.sync_config, create_deal_stages=("Closed Won",))
    customer = _account(picture, name="Deal Ltd", people=[])
    deal = picture.zoho.person_create("Deals", Deal_Name="Big one", Account_Name={"id": customer},
                                      Closing_Date="2026-12-24", Stage="Qualification")
    _ingest(picture, "Accounts", customer)
    assert _puts(picture) == []
    picture.zoho.person_edit("Deals", deal["id"], Stage="Closed Won")
    _ingest(picture, "Accounts", customer, operation="update")  # its next notification
    assert len(_xero_contacts_numbered(picture, customer)) == 1


@pytest.mark.parametrize("rule", ["contact_number", "email", "name"])
def test_an_existing_xero_contact_is_linked_not_doubled(creating, rule):
    picture = creating
    account_id = _account(picture)
    existing = {"contact_number": {"Name": "Acme Limited", "ContactNumber": account_id},
                "email": {"Name": "Acme (Auckland)", "EmailAddress": "AROHA@acme.example"},
                "name": {"Name": "ACME LTD"}}[rule]
    contact_id = picture.xero.create_contact(picture.tenant_id, **existing)["ContactID"]

    outcome = _ensure(picture, "Accounts", account_id)

    assert (outcome.status, outcome.xero_contact_id) == (MATCHED, contact_id)
    assert _puts(picture) == []
    assert picture.deps.store.links.get(picture.connection_id, "contact", contact_id).zoho_id == account_id
    assert picture.zoho.record("Accounts", account_id)[zf.ACCOUNT_XERO_ID] == contact_id
    assert _ensure(picture, "Accounts", account_id).status == LINKED


def test_a_name_clash_waits_for_a_person_then_link_or_create_resolves_it(creating, capsys):
    picture = creating
    other = picture.xero.create_contact(picture.tenant_id, Name="Acme Ltd", EmailAddress="accounts@other.example")
    first, second = _account(picture), _account(picture, name="acme ltd", people=[("Kiri", "Tane", "kiri@x.example")])

    for account_id in (first, second):
        _ingest(picture, "Accounts", account_id)
    assert _puts(picture) == []
    failures = {f.record_id: f for f in list_failures(picture.deps.store, connection_id=picture.connection_id)}
    assert {failures[first].error, failures[second].error} == {NEEDS_REVIEW}
    assert other["ContactID"] in failures[first].reason and "connector link Accounts" in failures[first].reason
    [entry] = [e for e in picture.deps.store.audit.trail(picture.connection_id, "Accounts", first) if e.stage == "failed"]
    assert entry.detail["candidates"][0]["ContactID"] == other["ContactID"]
    xero_calls = len(picture.xero.calls(path_prefix=CONTACTS_PATH))
    _ingest(picture, "Accounts", first)  # a redelivery: still waiting for a person, nothing looked up again
    assert _puts(picture) == [] and len(picture.xero.calls(path_prefix=CONTACTS_PATH)) == xero_calls
    assert collect_status(picture.deps)["connections"][0]["needs_review"] == 2

    def run(command, **values):
        return command(argparse.Namespace(connection=None, **values))

    assert run(cli_contacts.cmd_link, zoho_module="Accounts", zoho_id=first, xero_contact_id="no-such-id") == 2
    assert run(cli_contacts.cmd_link, zoho_module="Accounts", zoho_id="123", xero_contact_id=other["ContactID"]) == 2
    assert "Zoho has no Accounts record 123" in capsys.readouterr().err
    assert run(cli_contacts.cmd_create, zoho_module="Accounts", zoho_id="acme", name="Acme NZ") == 2
    assert "digits only" in capsys.readouterr().err
    assert run(cli_contacts.cmd_create, zoho_module="Accounts", zoho_id="123", name="Acme NZ") == 2
    assert run(cli_contacts.cmd_create, zoho_module="Accounts", zoho_id=second, name="  ") == 2
    assert run(cli_contacts.cmd_link, zoho_module="Accounts", zoho_id=first, xero_contact_id=other["ContactID"]) == 0
    assert run(cli_contacts.cmd_create, zoho_module="Accounts", zoho_id=second, name="Acme Ltd (Wellington)") == 0

    assert _puts(picture) and len(_puts(picture)) == 1
    [created] = _xero_contacts_numbered(picture, second)
    assert created["Name"] == "Acme Ltd (Wellington)"
    assert picture.deps.store.links.get(picture.connection_id, "contact", other["ContactID"]).zoho_id == first
    remaining = {f.record_id for f in list_failures(picture.deps.store, connection_id=picture.connection_id)}
    assert not remaining & {first, second}
    assert collect_status(picture.deps)["connections"][0]["needs_review"] == 0
    actions = [e.detail.get("action") for e in picture.deps.store.audit.trail(picture.connection_id, "Accounts", first)]
    assert actions[-1] == MATCHED


def test_a_xero_refusal_is_a_clear_failure_never_retried(creating):
    picture = creating
    picture.xero.create_contact(picture.tenant_id, Name="Taken Name Ltd")
    account_id = _account(picture)

    outcome = _ensure(picture, "Accounts", account_id, name="Taken Name Ltd")

    assert outcome.status == "failed" and outcome.xero_contact_id is None
    assert "already assigned to another contact" in outcome.reason and "connector link" in outcome.reason
    assert len(_puts(picture)) == 1
    [failure] = list_failures(picture.deps.store, connection_id=picture.connection_id)
    assert (failure.record_id, failure.error) == (account_id, "XeroValidation")


def test_a_lost_answer_to_the_create_leaves_one_contact(creating):
    picture = creating
    account_id = _account(picture)
    # Xero applies the create, the answer never arrives (a 504 after the work).
    picture.xero.faults.fail_next(1, lost_response=True, delay=0.0, path_prefix=CONTACTS_PATH, method="PUT")
    with pytest.raises(TransientError):
        _ensure(picture, "Accounts", account_id)
    [contact] = _xero_contacts_numbered(picture, account_id)

    # The same create sent again under its key gets the first result (the idempotency key)...
    assert _puts(picture)[0].status == 504
    people = [p for p in picture.zoho.records("Contacts") if (p.get("Account_Name") or {}).get("id") == account_id]
    body = xero_contact_for_account(picture.zoho.record("Accounts", account_id), people, zoho_id=account_id)
    creation = make_contact_creation(picture.deps, picture.connection)
    [again] = creation.xero.create_contacts([body], idempotency_key=create_key(picture.connection_id, "Accounts",
                                                                               account_id, body))
    assert again["ContactID"] == contact["ContactID"] and len(_puts(picture)) == 2
    # ...and the task's retry finds the contact by its ContactNumber before creating anything.
    outcome = ensure_xero_contact(creation, picture.connection_id, "Accounts", account_id, reason="retry")
    assert (outcome.status, outcome.xero_contact_id) == (MATCHED, contact["ContactID"])
    assert len(_xero_contacts_numbered(picture, account_id)) == 1 and len(_puts(picture)) == 2


def test_the_xero_sandbox_answers_a_repeated_idempotency_key_with_the_first_result(picture):
    client = picture.client()
    first = client.create_contacts([{"Name": "Once Ltd"}], idempotency_key="k-once")
    again = client.create_contacts([{"Name": "Once Ltd"}], idempotency_key="k-once")
    assert first[0]["ContactID"] == again[0]["ContactID"]
    assert [c["Name"] for c in picture.xero.contacts(picture.tenant_id)].count("Once Ltd") == 1


def test_a_contact_without_an_account_becomes_a_xero_contact(creating):
    picture = creating
    person = picture.zoho.person_create("Contacts", First_Name="Mere", Last_Name="Rua", Email="mere@solo.example")
    _ingest(picture, "Contacts", person["id"])
    _ingest(picture, "Contacts", person["id"])
    [contact] = _xero_contacts_numbered(picture, person["id"])
    assert (contact["Name"], contact["EmailAddress"]) == ("Mere Rua", "mere@solo.example")
    assert picture.zoho.record("Contacts", person["id"])[zf.CONTACT_PERSON_KEY] == f"{contact['ContactID']}:primary"
    # Xero's webhook for it: the contact becomes an Account in Zoho (as every Xero contact is) and the person
    # joins it; the person is not doubled.
    people = len(picture.zoho.records("Contacts"))
    picture.sync("contacts", [contact["ContactID"]])
    assert len(picture.zoho.records("Contacts")) == people
    account = picture.zoho.record("Contacts", person["id"])["Account_Name"]["id"]
    assert picture.zoho.record("Accounts", account)[zf.ACCOUNT_XERO_ID] == contact["ContactID"]
    # A Contact of an Account is not one: it travels with its Account.
    account_id = _account(picture, name="Other Ltd", account_type="Prospect", people=[("A", "B", "ab@o.example")])
    member = next(r for r in picture.zoho.records("Contacts") if r["Email"] == "ab@o.example")
    _ingest(picture, "Contacts", member["id"])
    assert _xero_contacts_numbered(picture, member["id"]) == [] and account_id


def test_the_channel_watches_creations_where_they_become_xero_contacts(creating):
    picture = creating
    deps, zoho = picture.deps, picture.deps.zoho_client(picture.connection)
    url = "https://example.invalid/webhooks/zoho"
    ensure_channel(picture.connection_id, zoho=zoho, channels=deps.store.channels, credentials=deps.credentials,
                   notify_url=url)
    assert not any(e.endswith(".create") for e in picture.zoho.channels()[0]["events"])
    # Switched on later: the beat's renewal enables the channel again with the creations (no gap to reconcile).
    handed: list = []
    [renewed] = renew_channels(zoho_for=lambda _: zoho, channels=deps.store.channels, credentials=deps.credentials,
                               notify_url=url, enqueue=lambda *a: handed.append(a), create_modules=("Accounts",))
    assert renewed.action == "recreated" and handed == []
    again = ensure_channel(picture.connection_id, zoho=zoho, channels=deps.store.channels,
                           credentials=deps.credentials, notify_url=url, create_modules=("Accounts",))
    assert again.action == "fresh"
    [channel] = picture.zoho.channels()
    assert "Accounts.create" in channel["events"] and "Contacts.create" not in channel["events"]
    picture.zoho._outbox.clear()
    account = picture.zoho.person_create("Accounts", Account_Name="Watched Ltd")
    [notification] = picture.zoho.pending_notifications()
    assert (notification["operation"], notification["ids"]) == ("insert", [account["id"]])


def test_invalid_create_in_xero_config_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"mapping.yaml line 2: create_in_xero.modules.0: Must be one of"):
        parse_sync_config("create_in_xero:\n  modules: [Deals]\n", source="mapping.yaml")
    with pytest.raises(ConfigError, match="filters Accounts, but modules does not list Accounts"):
        parse_sync_config("create_in_xero: {modules: [Contacts], deal_stages: [Closed Won]}", source="m")
    config = parse_sync_config("create_in_xero: {modules: [Accounts], account_types: [Customer]}")
    assert config.creates_in_xero("Accounts") and not config.creates_in_xero("Contacts")
    assert not parse_sync_config("").creates_in_xero("Accounts")


def test_link_and_create_answer_a_vendor_failure_in_one_line_saying_to_run_them_again(creating, capsys):
    """At 3 a.m. Xero or Zoho failing under `connector create` / `connector link` is one line saying what happened
    and what to do, exit 1, never a traceback; running the command again then creates the contact once."""
    picture = creating
    account_id = _account(picture)
    picture.xero.faults.fail_next(1, lost_response=True, delay=0.0, path_prefix=CONTACTS_PATH, method="PUT")

    def run(command, **values):
        return command(argparse.Namespace(connection=None, **values))

    assert run(cli_contacts.cmd_create, zoho_module="Accounts", zoho_id=account_id, name="Acme Ltd") == 1
    err = capsys.readouterr().err
    assert err.startswith("create: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "run the same command again" in err
    picture.zoho.faults.fail_next(1, status=503, path_prefix="/crm/")
    assert run(cli_contacts.cmd_link, zoho_module="Accounts", zoho_id=account_id, xero_contact_id="x") == 1
    err = capsys.readouterr().err
    assert err.startswith("link: ") and err.count("\n") == 1 and "run the same command again" in err, err

    assert run(cli_contacts.cmd_create, zoho_module="Accounts", zoho_id=account_id, name="Acme Ltd") == 0
    assert len(_xero_contacts_numbered(picture, account_id)) == 1


@pytest.fixture
def at_stage(creating):
    """Accounts become Xero contacts once one of their deals reaches Closed Won (won-deal invoices off)."""
    creating.deps.sync_config = dataclasses.replace(creating.deps.sync_config, create_deal_stages=("Closed Won",))
    return creating


def _deal(picture, account_id, stage="Qualification"):
    return picture.zoho.person_create("Deals", Deal_Name="Big one", Account_Name={"id": account_id},
                                      Closing_Date="2026-12-24", Stage=stage)["id"]


def test_a_deal_reaching_the_stage_brings_its_account_to_xero_once_without_waiting_for_the_account(at_stage):
    picture = at_stage
    customer = _account(picture, name="Deal Ltd")
    deal = _deal(picture, customer)
    _ingest(picture, "Accounts", customer)
    _ingest(picture, "Deals", deal)  # created in another stage: nothing, and no Xero call to find that out
    assert _puts(picture) == [] and picture.xero.calls(path_prefix=CONTACTS_PATH) == []

    def deals_of_account_read() -> int:
        return sum(r.path.endswith(f"/Accounts/{customer}/Deals") for r in picture.zoho.requests)

    picture.zoho.person_edit("Deals", deal, Stage="Closed Won")
    reads_before = deals_of_account_read()
    _ingest(picture, "Deals", deal, operation="update")  # the deal's notification alone, no Account edit
    # The deal just read stands in the stage: the filter does not read the Account's deals again.
    assert deals_of_account_read() == reads_before
    [contact] = _xero_contacts_numbered(picture, customer)
    assert contact["Name"] == "Deal Ltd" and contact["EmailAddress"] == "aroha@acme.example"
    assert picture.zoho.record("Accounts", customer)[zf.ACCOUNT_XERO_ID] == contact["ContactID"]
    audit = picture.deps.store.audit.trail(picture.connection_id, "Accounts", customer)
    assert [e.detail.get("action") for e in audit if e.stage == "written"] == [CREATED]

    xero_calls = len(picture.xero.calls())
    _ingest(picture, "Deals", deal, operation="update")  # Zoho delivers it twice
    _ingest(picture, "Deals", deal)  # and a replay of its creation
    assert len(_xero_contacts_numbered(picture, customer)) == 1 and len(_puts(picture)) == 1
    assert len(picture.xero.calls()) == xero_calls  # the id link answers: no Xero call


def test_a_deal_in_another_stage_or_of_a_linked_or_filtered_account_creates_nothing(at_stage):
    picture = at_stage
    customer = _account(picture, name="Early Ltd")
    _ingest(picture, "Deals", _deal(picture, customer, stage="Negotiation/Review"), operation="update")
    prospect = _account(picture, name="Prospect Ltd", account_type="Prospect", people=[])
    _ingest(picture, "Deals", _deal(picture, prospect, stage="Closed Won"), operation="update")  # account_types
    assert _puts(picture) == [] and _xero_contacts_numbered(picture, customer) == []
    stage = picture.deps.store.audit.latest_stage(picture.connection_id, "Accounts", prospect)
    assert stage == "skipped"

    from_xero = picture.xero.create_contact(picture.tenant_id, Name="Synced Ltd")["ContactID"]
    picture.sync("contacts", [from_xero])
    linked = picture.deps.store.links.get(picture.connection_id, "contact", from_xero).zoho_id
    xero_calls = len(picture.xero.calls())
    _ingest(picture, "Deals", _deal(picture, linked, stage="Closed Won"))
    assert len(picture.xero.calls()) == xero_calls and len(picture.xero.contacts(picture.tenant_id)) == 1


def test_with_won_deal_invoices_too_a_won_deal_makes_one_contact_and_one_invoice(at_stage):
    picture = at_stage
    picture.deps.sync_config = dataclasses.replace(picture.deps.sync_config, won_deal_invoices=True,
                                                   won_deal_account_code="200")
    customer = _account(picture, name="Both Ltd")
    deal = picture.zoho.person_create("Deals", Deal_Name="Deck", Account_Name={"id": customer}, Amount=450,
                                      Closing_Date="2026-12-24", Stage="Closed Won")["id"]
    _ingest(picture, "Deals", deal)
    _ingest(picture, "Deals", deal, operation="update")
    [contact] = _xero_contacts_numbered(picture, customer)
    [invoice] = [i for i in picture.xero.invoices(picture.tenant_id) if i.get("Reference") == deal]
    assert invoice["Contact"]["ContactID"] == contact["ContactID"] and len(_puts(picture)) == 1

    # A deal in a stage that is not won but brings its Account: the contact, no invoice (the deal read once).
    picture.deps.sync_config = dataclasses.replace(picture.deps.sync_config,
                                                   create_deal_stages=("Negotiation/Review", "Closed Won"))
    early = _account(picture, name="Early Ltd", people=[])
    deal = _deal(picture, early, stage="Negotiation/Review")
    deal_reads = len(picture.zoho.calls(path_prefix="/crm/v8/Deals"))
    _ingest(picture, "Deals", deal, operation="update")
    assert len(_xero_contacts_numbered(picture, early)) == 1
    assert [i for i in picture.xero.invoices(picture.tenant_id) if i.get("Reference") == deal] == []
    assert len(picture.zoho.calls(path_prefix="/crm/v8/Deals")) == deal_reads + 1


def test_the_channel_watches_deals_where_a_deal_stage_brings_accounts_to_xero(at_stage):
    picture = at_stage
    deps = picture.deps
    stages_on = deps.sync_config
    deps.sync_config = dataclasses.replace(stages_on, create_deal_stages=())
    assert watch_options(deps.sync_config)["with_deals"] is False
    deps.ensure_zoho_channel(picture.connection_id)
    assert not any(e.startswith("Deals.") for e in picture.zoho.channels()[0]["events"])
    deps.sync_config = stages_on  # switched on later: the next connect enables the channel again with Deals
    assert deps.ensure_zoho_channel(picture.connection_id).action == "recreated"
    [channel] = picture.zoho.channels()
    assert {"Deals.edit", "Deals.create", "Accounts.create"} <= set(channel["events"])
