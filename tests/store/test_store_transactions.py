"""How many transactions the store's units of work cost on PostgreSQL, as the server ended them on the
work's connections (``tests/store/server_transactions.py``), and what ``Store.transaction`` groups (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import pytest

from connector.store import Store
from connector.store.audit import RECEIVED
from connector.store.links import LinkWrite
from connector.store.vault import Vault
from tests.processes import wait_for
from tests.store.server_transactions import server_transactions


def test_a_unit_of_work_is_one_transaction_on_postgresql_the_pool_check_included(pg_database_url) -> None:
    store = Store.open(pg_database_url)
    try:
        connection_id = store.connections.create(name="Demo Co", xero_tenant_id="tenant-1").id

        # Each read checks a fresh connection out of the pool and back in: no ping, no reset of its own. A read
        # runs outside a transaction block (autocommit, db.single_statement), so one more is the server's for the
        # statement psycopg prepares on its sixth run on the connection, once
        # (https://www.psycopg.org/psycopg3/docs/advanced/prepare.html): its Parse, sent with a Sync of its own,
        # is an implicit transaction when none is open.
        assert server_transactions(store, lambda: [store.connections.get(connection_id) for _ in range(25)]) == 25 + 1
    finally:
        store.close()


def test_store_transaction_makes_many_store_calls_one_transaction(pg_database_url) -> None:
    store = Store.open(pg_database_url)
    try:
        connection_id = store.connections.create(name="Demo Co", xero_tenant_id="tenant-1").id

        def batch() -> None:
            with store.transaction():
                store.links.get_many(connection_id, "invoice", ["i-1", "i-2"])
                store.links.save_many(connection_id, [LinkWrite("invoice", "i-1", "Invoices", "z-1", "h1")])
                store.audit.record(connection_id=connection_id, record_type="invoice", record_id="i-1",
                                   stage=RECEIVED)
                store.write_ledger.record_many(connection_id, "zoho", {"z-1": "h1"})

        assert server_transactions(store, batch) == 1
        assert server_transactions(store, lambda: (batch(), batch())) == 2
        assert store.links.get(connection_id, "invoice", "i-1").zoho_id == "z-1"
    finally:
        store.close()


def test_a_pooled_connection_the_server_ended_is_replaced_on_checkout(pg_admin, pg_database_url) -> None:
    store = Store.open(pg_database_url)
    try:
        store.connections.all()  # one connection now waits in the pool
        name = store.engine.url.database
        pg_admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        # pg_terminate_backend only signals: the backend sends its FATAL notice and closes the socket as
        # it exits, and leaves pg_stat_activity after that.
        wait_for(lambda: pg_admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                          (name,)).fetchone()[0] == 0, timeout=10, what="the backend to exit")
        assert store.connections.create(name="Demo Co", xero_tenant_id="tenant-1").id  # no error: a fresh one
    finally:
        store.close()


def test_store_transaction_writes_all_or_nothing(store: Store, connection_id: int) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.links.save_many(connection_id, [LinkWrite("invoice", "i-1", "Invoices", "z-1", "h1")])
            store.audit.record(connection_id=connection_id, record_type="invoice", record_id="i-1", stage=RECEIVED)
            raise RuntimeError("the batch failed half-way")
    assert store.links.get(connection_id, "invoice", "i-1") is None and store.audit.count() == 0

    with store.transaction():
        with store.transaction():  # a nested block joins the outer one
            store.links.save_many(connection_id, [LinkWrite("invoice", "i-1", "Invoices", "z-1", "h1")])
        assert store.links.get(connection_id, "invoice", "i-1").zoho_id == "z-1"  # read inside sees the write
        store.audit.record(connection_id=connection_id, record_type="invoice", record_id="i-1", stage=RECEIVED)
    assert store.links.get(connection_id, "invoice", "i-1").zoho_id == "z-1" and store.audit.count() == 1


def test_batch_reads_inside_one_transaction_see_a_save_made_in_it(store: Store, connection_id: int) -> None:
    """Reads return rows, not objects a shared session would keep: a link read, saved anew and read again
    within one transaction reads back as saved."""
    store.links.save_many(connection_id, [LinkWrite("invoice", "i-1", "Invoices", "z-1", "old")])
    with store.transaction():
        assert store.links.get_many(connection_id, "invoice", ["i-1"])["i-1"].content_hash == "old"
        store.links.save_many(connection_id, [LinkWrite("invoice", "i-1", "Invoices", "z-1", "new")])
        assert store.links.get_many(connection_id, "invoice", ["i-1"])["i-1"].content_hash == "new"


def test_reads_inside_one_transaction_see_its_pending_orm_changes(store: Store, connection_id: int) -> None:
    # The reads run Core statements on the session's connection; what the ORM has not flushed yet must show.
    other_id = store.connections.create(name="Other", xero_tenant_id="tenant-2").id
    credentials = store.credentials(Vault(Vault.generate_keyring("k1")))
    with store.transaction():
        store.connections.set_state(connection_id, "disabled", "paused")
        credentials.share(other_id, "xero", connection_id)
        assert (store.connections.get(connection_id).state, store.connections.by_tenant("tenant-1").state_reason) == (
            "disabled", "paused")
        assert credentials.owner_of(other_id, "xero") == connection_id
