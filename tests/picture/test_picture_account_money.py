"""The Account's money figures in Zoho, computed from stored snapshots: after invoices and payments, and
daily for what only time changes, with no Xero contact read (the Xero sandbox's request log says so)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from connector.clock import ManualClock
from connector.mapping import zoho_fields as zf
from workers import zoho_tasks

CONSULTING = {"Description": "Consulting", "Quantity": Decimal(1), "AccountCode": "200", "TaxType": "NONE"}


def _account(picture, contact_id: str) -> dict:
    link = picture.deps.store.links.get(picture.connection_id, "contact", contact_id)
    return picture.zoho.record("Accounts", link.zoho_id)


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _receivable(picture, contact_id: str) -> tuple[Decimal, Decimal]:
    balances = picture.xero.contact(picture.tenant_id, contact_id)["Balances"]["AccountsReceivable"]
    return _money(balances["Outstanding"]), _money(balances["Overdue"])


def _contact_reads(picture) -> int:
    return len(picture.xero.calls(path_prefix="/api.xro/2.0/Contacts", method="GET"))


def _pay(picture, invoice_id: str, amount: Decimal, day: date) -> dict:
    """A payment in Xero, stored as the payments poll stores it, and pushed as the poll hands it on."""
    from connector.mapping.xero_values import parse_xero_date

    payment = picture.xero.add_payment(picture.tenant_id, invoice_id, amount, date=day)
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "payments", payment["PaymentID"],
                                              source_updated_at=parse_xero_date(payment["UpdatedDateUTC"]),
                                              payload=payment)
    assert picture.push().related("payments", [payment["PaymentID"]]).written == [payment["PaymentID"]]
    return payment


def test_invoices_and_a_payment_show_on_the_account_with_no_contact_read(make_system):
    clock = ManualClock()
    picture = make_system(clock=clock)
    today = clock.now().date()
    contact = picture.xero.create_contact(picture.tenant_id, Name="Money Ltd")["ContactID"]
    late = picture.xero.create_invoice(picture.tenant_id, contact, [{**CONSULTING, "UnitAmount": Decimal("300.00")}],
                                       Date=(today - timedelta(days=40)).isoformat(),
                                       DueDate=(today - timedelta(days=10)).isoformat())["InvoiceID"]
    current = picture.xero.create_invoice(picture.tenant_id, contact, [{**CONSULTING, "UnitAmount": Decimal("120.00")}],
                                          Date=(today - timedelta(days=2)).isoformat(),
                                          DueDate=(today + timedelta(days=20)).isoformat())["InvoiceID"]
    picture.xero.create_invoice(picture.tenant_id, contact, [{**CONSULTING, "UnitAmount": Decimal("999.00")}],
                                Status="DRAFT")
    picture.sync("invoices", [late, current])

    account = _account(picture, contact)
    assert (_money(account[zf.ACCOUNT_OUTSTANDING]), _money(account[zf.ACCOUNT_OVERDUE])) == _receivable(picture, contact)
    assert _money(account[zf.ACCOUNT_OUTSTANDING]) == Decimal("420.00")
    assert _money(account[zf.ACCOUNT_OVERDUE]) == Decimal("300.00")
    assert _money(account[zf.ACCOUNT_TOTAL_INVOICED]) == Decimal("420.00")  # the draft does not count
    assert account[zf.ACCOUNT_LAST_INVOICE_DATE] == (today - timedelta(days=2)).isoformat()
    assert account[zf.ACCOUNT_PAYMENT_STATUS] == "Overdue"
    assert account[zf.ACCOUNT_LAST_PAYMENT_DATE] is None

    reads_before = _contact_reads(picture)
    _pay(picture, late, Decimal("300.00"), today - timedelta(days=1))
    assert _contact_reads(picture) == reads_before  # the payment did not re-read the contact
    account = _account(picture, contact)
    assert (_money(account[zf.ACCOUNT_OUTSTANDING]), _money(account[zf.ACCOUNT_OVERDUE])) == _receivable(picture, contact)
    assert (_money(account[zf.ACCOUNT_OUTSTANDING]), _money(account[zf.ACCOUNT_OVERDUE])) == (Decimal("120.00"), Decimal("0.00"))
    assert account[zf.ACCOUNT_PAYMENT_STATUS] == "Outstanding"
    assert account[zf.ACCOUNT_LAST_PAYMENT_DATE] == (today - timedelta(days=1)).isoformat()
    assert _money(account[zf.ACCOUNT_LAST_PAYMENT_AMOUNT]) == Decimal("300.00")

    _pay(picture, current, Decimal("120.00"), today)
    account = _account(picture, contact)
    assert account[zf.ACCOUNT_PAYMENT_STATUS] == "Paid up"
    assert _money(account[zf.ACCOUNT_OUTSTANDING]) == Decimal("0.00")
    assert _contact_reads(picture) == reads_before


def test_the_daily_recompute_turns_an_invoice_overdue_with_no_xero_call(make_system, monkeypatch):
    clock = ManualClock()
    picture = make_system(clock=clock)
    today = clock.now().date()
    contact = picture.xero.create_contact(picture.tenant_id, Name="Later Ltd")["ContactID"]
    nobody = picture.xero.create_contact(picture.tenant_id, Name="No Invoices Ltd")["ContactID"]
    invoice = picture.xero.create_invoice(picture.tenant_id, contact, [{**CONSULTING, "UnitAmount": Decimal("80.00")}],
                                          DueDate=(today + timedelta(days=1)).isoformat())["InvoiceID"]
    picture.sync("invoices", [invoice])
    picture.sync("contacts", [nobody])
    assert _account(picture, contact)[zf.ACCOUNT_PAYMENT_STATUS] == "Outstanding"
    assert _account(picture, nobody)[zf.ACCOUNT_PAYMENT_STATUS] == "No invoices"

    clock.advance(2 * 86_400)  # nothing changes in Xero: only the date
    queued: list[list] = []
    monkeypatch.setattr(zoho_tasks.push_records_to_zoho, "apply_async", lambda args, **_: queued.append(args))
    xero_calls = len(picture.xero.requests)
    assert zoho_tasks.recompute_account_money() == 2
    assert queued == [[picture.connection_id, "contacts", sorted([contact, nobody])]]  # every stored contact
    outcome = picture.push().contacts(queued[0][2])  # what the queued push runs
    assert (outcome.written, outcome.skipped) == ([contact], [nobody])  # unchanged figures: no write
    assert len(picture.xero.requests) == xero_calls  # no Xero call at all
    account = _account(picture, contact)
    assert account[zf.ACCOUNT_PAYMENT_STATUS] == "Overdue"
    assert (_money(account[zf.ACCOUNT_OUTSTANDING]), _money(account[zf.ACCOUNT_OVERDUE])) == _receivable(picture, contact)

    # Run again the same day: the figures did not change, so nothing is written to Zoho.
    zoho_writes = len(picture.zoho.writes())
    assert picture.push().contacts([contact]).skipped == [contact]
    assert len(picture.zoho.writes()) == zoho_writes


def test_an_invoice_moved_to_another_customer_leaves_the_old_account_right_by_the_next_recompute(make_system,
                                                                                                  monkeypatch):
    picture = make_system()
    first = picture.xero.create_contact(picture.tenant_id, Name="First Owner Ltd")["ContactID"]
    second = picture.xero.create_contact(picture.tenant_id, Name="Second Owner Ltd")["ContactID"]
    invoice = picture.xero.create_invoice(picture.tenant_id, first, [{**CONSULTING, "UnitAmount": Decimal("50.00")}],
                                          DueDate="2099-01-01")["InvoiceID"]
    picture.sync("invoices", [invoice])
    picture.sync("contacts", [second])
    assert _account(picture, first)[zf.ACCOUNT_PAYMENT_STATUS] == "Outstanding"

    # Xero delivers the invoice with another contact (the sandbox does not simulate re-assigning an
    # invoice's contact, so its newer version is stored as a fetch would store it).
    stored = picture.deps.store.snapshots.get(picture.connection_id, "invoices", invoice)
    moved = {**stored.payload, "Contact": {"ContactID": second, "Name": "Second Owner Ltd"}}
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "invoices", invoice,
                                              source_updated_at=stored.source_updated_at + timedelta(seconds=1),
                                              payload=moved)
    picture.push().invoices([invoice])
    assert _account(picture, second)[zf.ACCOUNT_PAYMENT_STATUS] == "Outstanding"  # at once
    assert _money(_account(picture, second)[zf.ACCOUNT_OUTSTANDING]) == Decimal("50.00")

    # The first customer's snapshots no longer name the invoice; the daily recompute covers every stored
    # customer, so its Account is right by then.
    queued: list[list] = []
    monkeypatch.setattr(zoho_tasks.push_records_to_zoho, "apply_async", lambda args, **_: queued.append(args))
    zoho_tasks.recompute_account_money()
    for _connection, _resource, ids in queued:
        picture.push().contacts(ids)
    account = _account(picture, first)
    assert account[zf.ACCOUNT_PAYMENT_STATUS] == "No invoices"
    assert _money(account[zf.ACCOUNT_OUTSTANDING]) == Decimal("0.00")


def test_polled_overpayments_and_prepayments_are_credit_on_the_account(make_system):
    """Received in Xero (no webhook), listed by the payments-cadence poll, stored with their contact, and
    handed on: the Account's credit available and outstanding follow, with no contact read."""
    from connector.polling import poll_resource
    from connector.xero_schedule import CREDIT_RESOURCES, PAYMENT_RESOURCES

    clock = ManualClock()
    picture = make_system(clock=clock)
    xero, tenant, store = picture.xero, picture.tenant_id, picture.deps.store
    contact = xero.create_contact(tenant, Name="Prepaid Ltd")["ContactID"]
    invoice = xero.create_invoice(tenant, contact, [{**CONSULTING, "UnitAmount": Decimal("200.00")}])["InvoiceID"]
    picture.sync("invoices", [invoice])
    overpayment = xero.receive_overpayment(tenant, contact, Decimal("50.00"))["OverpaymentID"]
    prepayment = xero.receive_prepayment(tenant, contact, Decimal("30.00"))["PrepaymentID"]
    clock.advance(5)
    xero.allocate_credit(tenant, "Prepayment", prepayment, invoice, Decimal("10.00"))
    reads_before = _contact_reads(picture)

    def poll_payments() -> dict[str, list[str]]:
        handed: dict[str, list[str]] = {}
        for resource in PAYMENT_RESOURCES + CREDIT_RESOURCES:
            poll_resource(picture.connection_id, resource, xero=picture.client(priority=2),
                          cursors=store.poll_cursors, snapshots=store.snapshots, audit=store.audit,
                          on_changed=lambda ids, sync_ids, r=resource: handed.setdefault(r, []).extend(ids))
        for resource, ids in handed.items():
            picture.push().related(resource, ids)
        return handed

    assert poll_payments() == {"overpayments": [overpayment], "prepayments": [prepayment]}
    stored = store.snapshots.customers_documents(picture.connection_id, [contact])[contact]
    assert ([o["OverpaymentID"] for o in stored["overpayments"]], [p["PrepaymentID"] for p in stored["prepayments"]]) \
        == ([overpayment], [prepayment])
    account = _account(picture, contact)
    assert _money(account[zf.ACCOUNT_CREDIT_AVAILABLE]) == Decimal("70.00")  # 50 + 30 - 10 allocated
    assert (_money(account[zf.ACCOUNT_OUTSTANDING]), _money(account[zf.ACCOUNT_OVERDUE])) == _receivable(picture, contact)
    assert _money(account[zf.ACCOUNT_OUTSTANDING]) == Decimal("120.00")  # 190 due - 70 credit

    clock.advance(5)
    xero.allocate_credit(tenant, "Overpayment", overpayment, invoice, Decimal("50.00"))
    assert poll_payments() == {"overpayments": [overpayment]}  # the cursor skips what did not change
    account = _account(picture, contact)
    assert _money(account[zf.ACCOUNT_CREDIT_AVAILABLE]) == Decimal("20.00")
    assert (_money(account[zf.ACCOUNT_OUTSTANDING]), _money(account[zf.ACCOUNT_OVERDUE])) == _receivable(picture, contact)
    assert _contact_reads(picture) == reads_before


