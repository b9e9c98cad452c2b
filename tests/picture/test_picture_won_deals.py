"""A won Zoho deal becomes ONE Xero invoice (mapping.yaml won_deals): opt-in, lines from its sales order, quote,
products or Amount, never doubled, refusals explained, a deal leaving its stage reported, a deal whose account
is not in Xero yet waiting. The ingest task run in-process against the Xero and Zoho sandboxes over HTTP."""

from __future__ import annotations

import dataclasses
import threading
from decimal import Decimal

import pytest
from sqlalchemy import update

from connector.call_purpose import WON_DEAL_INVOICE
from connector.channels import ensure_channel
from connector.errors import TransientError
from connector.mapping import won_deals as won
from connector.pipeline.to_xero import deals as won_deals
from connector.record_locks import RecordLocks
from connector.status import collect_status
from connector.store import audit as stages
from connector.store.parked import WAITING_FOR_ACCOUNT
from connector.store.tables import ParkedWork
from connector.store.won_deals import CREATED, LEFT
from tests.reliability.conftest import published  # noqa: F401  (a fixture)
from workers.maintenance_tasks import resume_parked_work
from workers.zoho_tasks import ingest_zoho_notification

INVOICES = "/api.xro/2.0/Invoices"


@pytest.fixture
def won_on(picture):
    """The system with won-deal invoices switched on (DRAFT, the Amount line on sales account 200)."""
    picture.deps.sync_config = dataclasses.replace(picture.deps.sync_config, won_deal_invoices=True,
                                                   won_deal_account_code="200")
    return picture


def _customer(picture, name="Kauri Builders Ltd"):
    contact = picture.xero.create_contact(picture.tenant_id, Name=name)["ContactID"]
    picture.sync("contacts", [contact])
    return contact, picture.deps.store.links.get(picture.connection_id, "contact", contact).zoho_id


def _deal(picture, account, name="Deck and pergola", stage="Negotiation/Review", **fields):
    return picture.zoho.person_create("Deals", Deal_Name=name, Account_Name={"id": account},
                                      Closing_Date="2026-06-30", Stage=stage, **fields)["id"]


def _notify(picture, *deal_ids, source=None, operation="update"):
    notification = {"module": "Deals", "ids": list(deal_ids), "operation": operation, "channel_id": "7",
                    "server_time": None, "affected_fields": []}
    if source:
        notification["source"] = source
    return ingest_zoho_notification.apply(args=[picture.connection_id, notification])


def _win(picture, deal_id):
    picture.zoho.person_edit("Deals", deal_id, Stage="Closed Won")
    return _notify(picture, deal_id)


def _invoices_of(picture, deal_id):
    """The deal's invoices, as the Xero sandbox itself holds them."""
    return [i for i in picture.xero.invoices(picture.tenant_id) if i.get("Reference") == deal_id]


def _trail(picture, deal_id):
    return picture.deps.store.audit.trail(picture.connection_id, won_deals.RECORD_TYPE, deal_id)


def _lines(invoice):
    return [(line["Description"], Decimal(str(line["Quantity"])), Decimal(str(line["UnitAmount"])),
             line.get("ItemCode"), line.get("AccountCode")) for line in invoice["LineItems"]]


def test_switched_off_a_won_deal_makes_no_invoice(picture):
    _, account = _customer(picture)
    deal = _deal(picture, account, Amount=Decimal("5000"))
    _win(picture, deal)
    assert _invoices_of(picture, deal) == [] and _trail(picture, deal) == []


