"""Migration 0017 fills the search columns of snapshots stored before it, in batches, as the upsert would."""

from __future__ import annotations

import json

from sqlalchemy import event, text

from connector.store import Store
from connector.store.db import make_engine, migrate
from connector.store.snapshots import search_keys
from tests.conftest import fresh_pg_database
from tests.store.conftest import migrated_to

# More rows than one batch of the migration (2,000), so the fill must carry on past the first.
ROWS = 4_500


def _payload(n: int) -> tuple[str, dict]:
    kind = ("contacts", "invoices", "creditnotes", "payments")[n % 4]
    return kind, {"contacts": {"ContactID": f"c-{n}", "Name": f" Kea Traders {n} ", "EmailAddress": f"AP{n}@X.example"},
                  "invoices": {"InvoiceID": f"i-{n}", "InvoiceNumber": f"INV-{n}"},
                  "creditnotes": {"CreditNoteID": f"n-{n}", "CreditNoteNumber": f"CN-{n}"},
                  "payments": {"PaymentID": f"p-{n}", "Invoice": {"InvoiceNumber": f"INV-{n}"}}}[kind]


def _check_migration_fills(engine) -> None:
    with migrated_to(engine, "0016") as connection:
        connection.execute(text(
            "INSERT INTO xero_snapshots (connection_id, resource, xero_id, source_updated_at, payload, fetched_at) "
            "VALUES (1, :resource, :xero_id, '2026-01-01 00:00:00', :payload, '2026-01-01 00:00:00')"),
            [{"resource": resource, "xero_id": f"x-{n}", "payload": json.dumps(payload)}
             for n in range(ROWS) for resource, payload in [_payload(n)]])
    migrate(engine)
    with engine.connect() as connection:
        stored = {row.xero_id: row for row in connection.execute(text(
            "SELECT xero_id, resource, search_number, search_email, search_name FROM xero_snapshots"))}
    assert len(stored) == ROWS
    for n in range(ROWS):  # every row, first batch to last, has what the upsert would have written
        resource, payload = _payload(n)
        row = stored[f"x-{n}"]
        assert {"search_number": row.search_number, "search_email": row.search_email,
                "search_name": row.search_name} == search_keys(resource, payload), n
    store = Store(engine)
    assert [s.xero_id for s in store.snapshots.search("kea traders 4444", connection_ids=[1])] == ["x-4444"]
    assert [s.xero_id for s in store.snapshots.search("ap4400@x.example", connection_ids=[1])] == ["x-4400"]
    assert [s.xero_id for s in store.snapshots.search("inv-4401", connection_ids=[1])] == ["x-4401"]
    assert [s.xero_id for s in store.snapshots.search("cn-4402", connection_ids=[1])] == ["x-4402"]
    assert store.snapshots.search("inv-4403", connection_ids=[1]) == []  # a payment's invoice number


def test_migration_fills_the_search_keys_of_rows_stored_before_it(empty_engine) -> None:
    _check_migration_fills(empty_engine)


def test_on_postgresql_the_fill_commits_batch_by_batch_so_others_read_and_write_the_table_meanwhile(pg_admin) -> None:
    """While the second batch is being filled, another session reads the table, sees the first batch's keys
    committed, and updates a row of it, none of them waiting on a lock (lock_timeout makes a wait fail)."""
    import psycopg

    with fresh_pg_database(pg_admin) as url:
        engine = make_engine(url)
        seen: list[int] = []

        def from_another_session(conn, cursor, statement, parameters, context, executemany):
            if statement.startswith("SELECT id, resource") and parameters.get("after") and not seen:
                with psycopg.connect(url, autocommit=True) as other:
                    other.execute("SET lock_timeout = '2s'")
                    seen.append(other.execute("SELECT count(*) FROM xero_snapshots WHERE search_name IS NOT NULL"
                                              ).fetchone()[0])
                    other.execute("UPDATE xero_snapshots SET fetched_at = fetched_at WHERE id = 1")

        event.listen(engine, "before_cursor_execute", from_another_session)
        try:
            _check_migration_fills(engine)
        finally:
            engine.dispose()
    assert seen and seen[0] > 0, seen
