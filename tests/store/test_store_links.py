from __future__ import annotations

from datetime import datetime, timezone

from connector.store import Store


def test_save_inserts_then_updates_in_place(store: Store, connection_id: int) -> None:
    links = store.links
    assert links.get(connection_id, "contact", "x-1") is None
    links.save(connection_id, "contact", "x-1", zoho_module="Accounts", zoho_id="z-1", content_hash="h1")
    first = links.get(connection_id, "contact", "x-1")
    assert (first.zoho_module, first.zoho_id, first.content_hash, first.source_updated_at) == ("Accounts", "z-1", "h1", None)

    updated_at = datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    links.save(
        connection_id, "contact", "x-1", zoho_module="Accounts", zoho_id="z-1", content_hash="h2", source_updated_at=updated_at
    )
    second = links.get(connection_id, "contact", "x-1")
    assert second.content_hash == "h2" and second.source_updated_at == updated_at
    assert links.count(connection_id) == 1


def test_lookup_from_the_zoho_side(store: Store, connection_id: int) -> None:
    links = store.links
    links.save(connection_id, "contact", "x-1", zoho_module="Accounts", zoho_id="z-1", content_hash="h")
    links.save(connection_id, "contact_person", "p-1", zoho_module="Contacts", zoho_id="z-1", content_hash="h")
    assert links.by_zoho(connection_id, "Accounts", "z-1").xero_id == "x-1"
    assert links.by_zoho(connection_id, "Contacts", "z-1").kind == "contact_person"
    assert links.by_zoho(connection_id, "Deals", "z-1") is None


def test_count_per_connection_and_overall(store: Store, connection_id: int) -> None:
    other = store.connections.create(name="Other", xero_tenant_id="tenant-2").id
    store.links.save(connection_id, "contact", "a", zoho_module="Accounts", zoho_id="1", content_hash="h")
    store.links.save(connection_id, "invoice", "a", zoho_module="Invoices", zoho_id="2", content_hash="h")
    store.links.save(other, "contact", "a", zoho_module="Accounts", zoho_id="3", content_hash="h")
    assert store.links.count(connection_id) == 2
    assert store.links.count(other) == 1
    assert store.links.count() == 3
