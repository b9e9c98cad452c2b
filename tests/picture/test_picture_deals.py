"""Deals: invoices linked by the configured rules, a person's link kept, the deal's figures, payments as notes.
Against the Xero and Zoho sandboxes over HTTP."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

from connector.mapping import zoho_fields as zf
from connector.mapping.xero_values import parse_xero_date, parse_xero_day

LINES = [{"Description": "Consulting", "Quantity": Decimal(3), "UnitAmount": Decimal("100.00"), "AccountCode": "200",
          "TaxType": "NONE"}]


def _account(picture, contact_id):
    return picture.deps.store.links.get(picture.connection_id, "contact", contact_id).zoho_id


def _zoho_invoice(picture, invoice_id):
    return picture.zoho.record("Invoices", picture.deps.store.links.get(picture.connection_id, "invoice", invoice_id).zoho_id)


def _deal(picture, account, name, stage="Qualification"):
    return picture.zoho.person_create("Deals", Deal_Name=name, Account_Name={"id": account}, Closing_Date="2026-06-30",
                                      Stage=stage)["id"]


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _customer(picture, name="Acme Deals Ltd"):
    contact = picture.xero.create_contact(picture.tenant_id, Name=name)["ContactID"]
    picture.sync("contacts", [contact])
    return contact, _account(picture, contact)


def _pay(picture, invoice_id, amount):
    payment = picture.xero.add_payment(picture.tenant_id, invoice_id, Decimal(amount))
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "payments", payment["PaymentID"],
                                              source_updated_at=parse_xero_date(payment["UpdatedDateUTC"]), payload=payment)
    picture.push().related("payments", [payment["PaymentID"]])
    return payment


def _decision(picture, invoice_id):
    return picture.deps.store.deal_links.decisions(picture.connection_id, [invoice_id])[invoice_id]


def test_a_reference_links_the_invoice_and_the_deal_shows_its_money_and_payments(picture):
    contact, account = _customer(picture)
    deal = _deal(picture, account, "Website rebuild")
    _deal(picture, account, "Support contract")  # two open deals: only the reference can decide
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES, Reference=f"PO 77 / {deal}")["InvoiceID"]
    picture.sync("invoices", [invoice_id])

    assert _zoho_invoice(picture, invoice_id)[zf.INVOICE_DEAL] == {"id": deal, "name": "Website rebuild"}
    assert _decision(picture, invoice_id)["rule"] == "reference"
    trail = picture.deps.store.audit.trail(picture.connection_id, "invoice_deal", invoice_id)
    assert trail[-1].detail["rule"] == "reference" and trail[-1].detail["deal_id"] == deal
    related = picture.zoho.records("Invoices")
    assert [r["id"] for r in related if (r.get(zf.INVOICE_DEAL) or {}).get("id") == deal] == \
        [_zoho_invoice(picture, invoice_id)["id"]]
    figures = picture.zoho.record("Deals", deal)
    assert (_money(figures["Xero_Invoiced"]), _money(figures["Xero_Outstanding"]), figures["Xero_Payment_Status"]) == (
        Decimal("300.00"), Decimal("300.00"), "Outstanding")

    payment = _pay(picture, invoice_id, "120.00")
    figures = picture.zoho.record("Deals", deal)
    assert (_money(figures["Xero_Paid"]), _money(figures["Xero_Outstanding"])) == (Decimal("120.00"), Decimal("180.00"))
    assert figures["Xero_Last_Payment_Date"] == parse_xero_day(payment["Date"]).isoformat()
    [note] = picture.zoho.records("Notes")
    assert note["Parent_Id"]["id"] == _zoho_invoice(picture, invoice_id)["id"]
    assert "Amount: 120.00" in note["Note_Content"] and payment["PaymentID"] in note["Note_Content"]

    writes = len(picture.zoho.writes())
    picture.push().related("payments", [payment["PaymentID"]])  # a replay
    picture.push().invoices([invoice_id])
    assert len(picture.zoho.writes()) == writes and len(picture.zoho.records("Notes")) == 1

    reversed_payment = picture.xero.reverse_payment(picture.tenant_id, payment["PaymentID"])
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "payments", payment["PaymentID"],
                                              source_updated_at=parse_xero_date(reversed_payment["UpdatedDateUTC"]),
                                              payload=reversed_payment)
    picture.push().related("payments", [payment["PaymentID"]])
    [note] = picture.zoho.records("Notes")
    assert note["Note_Title"].endswith("(REVERSED in Xero)")
    assert _money(picture.zoho.record("Deals", deal)["Xero_Outstanding"]) == Decimal("300.00")


def test_the_only_open_deal_and_a_person_link_that_every_later_sync_keeps(picture):
    contact, account = _customer(picture)
    only_open = _deal(picture, account, "Only open")
    _deal(picture, account, "Done", stage="Closed Won")
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES)["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    assert _decision(picture, invoice_id)["deal_id"] == only_open
    assert _decision(picture, invoice_id)["rule"] == "only_open_deal"

    # A person moves the invoice to another deal in Zoho: kept, and both deals' figures follow.
    chosen = _deal(picture, account, "Chosen by sales")
    picture.zoho.person_edit("Invoices", _zoho_invoice(picture, invoice_id)["id"], **{zf.INVOICE_DEAL: {"id": chosen}})
    for _ in range(2):
        picture.xero.update_invoice(picture.tenant_id, invoice_id, Reference=f"now says {only_open}")
        picture.sync("invoices", [invoice_id])
        assert _zoho_invoice(picture, invoice_id)[zf.INVOICE_DEAL]["id"] == chosen
        assert _decision(picture, invoice_id) | {"reason": ""} == {"deal_id": chosen, "rule": "kept", "reason": "",
                                                                   "contact_id": contact}
    assert _money(picture.zoho.record("Deals", chosen)["Xero_Invoiced"]) == Decimal("300.00")
    assert _money(picture.zoho.record("Deals", only_open)["Xero_Invoiced"]) == Decimal("0.00")


def test_an_invoice_no_rule_places_is_listed_then_linked_by_hand_and_a_deleted_deal_unlinks(picture):
    contact, account = _customer(picture)
    first, second = _deal(picture, account, "One"), _deal(picture, account, "Two")
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES)["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    [row] = picture.deps.store.deal_links.unassigned(picture.connection_id)
    assert row["invoice_id"] == invoice_id and "2 open deals" in row["reason"]
    assert _zoho_invoice(picture, invoice_id).get(zf.INVOICE_DEAL) is None

    picture.zoho.person_edit("Invoices", _zoho_invoice(picture, invoice_id)["id"], **{zf.INVOICE_DEAL: {"id": second}})
    picture.sync("invoices", [invoice_id])
    assert picture.deps.store.deal_links.unassigned(picture.connection_id) == []
    assert _money(picture.zoho.record("Deals", second)["Xero_Invoiced"]) == Decimal("300.00")

    picture.zoho.person_delete("Deals", second)  # Zoho empties the invoice's lookup
    picture.xero.update_invoice(picture.tenant_id, invoice_id, Reference="changed")
    picture.sync("invoices", [invoice_id])
    assert _decision(picture, invoice_id)["deal_id"] == first  # the rules decide again: one open deal left
    assert _decision(picture, invoice_id)["rule"] == "only_open_deal"


def test_rules_come_from_the_config(picture):
    picture.deps.sync_config = dataclasses.replace(picture.deps.sync_config, deal_rules=("kept", "reference"))
    contact, account = _customer(picture)
    _deal(picture, account, "Only open")
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES)["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    decision = _decision(picture, invoice_id)
    assert decision["deal_id"] is None and decision["reason"] == "kept: no link yet; reference: names no deal of this account"


def test_a_note_whose_insert_answer_was_lost_is_found_not_written_twice(picture):
    contact, account = _customer(picture)
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES)["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    payment = picture.xero.add_payment(picture.tenant_id, invoice_id, Decimal("50.00"))
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "payments", payment["PaymentID"],
                                              source_updated_at=parse_xero_date(payment["UpdatedDateUTC"]), payload=payment)
    # Zoho saves the note, and the answer never arrives: the push fails as a task would, and is retried.
    picture.zoho.faults.fail_next(lost_response=True, delay=0.1, path_prefix="/crm/v8/Notes", method="POST")
    try:
        picture.push().related("payments", [payment["PaymentID"]])
    except Exception:  # noqa: BLE001 - the lost answer surfaces as a transport error; the task would retry
        pass
    assert picture.zoho.faults.pending() == 0 and len(picture.zoho.records("Notes")) == 1
    assert picture.deps.store.links.get(picture.connection_id, "payment_note", payment["PaymentID"]) is None
    picture.push().related("payments", [payment["PaymentID"]])
    [note] = picture.zoho.records("Notes")
    assert "Amount: 50.00" in note["Note_Content"]
    assert picture.deps.store.links.get(picture.connection_id, "payment_note", payment["PaymentID"]).zoho_id == note["id"]


def test_a_deal_turns_overdue_by_the_daily_recompute_with_no_xero_call(make_system):
    from datetime import datetime, timedelta, timezone

    from connector.clock import ManualClock
    from workers.zoho_tasks import recompute_deal_money

    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))
    picture = make_system(clock=clock)
    contact, account = _customer(picture)
    deal = _deal(picture, account, "Due soon")
    due = (clock.now() + timedelta(days=10)).date().isoformat()
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES, DueDate=due,
                                             Reference=deal)["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    assert picture.zoho.record("Deals", deal)["Xero_Payment_Status"] == "Outstanding"
    assert recompute_deal_money() == 0  # nothing changed: nothing written

    clock.advance(11 * 86_400)
    xero_calls = len(picture.xero.calls(path_prefix="/api.xro/2.0"))
    assert recompute_deal_money() == 1
    assert picture.zoho.record("Deals", deal)["Xero_Payment_Status"] == "Overdue"
    assert len(picture.xero.calls(path_prefix="/api.xro/2.0")) == xero_calls


def test_an_invoice_moved_to_another_customer_leaves_the_deal_the_connector_chose(picture):
    contact, account = _customer(picture)
    old_deal = _deal(picture, account, "Old customer's deal")
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES)["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    assert _decision(picture, invoice_id)["deal_id"] == old_deal

    other, other_account = _customer(picture, "New Owner Ltd")
    new_deal = _deal(picture, other_account, "New customer's deal")
    # Xero's record now names the other customer (the sandbox keeps an invoice's contact, so the stored
    # snapshot stands for Xero's newer version).
    stored = picture.deps.store.snapshots.get(picture.connection_id, "invoices", invoice_id)
    moved = {**stored.payload, "Contact": {**stored.payload["Contact"], "ContactID": other, "Name": "New Owner Ltd"}}
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "invoices", invoice_id, payload=moved,
                                              source_updated_at=stored.source_updated_at + timedelta(seconds=1))
    picture.push().invoices([invoice_id])
    assert _zoho_invoice(picture, invoice_id)[zf.INVOICE_DEAL]["id"] == new_deal
    assert (_decision(picture, invoice_id)["deal_id"], _decision(picture, invoice_id)["rule"]) == (new_deal, "only_open_deal")
    assert _money(picture.zoho.record("Deals", old_deal)["Xero_Invoiced"]) == Decimal("0.00")
    assert _money(picture.zoho.record("Deals", new_deal)["Xero_Invoiced"]) == Decimal("300.00")


def _deal_reads(picture, since):
    """(Deals list pages, Accounts' Deals related-list reads) the Zoho sandbox served since ``since``."""
    paths = [r.path.split("?")[0] for r in picture.zoho.requests[since:] if r.method == "GET"]
    return (sum(p == "/crm/v8/Deals" for p in paths),
            sum(p.startswith("/crm/v8/Accounts/") and p.endswith("/Deals") for p in paths))


def test_a_batch_of_many_accounts_invoices_reads_the_deals_list_once_not_each_account(picture):
    customers = [_customer(picture, f"Batch customer {n}") for n in range(6)]
    open_deals = {account: _deal(picture, account, f"Open {n}") for n, (_, account) in enumerate(customers)}
    invoices = {picture.xero.create_invoice(picture.tenant_id, contact, LINES)["InvoiceID"]: account
                for contact, account in customers}

    since = len(picture.zoho.requests)
    picture.sync("invoices", list(invoices))

    assert _deal_reads(picture, since) == (1, 0)  # one page lists every deal; no read per account
    assert {i: _decision(picture, i)["deal_id"] for i in invoices} == {i: open_deals[a] for i, a in invoices.items()}


def test_when_the_deals_list_is_longer_than_the_reads_it_saves_each_account_is_read(picture):
    customers = [_customer(picture, f"Busy customer {n}") for n in range(2)]
    open_deals = {account: _deal(picture, account, f"Open {n}") for n, (_, account) in enumerate(customers)}
    other, other_account = _customer(picture, "Many deals Ltd")
    for n in range(200):  # the list runs past its first page of 200
        _deal(picture, other_account, f"Other {n}", stage="Closed Lost")
    invoices = {picture.xero.create_invoice(picture.tenant_id, contact, LINES)["InvoiceID"]: account
                for contact, account in customers}

    since = len(picture.zoho.requests)
    picture.sync("invoices", list(invoices))

    assert _deal_reads(picture, since) == (1, 2)  # one page allowed for two accounts, then each account
    assert {i: _decision(picture, i)["deal_id"] for i in invoices} == {i: open_deals[a] for i, a in invoices.items()}


def test_a_person_setting_the_deal_lookup_in_zoho_is_the_manual_link_at_once_without_echo(picture):
    from connector.channels import WATCHED_EVENTS

    # Zoho's notifications watch Invoices (https://www.zoho.com/crm/developer/docs/api/v8/notifications/enable.html)
    assert "Invoices.edit" in WATCHED_EVENTS
    picture.deps.zoho_client(picture.connection).enable_watch([{
        "channel_id": "1000000068001", "events": list(WATCHED_EVENTS),
        "notify_url": "https://example.invalid/webhooks/zoho", "token": "t"}])
    contact, account = _customer(picture)
    first, second = _deal(picture, account, "Website rebuild"), _deal(picture, account, "Support contract")
    invoice_id = picture.xero.create_invoice(picture.tenant_id, contact, LINES, Reference=f"for {first}")["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    sync = picture.push().deals

    # Our own writes to the invoice notify the channel: handled, they change nothing.
    for notification in picture.zoho.pending_notifications():
        if notification["module"] == "Invoices":
            assert sync.lookups_edited(notification["ids"]) == 0
    assert _decision(picture, invoice_id)["rule"] == "reference"

    picture.zoho._outbox.clear()
    zoho_id = _zoho_invoice(picture, invoice_id)["id"]
    picture.zoho.person_edit("Invoices", zoho_id, **{zf.INVOICE_DEAL: {"id": second}})
    [edit] = [n for n in picture.zoho.pending_notifications() if n["module"] == "Invoices"]
    assert sync.lookups_edited(edit["ids"]) == 1

    decision = _decision(picture, invoice_id)
    assert (decision["deal_id"], decision["rule"]) == (second, "manual")
    trail = picture.deps.store.audit.trail(picture.connection_id, "invoice_deal", invoice_id)
    assert trail[-1].detail["rule"] == "manual" and trail[-1].detail["deal_id"] == second
    assert _money(picture.zoho.record("Deals", second)["Xero_Invoiced"]) == Decimal("300.00")
    assert _money(picture.zoho.record("Deals", first)["Xero_Invoiced"]) == Decimal("0.00")
    assert _zoho_invoice(picture, invoice_id)[zf.INVOICE_DEAL]["id"] == second  # never written back over

    # The same notification again (Zoho may resend), and the deals' own writes: nothing more is written.
    writes = len(picture.zoho.writes())
    assert sync.lookups_edited(edit["ids"]) == 0
    assert len(picture.zoho.writes()) == writes
    # A later sync of the invoice keeps the person's link.
    picture.sync("invoices", [invoice_id])
    assert _decision(picture, invoice_id)["deal_id"] == second


def test_a_contact_merged_in_xero_moves_its_money_and_its_rule_made_deal_links_to_the_contact_kept(picture):
    duplicate, duplicate_account = _customer(picture, "Acme Ltd (duplicate)")
    kept, kept_account = _customer(picture, "Acme Ltd")
    old_deal = _deal(picture, duplicate_account, "Deal on the duplicate")
    person_deal = _deal(picture, duplicate_account, "A person's choice")
    kept_deal = _deal(picture, kept_account, "Deal on the contact kept")
    by_rule = picture.xero.create_invoice(picture.tenant_id, duplicate, LINES, Reference=f"for {old_deal}")["InvoiceID"]
    by_person = picture.xero.create_invoice(picture.tenant_id, duplicate, LINES)["InvoiceID"]
    picture.sync("invoices", [by_rule, by_person])
    picture.zoho.person_edit("Invoices", _zoho_invoice(picture, by_person)["id"], **{zf.INVOICE_DEAL: {"id": person_deal}})
    picture.push().invoices([by_person])  # the person's link is now the kept one
    assert _decision(picture, by_person)["deal_id"] == person_deal

    # A person merges the duplicate into the contact kept in Xero: the duplicate is archived and names the
    # contact it went to; its invoices now belong to the contact kept.
    merged = picture.xero.merge_contacts(picture.tenant_id, duplicate, kept)
    assert (merged["ContactStatus"], merged["MergedToContactID"]) == ("ARCHIVED", kept)
    assert {picture.xero.invoice(picture.tenant_id, i)["Contact"]["ContactID"] for i in (by_rule, by_person)} == {kept}
    picture.sync("invoices", [by_rule, by_person])
    picture.sync("contacts", [duplicate, kept])

    # Deals: the link a rule made to the duplicate's deal moves to the kept contact's only open deal; a
    # person's link stays where the person put it. Each deal's figures follow.
    assert (_decision(picture, by_rule)["deal_id"], _decision(picture, by_rule)["rule"]) == (kept_deal, "only_open_deal")
    assert _decision(picture, by_person)["deal_id"] == person_deal
    assert _money(picture.zoho.record("Deals", old_deal)["Xero_Invoiced"]) == Decimal("0.00")
    assert _money(picture.zoho.record("Deals", kept_deal)["Xero_Invoiced"]) == Decimal("300.00")
    assert _money(picture.zoho.record("Deals", person_deal)["Xero_Invoiced"]) == Decimal("300.00")
    # Accounts: the money is on the contact kept; the duplicate reads archived, with nothing owed.
    kept_in_zoho = picture.zoho.record("Accounts", kept_account)
    assert _money(kept_in_zoho[zf.ACCOUNT_TOTAL_INVOICED]) == Decimal("600.00")
    assert _money(kept_in_zoho[zf.ACCOUNT_OUTSTANDING]) == Decimal("600.00")
    duplicate_in_zoho = picture.zoho.record("Accounts", duplicate_account)
    assert duplicate_in_zoho[zf.ACCOUNT_XERO_STATUS] == "ARCHIVED"
    assert duplicate_in_zoho[zf.ACCOUNT_PAYMENT_STATUS] == "No invoices"
    assert _money(duplicate_in_zoho[zf.ACCOUNT_OUTSTANDING]) == Decimal("0.00")


def _store_payment(picture, payment):
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "payments", payment["PaymentID"],
                                              source_updated_at=parse_xero_date(payment["UpdatedDateUTC"]), payload=payment)


def test_refunds_are_noted_on_the_account_once_each_and_shown_reversed(picture):
    contact, account = _customer(picture, "Refunded Ltd")
    credit = picture.xero.create_credit_note(picture.tenant_id, contact, LINES, Status="AUTHORISED")
    picture.fetch("creditnotes", [credit["CreditNoteID"]])
    refund = picture.xero.refund(picture.tenant_id, "CreditNote", credit["CreditNoteID"], Decimal("120.00"),
                                 reference="Cheque 55")
    _store_payment(picture, refund)
    picture.push().related("payments", [refund["PaymentID"]])

    [note] = picture.zoho.records("Notes")
    assert note["Parent_Id"]["id"] == account  # no invoice to attach it to: the customer's Account
    assert note["Note_Title"] == "Xero refund 120.00 NZD"
    for line in (f"Refund of: credit note {credit['CreditNoteNumber']}", "Amount: 120.00 NZD", "Reference: Cheque 55",
                 f"Xero payment id: {refund['PaymentID']}", "Status: paid out to the customer"):
        assert line in note["Note_Content"]
    # The refund lowered the credit: the credit note was read again, and the Account's credit follows.
    stored = picture.deps.store.snapshots.get(picture.connection_id, "creditnotes", credit["CreditNoteID"])
    assert _money(stored.payload["RemainingCredit"]) == Decimal("180.00")
    assert _money(picture.zoho.record("Accounts", account)["Xero_Credit_Available"]) == Decimal("180.00")

    writes = len(picture.zoho.writes())
    picture.push().related("payments", [refund["PaymentID"]])  # a replay writes nothing
    assert len(picture.zoho.writes()) == writes and len(picture.zoho.records("Notes")) == 1

    _store_payment(picture, picture.xero.reverse_payment(picture.tenant_id, refund["PaymentID"]))
    picture.push().related("payments", [refund["PaymentID"]])
    [note] = picture.zoho.records("Notes")
    assert note["Note_Title"] == "Xero refund 120.00 NZD (REVERSED in Xero)"

    overpayment = picture.xero.receive_overpayment(picture.tenant_id, contact, Decimal("50.00"))["OverpaymentID"]
    prepayment = picture.xero.receive_prepayment(picture.tenant_id, contact, Decimal("30.00"))["PrepaymentID"]
    picture.fetch("overpayments", [overpayment])
    picture.fetch("prepayments", [prepayment])
    refunds = [picture.xero.refund(picture.tenant_id, "Overpayment", overpayment, Decimal("50.00")),
               picture.xero.refund(picture.tenant_id, "Prepayment", prepayment, Decimal("10.00"))]
    for payment in refunds:
        _store_payment(picture, payment)
    picture.push().related("payments", [p["PaymentID"] for p in refunds])
    notes = {n["Note_Title"]: n for n in picture.zoho.records("Notes")}
    assert set(notes) == {"Xero refund 120.00 NZD (REVERSED in Xero)", "Xero refund 50.00 NZD", "Xero refund 10.00 NZD"}
    assert f"Refund of: overpayment {overpayment}" in notes["Xero refund 50.00 NZD"]["Note_Content"]
    assert f"Refund of: prepayment {prepayment}" in notes["Xero refund 10.00 NZD"]["Note_Content"]
    assert {n["Parent_Id"]["id"] for n in notes.values()} == {account}


def test_a_pushed_batch_of_invoices_is_read_from_the_store_once_its_deals_included(picture, monkeypatch):
    contact, account = _customer(picture)
    deal = _deal(picture, account, "Read once")
    invoices = [picture.xero.create_invoice(picture.tenant_id, contact, LINES, Reference=f"PO {n} / {deal}")["InvoiceID"]
                for n in range(3)]
    picture.fetch("invoices", invoices)
    store = picture.deps.store.snapshots
    reads: list[list[str]] = []
    read_many = store.get_many

    def counted(connection_id, resource, xero_ids):
        if resource == "invoices":
            reads.append(sorted(xero_ids))
        return read_many(connection_id, resource, xero_ids)

    monkeypatch.setattr(store, "get_many", counted)
    assert sorted(picture.push().invoices(invoices).written) == sorted(invoices)
    assert reads == [sorted(invoices)]  # the push's own read under the locks; the deals start from it
    assert all(_decision(picture, i)["deal_id"] == deal for i in invoices)
    assert _money(picture.zoho.record("Deals", deal)["Xero_Invoiced"]) == Decimal("900.00")