def test_a_won_deal_becomes_one_draft_invoice_for_its_amount_even_notified_twice_and_replayed(won_on):
    contact, account = _customer(won_on)
    deal = _deal(won_on, account, Amount=Decimal("5000"))
    _notify(won_on, deal)
    assert _invoices_of(won_on, deal) == []  # not won yet
    assert _trail(won_on, deal)[-1].stage == stages.SKIPPED

    _win(won_on, deal)
    _notify(won_on, deal)  # Zoho delivered the notification twice
    _notify(won_on, deal, source="reconcile")  # a channel gap's reconciliation lists it again
    _notify(won_on, deal, source="replay")

    [invoice] = _invoices_of(won_on, deal)
    assert (invoice["Type"], invoice["Status"], invoice["Contact"]["ContactID"]) == ("ACCREC", "DRAFT", contact)
    assert _lines(invoice) == [("Deck and pergola", Decimal(1), Decimal("5000.00"), None, "200")]
    row = won_on.deps.store.won_deals.get(won_on.connection_id, deal)
    assert (row.state, row.invoice_id, row.invoice_number) == (CREATED, invoice["InvoiceID"], invoice["InvoiceNumber"])
    written = [e for e in _trail(won_on, deal) if e.stage == stages.WRITTEN]
    assert len(written) == 1 and written[0].detail["lines_from"] == won.AMOUNT
    assert "already invoiced" in _trail(won_on, deal)[-1].detail["reason"]
    # One create reached Xero; the repeats read the deal in Zoho and stopped there.
    assert len(won_on.xero.calls(path_prefix=INVOICES, method="PUT")) == 1
    # Counted in the day budget under its own purpose (live work, never planned away).
    assert won_on.deps.budget_ledger.calls_by_purpose(won_on.connection_id).get(WON_DEAL_INVOICE) == 1


def test_lines_come_from_the_sales_order_else_the_quote_else_the_deal_products(won_on):
    _, account = _customer(won_on)
    zoho = won_on.zoho
    decking = zoho.person_create("Products", Product_Name="Decking boards", Unit_Price=Decimal("40"),
                                 Xero_Item_Code="DECK-01")["id"]
    labour = zoho.person_create("Products", Product_Name="Labour hour", Unit_Price=Decimal("85"))["id"]

    ordered = _deal(won_on, account, "Ordered deal", Amount=Decimal("1"))
    zoho.person_create("Quotes", Subject="Old quote", Account_Name={"id": account}, Deal_Name={"id": ordered},
                       Quoted_Items=[{"Product_Name": {"id": labour}, "Quantity": 1, "List_Price": 1}])
    zoho.person_create("Sales_Orders", Subject="SO for deck", Account_Name={"id": account}, Deal_Name={"id": ordered},
                       Ordered_Items=[{"Product_Name": {"id": decking}, "Quantity": 30, "List_Price": 40,
                                       "Discount": 100},
                                      {"Product_Name": {"id": labour}, "Quantity": 12, "List_Price": 85,
                                       "Description": "Installation"}])
    quoted = _deal(won_on, account, "Quoted deal")
    zoho.person_create("Quotes", Subject="Quote", Account_Name={"id": account}, Deal_Name={"id": quoted},
                       Quote_Stage="Confirmed",
                       Quoted_Items=[{"Product_Name": {"id": labour}, "Quantity": 3, "List_Price": 90}])
    zoho.person_create("Quotes", Subject="Lost quote", Account_Name={"id": account}, Deal_Name={"id": quoted},
                       Quote_Stage="Closed Lost",
                       Quoted_Items=[{"Product_Name": {"id": decking}, "Quantity": 999, "List_Price": 1}])
    with_products = _deal(won_on, account, "Products deal")
    zoho.relate("Deals", with_products, "Products", decking)

    for deal in (ordered, quoted, with_products):
        zoho.person_edit("Deals", deal, Stage="Closed Won")
    _notify(won_on, ordered, quoted, with_products)

    [by_order] = _invoices_of(won_on, ordered)
    assert _lines(by_order) == [("Decking boards", Decimal(30), Decimal("40.00"), "DECK-01", None),
                                ("Installation", Decimal(12), Decimal("85.00"), None, "200")]
    assert Decimal(str(by_order["LineItems"][0]["LineAmount"])) == Decimal("1100.00")  # 30 x 40 - 100 off
    [by_quote] = _invoices_of(won_on, quoted)
    assert _lines(by_quote) == [("Labour hour", Decimal(3), Decimal("90.00"), None, "200")]
    [by_products] = _invoices_of(won_on, with_products)
    assert _lines(by_products) == [("Decking boards", Decimal(1), Decimal("40.00"), "DECK-01", None)]
    sources = {d: next(e for e in _trail(won_on, d) if e.stage == stages.WRITTEN).detail["lines_from"]
               for d in (ordered, quoted, with_products)}
    assert sources == {ordered: won.SALES_ORDER, quoted: won.QUOTE, with_products: won.PRODUCTS}