def test_a_batch_writes_each_account_once_and_only_when_its_figures_change(make_system):
    picture = make_system()
    store = picture.deps.store
    first = picture.xero.create_contact(picture.tenant_id, Name="Once Ltd")["ContactID"]
    second = picture.xero.create_contact(picture.tenant_id, Name="Twice Ltd")["ContactID"]
    invoices = [picture.xero.create_invoice(picture.tenant_id, contact, [{**CONSULTING, "UnitAmount": amount}])["InvoiceID"]
                for contact, amount in ((first, Decimal("100.00")), (first, Decimal("50.00")),
                                        (second, Decimal("70.00")))]

    def account_writes() -> int:
        return sum(w["count"] for w in picture.zoho.writes("Accounts"))

    def contact_stages(contact: str) -> list[str]:
        """What each push of its Account ended in, as the audit trail tells."""
        return [e.stage for e in store.audit.trail(picture.connection_id, "contact", contact) for _ in range(e.times)
                if e.stage in ("written", "skipped")]

    # Neither customer is in Zoho yet: the invoices push them first, with the figures of all three invoices
    # (stored before the push), and the same batch does not push their Accounts a second time.
    picture.sync("invoices", invoices)
    assert account_writes() == 2
    assert contact_stages(first) == contact_stages(second) == ["written"]
    assert _money(_account(picture, first)[zf.ACCOUNT_OUTSTANDING]) == Decimal("150.00")

    # The same invoices again (a replay): no figure changed, so no Account is written, nor audited.
    picture.push().invoices(invoices)
    assert account_writes() == 2
    assert contact_stages(first) == ["written"]

    # One customer's invoice paid: that Account alone is written, once, and none of its people.
    people_writes = len(picture.zoho.writes("Contacts"))
    _pay(picture, invoices[0], Decimal("100.00"), date.today())
    assert account_writes() == 3
    assert len(picture.zoho.writes("Contacts")) == people_writes
    assert contact_stages(first) == ["written", "written"]
    assert contact_stages(second) == ["written"]
    assert (_money(_account(picture, first)[zf.ACCOUNT_OUTSTANDING]), _money(_account(picture, first)[zf.ACCOUNT_OVERDUE])
            ) == _receivable(picture, first)
    assert _money(_account(picture, first)[zf.ACCOUNT_OUTSTANDING]) == Decimal("50.00")
