"""A customer's documents in one read: each snapshot names its Xero contact (``contact_id``), written on
every upsert and filled by migration 0013 for rows stored before it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, text

from connector.store import Store
from connector.store.db import migrate, session_scope
from connector.store.snapshots import contact_of
from tests.conftest import fresh_pg_database
from tests.store.conftest import migrated_to

T0 = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)


def _invoice(number: int, contact: str) -> dict:
    return {"InvoiceID": f"inv-{number}", "Type": "ACCREC", "Contact": {"ContactID": contact}, "Total": "10.00"}


def _payment(number: int, contact: str) -> dict:
    return {"PaymentID": f"pay-{number}", "Invoice": {"InvoiceID": "inv-0", "Contact": {"ContactID": contact}}}


def test_contact_of_reads_each_resources_own_path():
    assert contact_of("contacts", {"ContactID": "c-1"}) == "c-1"
    assert contact_of("invoices", _invoice(1, "c-2")) == "c-2"
    assert contact_of("creditnotes", {"CreditNoteID": "n", "Contact": {"ContactID": "c-3"}}) == "c-3"
    assert contact_of("payments", _payment(1, "c-4")) == "c-4"
    assert contact_of("payments", {"PaymentID": "r", "CreditNote": {"Contact": {"ContactID": "c-5"}}}) == "c-5"
    assert contact_of("invoices", {"InvoiceID": "orphan"}) is None


def test_one_query_reads_all_of_a_customers_documents_however_many(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    snapshots.put_many_if_newer(connection_id, "invoices",
                                [(f"inv-{n}", T0, _invoice(n, "big")) for n in range(10_000)])
    snapshots.put_many_if_newer(connection_id, "invoices", [("inv-other", T0, _invoice(-1, "someone-else"))])
    snapshots.put_if_newer(connection_id, "payments", "pay-1", source_updated_at=T0, payload=_payment(1, "big"))
    snapshots.put_if_newer(connection_id, "contacts", "big", source_updated_at=T0, payload={"ContactID": "big"})

    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        found = snapshots.customer_documents(connection_id, "big")
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert len(found["invoices"]) == 10_000
    assert {i["InvoiceID"] for i in found["invoices"]} == {f"inv-{n}" for n in range(10_000)}
    assert [p["PaymentID"] for p in found["payments"]] == ["pay-1"]
    assert found["creditnotes"] == [] and "contacts" not in found


def test_several_customers_in_one_read_and_the_contacts_that_have_invoices(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    snapshots.put_many_if_newer(connection_id, "invoices", [("inv-1", T0, _invoice(1, "a")),
                                                            ("inv-2", T0, _invoice(2, "b"))])
    snapshots.put_if_newer(connection_id, "payments", "pay-1", source_updated_at=T0, payload=_payment(1, "c"))
    found = snapshots.customers_documents(connection_id, ["a", "b", "c", "nobody"])
    assert [i["InvoiceID"] for i in found["a"]["invoices"]] == ["inv-1"]
    assert [i["InvoiceID"] for i in found["b"]["invoices"]] == ["inv-2"]
    assert found["c"]["invoices"] == [] and len(found["c"]["payments"]) == 1
    assert found["nobody"] == {resource: [] for resource in found["a"]}
    assert snapshots.contacts_with(connection_id) == ["a", "b"]


def test_an_invoice_moved_to_another_contact_moves_with_its_newer_version(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    snapshots.put_if_newer(connection_id, "invoices", "inv-1", source_updated_at=T0, payload=_invoice(1, "old"))
    snapshots.put_many_if_newer(connection_id, "invoices", [("inv-1", T0 + timedelta(seconds=1), _invoice(1, "new"))])
    assert snapshots.customer_documents(connection_id, "old")["invoices"] == []
    assert [i["InvoiceID"] for i in snapshots.customer_documents(connection_id, "new")["invoices"]] == ["inv-1"]
    # An older version arriving late moves nothing back.
    snapshots.put_if_newer(connection_id, "invoices", "inv-1", source_updated_at=T0, payload=_invoice(1, "old"))
    assert snapshots.customer_documents(connection_id, "old")["invoices"] == []


def test_migration_fills_the_contact_of_rows_stored_before_it(empty_engine) -> None:
    with migrated_to(empty_engine, "0012") as connection:
        for number, (resource, xero_id, payload) in enumerate([
            ("contacts", "c-1", {"ContactID": "c-1"}),
            ("invoices", "inv-1", _invoice(1, "c-1")),
            ("payments", "pay-1", _payment(1, "c-1")),
            ("creditnotes", "cn-1", {"CreditNoteID": "cn-1", "Contact": {"ContactID": "c-2"}}),
        ]):
            connection.execute(text(
                "INSERT INTO xero_snapshots (id, connection_id, resource, xero_id, source_updated_at, payload, "
                "fetched_at) VALUES (:id, 1, :resource, :xero_id, '2026-01-01 00:00:00', :payload, "
                "'2026-01-01 00:00:00')"), {"id": number + 1, "resource": resource, "xero_id": xero_id,
                                           "payload": json.dumps(payload)})
    migrate(empty_engine)
    store = Store(empty_engine)
    found = store.snapshots.customer_documents(1, "c-1", ("contacts", "invoices", "payments", "creditnotes"))
    assert {r: [p.get("ContactID") or p.get("InvoiceID") or p.get("PaymentID") for p in v]
            for r, v in found.items()} == {"contacts": ["c-1"], "invoices": ["inv-1"], "payments": ["pay-1"],
                                           "creditnotes": []}
    assert [n["CreditNoteID"] for n in store.snapshots.customer_documents(1, "c-2")["creditnotes"]] == ["cn-1"]


# The table and its indexes: index entries returned (an index) and rows read by sequential scans (the table),
# in this transaction so far.
_ENTRIES_READ = text(
    "SELECT sum(pg_stat_get_xact_tuples_returned(oid)) FROM ("
    " SELECT CAST(CAST(:table AS text) AS regclass) AS oid"
    " UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = CAST(CAST(:table AS text) AS regclass)) AS relations")


def _entries_read(store: Store, table: str) -> int:
    with session_scope(store.sessions) as session:
        return int(session.execute(_ENTRIES_READ, {"table": table}).scalar_one())


def test_a_batch_reads_its_customers_rows_and_no_others_on_a_table_never_analysed(pg_admin) -> None:
    # A first import: the table grew from empty and has no statistics yet (autovacuum kept away, as in the
    # minute before it first runs). An IN list was then planned as "every row of the connection, filtered".
    with fresh_pg_database(pg_admin) as url:
        store = Store.open(url)
        try:
            with store.engine.begin() as connection:
                connection.exec_driver_sql("ALTER TABLE xero_snapshots SET (autovacuum_enabled = false)")
            connection_id = store.connections.create(name="Big", xero_tenant_id="t-big").id
            customers = [f"c-{n:03d}" for n in range(300)]
            store.snapshots.put_many_if_newer(connection_id, "contacts",
                                              [(c, T0, {"ContactID": c}) for c in customers])
            # Batches of 50 invoices as a first import brings them, each followed by its customers' read.
            returned = 0
            with store.transaction():
                before = _entries_read(store, "xero_snapshots")
                for batch in range(60):
                    numbers = range(50 * batch, 50 * batch + 50)
                    store.snapshots.put_many_if_newer(connection_id, "invoices", [
                        (f"inv-{n}", T0, _invoice(n, customers[n % 300])) for n in numbers])
                    found = store.snapshots.customers_documents(connection_id, [customers[n % 300] for n in numbers])
                    returned += sum(len(docs["invoices"]) for docs in found.values())
                read = _entries_read(store, "xero_snapshots") - before
            # Customer c has, after batch b, the invoices n < 50 (b + 1) with n % 300 == c.
            assert returned == sum(len(range(n % 300, 50 * (n // 50 + 1), 300)) for n in range(3000))
            # One probe per customer: what it returns, not the connection's rows once per batch.
            assert read <= returned + 60 * 50, read

            # The same for the deal decisions of invoice batches, the table growing from empty as each batch's
            # decisions are saved: each batch reads its own invoices' rows (here, the previous batch's again).
            with store.engine.begin() as connection:
                connection.exec_driver_sql("ALTER TABLE invoice_deals SET (autovacuum_enabled = false)")
            found = 0
            with store.transaction():
                before = _entries_read(store, "invoice_deals")
                for batch in range(40):
                    ids = [f"inv-{n}" for n in range(50 * batch, 50 * batch + 50)]
                    found += len(store.deal_links.decisions(connection_id, [f"inv-{n}" for n in range(
                        50 * batch - 50, 50 * batch + 50)]))
                    store.deal_links.save(connection_id, {i: {"deal_id": None, "rule": "unassigned"} for i in ids})
                read = _entries_read(store, "invoice_deals") - before
            assert found == 39 * 50
            assert read <= 2 * found, read
        finally:
            store.close()


def test_the_documents_without_their_lines_are_the_same_documents_less_their_lines(store: Store,
                                                                                    connection_id: int) -> None:
    invoice = {**_invoice(1, "a"), "LineItems": [{"Description": "Consulting", "LineAmount": "10.00"}],
               "Payments": [{"PaymentID": "pay-1", "Amount": "4.00"}]}
    store.snapshots.put_if_newer(connection_id, "invoices", "inv-1", source_updated_at=T0, payload=invoice)
    store.snapshots.put_if_newer(connection_id, "payments", "pay-1", source_updated_at=T0, payload=_payment(1, "a"))
    whole = store.snapshots.customers_documents(connection_id, ["a"])["a"]
    assert whole["invoices"] == [invoice]
    lean = store.snapshots.customers_documents(connection_id, ["a"], without_lines=True)["a"]
    assert lean["invoices"] == [{k: v for k, v in invoice.items() if k != "LineItems"}]
    assert lean["payments"] == whole["payments"] == [_payment(1, "a")]


def test_the_documents_cut_to_some_keys_keep_those_present_nulls_included(store: Store, connection_id: int) -> None:
    invoice = {**_invoice(1, "a"), "LineItems": [{"Description": "Consulting", "LineAmount": "10.00"}],
               "Payments": [{"PaymentID": "pay-1", "Amount": "4.00", "Note": None}], "DueDate": None}
    store.snapshots.put_if_newer(connection_id, "invoices", "inv-1", source_updated_at=T0, payload=invoice)
    keys = ("InvoiceID", "Payments", "DueDate", "CurrencyRate")  # CurrencyRate: absent, stays absent
    cut = store.snapshots.customers_documents(connection_id, ["a"], without_lines=True, only_keys=keys)["a"]
    if store.engine.dialect.name == "postgresql":
        assert cut["invoices"] == [{k: invoice[k] for k in ("InvoiceID", "Payments", "DueDate")}]
    else:  # SQLite: the documents without their lines
        assert cut["invoices"] == [{k: v for k, v in invoice.items() if k != "LineItems"}]
    with pytest.raises(ValueError):
        store.snapshots.customers_documents(connection_id, ["a"], without_lines=True, only_keys=("a' OR '1",))