def test_the_invoice_links_back_to_its_deal_and_the_deal_shows_its_money(won_on):
    won_on.deps.sync_config = dataclasses.replace(won_on.deps.sync_config, won_deal_status="AUTHORISED",
                                                  won_deal_tax_type="NONE")
    _, account = _customer(won_on)
    deal = _deal(won_on, account, Amount=Decimal("1200"))
    _win(won_on, deal)
    [invoice] = _invoices_of(won_on, deal)
    assert invoice["Status"] == "AUTHORISED"

    won_on.sync("invoices", [invoice["InvoiceID"]])  # the Xero webhook for our create, as the pipeline takes it

    decision = won_on.deps.store.deal_links.decisions(won_on.connection_id, [invoice["InvoiceID"]])
    assert decision[invoice["InvoiceID"]]["deal_id"] == deal and decision[invoice["InvoiceID"]]["rule"] == "reference"
    figures = won_on.zoho.record("Deals", deal)
    assert Decimal(str(figures["Xero_Invoiced"])) == Decimal("1200.00")
    assert Decimal(str(figures["Xero_Outstanding"])) == Decimal("1200.00")
    _notify(won_on, deal)  # the figures' write notifies Deals.edit too: still one invoice
    assert len(_invoices_of(won_on, deal)) == 1


def test_a_lost_answer_on_create_still_leaves_one_invoice(won_on):
    _, account = _customer(won_on)
    deal = _deal(won_on, account, Amount=Decimal("800"))
    won_on.zoho.person_edit("Deals", deal, Stage="Closed Won")
    # Xero saves the invoice, then the answer never arrives (the client sees a gateway timeout).
    won_on.xero.faults.fail_next(1, lost_response=True, delay=0.05, path_prefix=INVOICES, method="PUT")

    _notify(won_on, deal)
    _notify(won_on, deal)

    [invoice] = _invoices_of(won_on, deal)
    row = won_on.deps.store.won_deals.get(won_on.connection_id, deal)
    assert (row.state, row.invoice_id) == (CREATED, invoice["InvoiceID"])
    assert any(e.detail.get("adopted") for e in _trail(won_on, deal) if e.stage == stages.WRITTEN)
    # One create, one look for it by Reference after the lost answer, and no further Xero call.
    assert won_on.deps.budget_ledger.calls_by_purpose(won_on.connection_id).get(WON_DEAL_INVOICE) == 2


