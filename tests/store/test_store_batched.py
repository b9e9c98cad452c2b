"""The batched store writes a task makes once per batch of records (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connector.clock import ManualClock
from connector.store import Store
from connector.store.audit import FETCHED, MAPPED, RECEIVED, WRITTEN, AuditLog
from connector.store.snapshots import SnapshotStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_an_audit_batch_writes_nothing_until_flushed_then_every_row_in_order_with_its_own_time(
        store: Store, connection_id: int) -> None:
    clock = ManualClock()
    batch = AuditLog(store.sessions, clock=clock).batch()
    for stage in (RECEIVED, FETCHED, MAPPED, WRITTEN):
        batch.record(connection_id=connection_id, record_type="invoice", record_id="i-1", sync_id="s-1",
                     stage=stage, detail={"access_token": "secret-value", "stage": stage})
        clock.advance(2)
    assert len(batch) == 4 and store.audit.count() == 0  # nothing written yet

    assert batch.flush() == 4
    trail = store.audit.trail(connection_id, "invoice", "i-1")
    assert [e.stage for e in trail] == [RECEIVED, FETCHED, MAPPED, WRITTEN]
    assert [(e.created_at - trail[0].created_at).total_seconds() for e in trail] == [0, 2, 4, 6]
    assert all(e.detail["access_token"] == "***" and e.sync_id == "s-1" for e in trail)  # redacted as record()
    assert batch.flush() == 0 and store.audit.count() == 4  # flushed rows are not written twice
    assert batch.latest_stage(connection_id, "invoice", "i-1") == WRITTEN  # reads go to the log


def test_an_audit_batch_refuses_an_unknown_stage_when_recorded(store: Store) -> None:
    import pytest

    with pytest.raises(ValueError):
        store.audit.batch().record(record_type="invoice", record_id="i-1", stage="teleported")


def test_snapshots_put_many_keeps_the_newest_version_of_each_record(store: Store, connection_id: int) -> None:
    snapshots = SnapshotStore(store.sessions)
    snapshots.put_if_newer(connection_id, "invoices", "a", source_updated_at=T0, payload={"v": "a0"})
    snapshots.put_if_newer(connection_id, "invoices", "b", source_updated_at=T0, payload={"v": "b0"})

    stored = snapshots.put_many_if_newer(connection_id, "invoices", [
        ("a", T0 - timedelta(minutes=1), {"v": "a-older"}),   # older than stored: refused
        ("b", T0 + timedelta(minutes=1), {"v": "b1"}),        # newer: stored
        ("c", T0, {"v": "c-first"}),                          # new, given twice: the newer one wins
        ("c", T0 + timedelta(seconds=5), {"v": "c-newer"}),
        ("d", T0, {"amount": "12.50", "nested": {"x": [1, 2]}}),
    ])

    assert stored == {"b", "c", "d"}
    found = snapshots.get_many(connection_id, "invoices", ["a", "b", "c", "d", "missing", "a"])
    assert {k: v.payload.get("v") for k, v in found.items()} == {"a": "a0", "b": "b1", "c": "c-newer", "d": None}
    assert found["d"].payload == {"amount": "12.50", "nested": {"x": [1, 2]}}
    assert found["b"].source_updated_at == T0 + timedelta(minutes=1)
    assert snapshots.get_many(connection_id, "contacts", ["a"]) == {}  # another resource
    assert snapshots.put_many_if_newer(connection_id, "invoices", []) == set()


def test_links_get_many_reads_one_kind_of_one_connection(store: Store, connection_id: int) -> None:
    other = store.connections.create(name="Other", xero_tenant_id="tenant-2").id
    for conn, kind, xero_id, zoho_id in ((connection_id, "invoice", "i-1", "z1"), (connection_id, "invoice", "i-2", "z2"),
                                         (connection_id, "invoice_lines", "i-1", "z1"), (other, "invoice", "i-1", "z9")):
        store.links.save(conn, kind, xero_id, zoho_module="Invoices", zoho_id=zoho_id, content_hash=f"h-{zoho_id}")

    found = store.links.get_many(connection_id, "invoice", ["i-1", "i-2", "i-3"])

    assert {k: v.zoho_id for k, v in found.items()} == {"i-1": "z1", "i-2": "z2"}
    assert found["i-1"] == store.links.get(connection_id, "invoice", "i-1")
    assert store.links.get_many(connection_id, "invoice", []) == {}


def test_write_ledger_records_a_batch_in_one_statement_last_write_winning(store: Store, connection_id: int) -> None:
    ledger = store.write_ledger
    ledger.record_many(connection_id, "zoho", {"z1": "h1", "z2": "h2"})
    ledger.record_many(connection_id, "zoho", {"z2": "h2-new", "z3": "h3"})

    assert ledger.hashes(connection_id, "zoho", ["z1", "z2", "z3", "z4"]) == {"z1": "h1", "z2": "h2-new", "z3": "h3"}


def test_links_save_many_keeps_links_written_from_newer_versions(store: Store, connection_id: int) -> None:
    from connector.store.links import LinkWrite

    links = store.links
    links.save(connection_id, "invoice", "i-old", zoho_module="Invoices", zoho_id="z1", content_hash="h1",
               source_updated_at=T0)
    links.save(connection_id, "invoice", "i-new", zoho_module="Invoices", zoho_id="z2", content_hash="h2",
               source_updated_at=T0 + timedelta(hours=1))

    saved = links.save_many(connection_id, [
        LinkWrite("invoice", "i-old", "Invoices", "z1", "h1-newer", T0 + timedelta(minutes=5)),  # newer: saved
        LinkWrite("invoice", "i-new", "Invoices", "z2", "h2-older", T0),                         # older: kept out
        LinkWrite("invoice_lines", "i-old", "Invoices", "z1", "lines", T0),                      # new: saved
        LinkWrite("item", "CONSULT", "Products", "p1", "ph"),                                    # no version
        LinkWrite("contact", "c-1", "Accounts", "a1", "first", T0),                              # twice in one
        LinkWrite("contact", "c-1", "Accounts", "a1", "second", T0 + timedelta(seconds=1)),      # batch: newest
    ])

    assert saved == {("invoice", "i-old"), ("invoice_lines", "i-old"), ("item", "CONSULT"), ("contact", "c-1")}
    assert links.get(connection_id, "invoice", "i-old").content_hash == "h1-newer"
    assert links.get(connection_id, "invoice", "i-new").content_hash == "h2"
    assert links.get(connection_id, "contact", "c-1").content_hash == "second"
    assert links.get(connection_id, "item", "CONSULT").source_updated_at is None
    assert links.save_many(connection_id, []) == set()


def test_link_reads_answer_a_batch_from_one_query_and_forget_what_is_saved(store: Store, connection_id: int) -> None:
    from sqlalchemy import event

    from connector.store.links import LinkReads

    for n in range(5):
        store.links.save(connection_id, "invoice", f"i-{n}", zoho_module="Invoices", zoho_id=f"z{n}",
                         content_hash=f"h{n}")
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listener)
    try:
        reads = LinkReads(store.links)
        reads.prefetch(connection_id, "invoice", [f"i-{n}" for n in range(7)])
        selects = len([s for s in statements if s.lstrip().startswith("SELECT")])
        found = [reads.get(connection_id, "invoice", f"i-{n}") for n in range(7)]
        assert len([s for s in statements if s.lstrip().startswith("SELECT")]) == selects == 1
    finally:
        event.remove(store.engine, "before_cursor_execute", listener)
    assert [link.zoho_id if link else None for link in found] == ["z0", "z1", "z2", "z3", "z4", None, None]

    reads.save(connection_id, "invoice", "i-5", zoho_module="Invoices", zoho_id="z5", content_hash="h5")
    assert reads.get(connection_id, "invoice", "i-5").zoho_id == "z5"  # a save is never hidden by an old read
    store.links.save(connection_id, "invoice", "i-0", zoho_module="Invoices", zoho_id="z0", content_hash="changed")
    reads.prefetch(connection_id, "invoice", ["i-0"])
    assert reads.get(connection_id, "invoice", "i-0").content_hash == "changed"  # prefetch always reads afresh


def test_snapshot_reads_answer_from_one_query_and_prefetch_reads_afresh(store: Store, connection_id: int) -> None:
    from connector.store.snapshots import SnapshotReads

    store.snapshots.put_many_if_newer(connection_id, "invoices", [(f"i-{n}", T0, {"n": n}) for n in range(3)])
    reads = SnapshotReads(store.snapshots)
    reads.prefetch(connection_id, "invoices", ["i-0", "i-1", "i-9"])
    assert reads.get(connection_id, "invoices", "i-1").payload == {"n": 1}
    assert reads.get(connection_id, "invoices", "i-9") is None
    store.snapshots.put_if_newer(connection_id, "invoices", "i-9", source_updated_at=T0, payload={"n": 9})
    reads.prefetch(connection_id, "invoices", ["i-9"])
    assert reads.get(connection_id, "invoices", "i-9").payload == {"n": 9}
