"""Delta polls against the sandbox: cursors per resource, payments, no second GET, full sweeps."""

from __future__ import annotations

from decimal import Decimal

from connector.clock import ManualClock
from connector.polling import MAX_PAGE_SIZE, poll_resource
from tests.scale.test_scale_governor_e2e import API, seed_invoices


def poll(world, connection_id: int, resource: str, handed_on: list, **options):
    store = world.deps.store
    return poll_resource(connection_id, resource, xero=world.client(connection_id, priority=2),
                         cursors=store.poll_cursors, snapshots=store.snapshots, audit=store.audit,
                         on_changed=lambda ids, sync_ids: handed_on.append((resource, ids)), **options)


def test_polls_find_changes_since_the_cursor_including_payments(make_system, pg_database_url):
    clock = ManualClock()
    world = make_system(database_url=pg_database_url, clock=clock)
    connection_id, tenant_id = world.connect("Poll Ltd")
    invoice_ids = seed_invoices(world, tenant_id, 5)
    store = world.deps.store
    handed_on: list = []

    first = poll(world, connection_id, "invoices", handed_on, page_size=2)
    assert first.pages == 3 and sorted(first.changed) == sorted(invoice_ids)
    snapshot = store.snapshots.get(connection_id, "invoices", invoice_ids[0])
    assert snapshot.payload["LineItems"]  # lists pass `page`, so records come complete: no second GET
    assert [r.query for r in world.xero.calls(path_prefix=API + "/Invoices")
            if "IDs=" in r.query] == []

    clock.advance(10)
    payment = world.xero.add_payment(tenant_id, invoice_ids[1], "5.00")
    handed_on.clear()
    again = poll(world, connection_id, "invoices", handed_on)
    assert again.changed == [invoice_ids[1]]  # the payment bumped it; the rest was seen already
    poll(world, connection_id, "payments", handed_on)
    assert handed_on == [("invoices", [invoice_ids[1]]), ("payments", [payment["PaymentID"]])]
    assert store.snapshots.get(connection_id, "payments", payment["PaymentID"]).payload["Amount"] == "5.00"
    # The later polls asked only for what changed since their cursor.
    since = [r for r in world.xero.calls(path_prefix=API + "/Invoices")][-1]
    assert "page=1" in since.query and "pageSize=1000" in since.query
    cursor = store.poll_cursors.get(connection_id, "invoices")
    assert cursor.modified_since is not None and cursor.polled_at == clock.now()

    handed_on.clear()
    assert poll(world, connection_id, "invoices", handed_on).changed == [] and handed_on == []


def test_a_full_sweep_finds_balance_changes_that_if_modified_since_cannot(make_system):
    clock = ManualClock()
    world = make_system(clock=clock)
    connection_id, tenant_id = world.connect("Sweep Ltd")
    invoice_ids = seed_invoices(world, tenant_id, 2)
    handed_on: list = []
    poll(world, connection_id, "contacts", handed_on)
    contact_id = handed_on[0][1][0]
    snapshots = world.deps.store.snapshots
    owed_before = snapshots.get(connection_id, "contacts", contact_id).payload["Balances"]["AccountsReceivable"]
    clock.advance(5)
    world.xero.create_contact(tenant_id, Name="Later Ltd")  # moves the cursor past the first contact
    poll(world, connection_id, "contacts", handed_on)

    clock.advance(10)
    world.xero.add_payment(tenant_id, invoice_ids[0], "3.00")  # the contact's balance changes, its date does not
    handed_on.clear()
    assert poll(world, connection_id, "contacts", handed_on).changed == []
    swept = poll(world, connection_id, "contacts", handed_on, full_sweep=True)
    assert swept.changed == [contact_id]
    owed_now = snapshots.get(connection_id, "contacts", contact_id).payload["Balances"]["AccountsReceivable"]
    outstanding = world.xero.contact(tenant_id, contact_id)["Balances"]["AccountsReceivable"]["Outstanding"]
    assert owed_now["Outstanding"] == str(outstanding)
    assert Decimal(owed_before["Outstanding"]) - Decimal(owed_now["Outstanding"]) == Decimal("3.00")
    assert world.deps.store.poll_cursors.get(connection_id, "contacts").swept_at == clock.now()


def test_a_listed_page_costs_the_same_few_transactions_for_ten_records_as_for_a_hundred(make_system,
                                                                                       pg_database_url):
    from sqlalchemy import event

    world = make_system(database_url=pg_database_url, clock=ManualClock())
    engine = world.deps.store.engine
    transactions: list[int] = []

    def count(*_):
        transactions[-1] += 1

    def poll_counted(connection_id: int, **options) -> list[str]:
        handed_on: list = []
        transactions.append(0)
        event.listen(engine, "begin", count)
        try:
            poll(world, connection_id, "invoices", handed_on, page_size=MAX_PAGE_SIZE, **options)
        finally:
            event.remove(engine, "begin", count)
        return [xero_id for _, ids in handed_on for xero_id in ids]

    seeded = {}
    for name, records in (("Small Ltd", 10), ("Large Ltd", 100)):
        connection_id, tenant_id = world.connect(name)
        seeded[connection_id] = seed_invoices(world, tenant_id, records)
        assert sorted(poll_counted(connection_id)) == sorted(seeded[connection_id])
        # Listed again, unchanged: each record is compared with its snapshot, nothing is handed on.
        assert poll_counted(connection_id, full_sweep=True) == []
    small_first, small_again, large_first, large_again = transactions
    # The page is read, stored and audited in batches: a hundred records cost no more than ten.
    assert (large_first, large_again) == (small_first, small_again)
    assert large_first < 100