def test_xero_answers_a_repeated_idempotency_key_with_the_first_invoice(won_on):
    contact, _ = _customer(won_on)
    body = {"Type": "ACCREC", "Contact": {"ContactID": contact}, "Reference": "4876876000000999999",
            "LineItems": [{"Description": "Deck", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}
    key = won.idempotency_key(won_on.connection_id, "4876876000000999999", body)
    first = won_on.client().create_invoice(body, idempotency_key=key)
    again = won_on.client().create_invoice(body, idempotency_key=key)
    assert first["InvoiceID"] == again["InvoiceID"] and len(_invoices_of(won_on, "4876876000000999999")) == 1


def test_a_refused_tax_type_is_a_clear_failure_naming_the_setting_and_is_not_retried(won_on):
    won_on.deps.sync_config = dataclasses.replace(won_on.deps.sync_config, won_deal_tax_type="NOSUCHTAX")
    _, account = _customer(won_on)
    deal = _deal(won_on, account, Amount=Decimal("300"))

    _win(won_on, deal)

    assert _invoices_of(won_on, deal) == []
    last = _trail(won_on, deal)[-1]
    assert last.stage == stages.FAILED and "won_deals.tax_type" in last.detail["reason"]
    assert len(won_on.xero.calls(path_prefix=INVOICES, method="PUT")) == 1  # no retry loop
    failures = won_on.deps.store.audit.failures(won_on.connection_id)
    assert [(f.record_type, f.record_id) for f in failures] == [(won_deals.RECORD_TYPE, deal)]
    assert won_on.deps.store.audit.failure_counts(won_on.connection_id, failures[0].created_at) == {
        "ValidationException": 1}

    won_on.deps.sync_config = dataclasses.replace(won_on.deps.sync_config, won_deal_tax_type="NONE")  # fixed
    won_on.zoho.person_edit("Deals", deal, Description="saved again")
    _notify(won_on, deal)
    assert len(_invoices_of(won_on, deal)) == 1


def test_a_deal_moved_out_of_its_stage_is_reported_once_and_never_invoiced_twice(won_on):
    _, account = _customer(won_on)
    deal = _deal(won_on, account, Amount=Decimal("950"))
    _win(won_on, deal)
    [invoice] = _invoices_of(won_on, deal)

    won_on.zoho.person_edit("Deals", deal, Stage="Negotiation/Review")
    _notify(won_on, deal)
    _notify(won_on, deal)

    reports = [e for e in _trail(won_on, deal) if e.stage == stages.FAILED]
    assert len(reports) == 1
    assert reports[0].detail["reason"].startswith(
        f"deal {deal} left Closed Won after its invoice {invoice['InvoiceNumber']} was created; review in Xero")
    assert won_on.deps.store.won_deals.get(won_on.connection_id, deal).state == LEFT
    assert reports[0].detail["error_code"] == "DealLeftWonStage"
    assert won_on.xero.invoice(won_on.tenant_id, invoice["InvoiceID"])["Status"] == "DRAFT"  # not voided

    _win(won_on, deal)  # back in Closed Won
    assert len(_invoices_of(won_on, deal)) == 1
    assert "no second invoice" in _trail(won_on, deal)[-1].detail["reason"]


def test_a_deal_whose_account_is_not_in_xero_waits_parked_then_proceeds_once_linked(won_on, memory_broker,
                                                                                      published):  # noqa: F811
    store = won_on.deps.store
    account = won_on.zoho.person_create("Accounts", Account_Name="Made In Zoho Ltd")["id"]
    won_on.zoho.person_create("Contacts", Last_Name="Ruru", Email="ruru@madeinzoho.example",
                              Account_Name={"id": account})
    # Xero has a customer of that name with another email: which it is waits for a person (needs_review).
    contact = won_on.xero.create_contact(won_on.tenant_id, Name="Made In Zoho Ltd",
                                         EmailAddress="accounts@elsewhere.example")["ContactID"]
    deal = _deal(won_on, account, Amount=Decimal("640"))

    _win(won_on, deal)

    assert _invoices_of(won_on, deal) == []
    assert store.parked.count(won_on.connection_id, reason=WAITING_FOR_ACCOUNT) == 1
    parked = _trail(won_on, deal)[-1]
    assert parked.stage == stages.PARKED and parked.detail["reason"] == "waiting for its account to reach Xero"
    [status] = collect_status(won_on.deps)["connections"]
    assert status["won_deals"]["waiting_for_account"] == 1 and status["parked"][WAITING_FOR_ACCOUNT] == 1

    # The account reaches Xero (here: a person says it is that contact), then the wait ends.
    store.links.save(won_on.connection_id, "contact", contact, zoho_module="Accounts", zoho_id=account,
                     content_hash="-")
    with store.sessions() as session:  # the wait is over
        session.execute(update(ParkedWork).values(resume_after=None))
        session.commit()
    resume_parked_work.apply(args=[[won_on.connection_id]])
    [resumed] = published.take("connector.ingest_zoho_notification")
    ingest_zoho_notification.apply(args=resumed.args)

    [invoice] = _invoices_of(won_on, deal)
    assert invoice["Contact"]["ContactID"] == contact
    assert store.parked.count(won_on.connection_id) == 0
    [status] = collect_status(won_on.deps)["connections"]
    assert status["won_deals"] == {"creating": 0, "created": 1, "left": 0, "waiting_for_account": 0}


def test_a_won_deal_of_an_account_made_in_zoho_creates_its_xero_contact_then_its_invoice(won_on):
    account = won_on.zoho.person_create("Accounts", Account_Name="New In Zoho Ltd")["id"]  # create_in_xero off
    deal = _deal(won_on, account, Amount=Decimal("640"))

    _win(won_on, deal)
    _notify(won_on, deal)  # again: nothing new

    [contact] = [c for c in won_on.xero.contacts(won_on.tenant_id) if c.get("ContactNumber") == account]
    [invoice] = _invoices_of(won_on, deal)
    assert invoice["Contact"]["ContactID"] == contact["ContactID"] and contact["Name"] == "New In Zoho Ltd"
    assert won_on.deps.store.links.get(won_on.connection_id, "contact", contact["ContactID"]).zoho_id == account


def test_the_channel_watches_deals_only_where_won_deal_invoices_are_on(picture):
    deps = picture.deps

    def channel(with_deals):
        return ensure_channel(picture.connection_id, zoho=deps.zoho_client(picture.connection), channels=deps.store.channels,
                              credentials=deps.credentials, notify_url="https://connector.example.com/webhooks/zoho",
                              with_deals=with_deals)

    channel(False)
    assert "Deals.edit" not in deps.store.channels.for_connection(picture.connection_id)[0].events
    _, account = _customer(picture)
    deal = _deal(picture, account)
    picture.zoho.person_edit("Deals", deal, Stage="Closed Won")
    assert not [n for n in picture.zoho.pending_notifications() if n["module"] == "Deals"]

    assert channel(True).action == "recreated"  # switched on later: the channel is enabled again with Deals
    assert {"Deals.edit", "Deals.create"} <= set(deps.store.channels.for_connection(picture.connection_id)[0].events)
    picture.zoho.person_edit("Deals", deal, Stage="Closed Lost")
    [sent] = [n for n in picture.zoho.pending_notifications() if n["module"] == "Deals"]
    assert sent["ids"] == [deal] and sent["operation"] == "update"
    entered_won = _deal(picture, account, "Entered won", stage="Closed Won")
    assert [n["ids"] for n in picture.zoho.pending_notifications()
            if n["module"] == "Deals" and n["operation"] == "insert"] == [[entered_won]]


def test_a_deal_entered_already_won_is_invoiced_once(won_on):
    _, account = _customer(won_on)
    deal = _deal(won_on, account, stage="Closed Won", Amount=Decimal("450"))
    _notify(won_on, deal, operation="insert")
    _notify(won_on, deal)  # and edited afterwards
    assert len(_invoices_of(won_on, deal)) == 1


def test_a_second_worker_cannot_take_a_deal_whose_invoice_is_being_created(won_on):
    _, account = _customer(won_on)
    deal = _deal(won_on, account, Amount=Decimal("700"))
    won_on.zoho.person_edit("Deals", deal, Stage="Closed Won")
    held = won_on.xero.faults.hold_next(path_prefix=INVOICES)  # the first worker's create waits in Xero
    first = threading.Thread(target=_notify, args=(won_on, deal))
    first.start()
    try:
        assert held.wait_reached()
        deps = won_on.deps
        second = won_deals.WonDealInvoices(
            connection_id=won_on.connection_id, zoho=deps.zoho_client(won_on.connection), xero=won_on.client(),
            links=deps.store.links, won_deals=deps.store.won_deals, audit=deps.store.audit,
            locks=RecordLocks(deps.redis, wait=0), config=deps.sync_config)
        with pytest.raises(TransientError, match="being written by another worker"):
            second.take_in([deal])  # its task retries later, and then finds the invoice made
    finally:
        held.release()
        first.join()
    assert len(_invoices_of(won_on, deal)) == 1
    _notify(won_on, deal)
    assert len(_invoices_of(won_on, deal)) == 1
