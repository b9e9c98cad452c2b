from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

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
    [account] = links.by_zoho_ids([connection_id], "Accounts", ["z-1"])
    assert account.xero_id == "x-1"
    assert [link.kind for link in links.by_zoho_ids([connection_id], "Contacts", ["z-1", "z-2"])] == ["contact_person"]
    assert links.by_zoho_ids([connection_id], "Deals", ["z-1"]) == []


def test_lookup_from_the_zoho_side_across_the_connections_sharing_an_org(store: Store, connection_id: int) -> None:
    links = store.links
    second = store.connections.create(name="Second", xero_tenant_id="tenant-2").id
    elsewhere = store.connections.create(name="Elsewhere", xero_tenant_id="tenant-3").id
    links.save(connection_id, "contact_person", "a:primary", zoho_module="Contacts", zoho_id="z-1", content_hash="h")
    links.save(second, "contact_person", "b:primary", zoho_module="Contacts", zoho_id="z-2", content_hash="h")
    links.save(elsewhere, "contact_person", "c:primary", zoho_module="Contacts", zoho_id="z-3", content_hash="h")
    found = links.by_zoho_ids([connection_id, second], "Contacts", ["z-1", "z-2", "z-3", "z-1"])
    assert [(link.connection_id, link.zoho_id, link.xero_id) for link in found] == [
        (connection_id, "z-1", "a:primary"), (second, "z-2", "b:primary")]
    assert links.by_zoho_ids([], "Contacts", ["z-1"]) == [] and links.by_zoho_ids([second], "Contacts", []) == []


def test_count_per_connection_and_overall(store: Store, connection_id: int) -> None:
    other = store.connections.create(name="Other", xero_tenant_id="tenant-2").id
    store.links.save(connection_id, "contact", "a", zoho_module="Accounts", zoho_id="1", content_hash="h")
    store.links.save(connection_id, "invoice", "a", zoho_module="Invoices", zoho_id="2", content_hash="h")
    store.links.save(other, "contact", "a", zoho_module="Accounts", zoho_id="3", content_hash="h")
    assert store.links.count(connection_id) == 2
    assert store.links.count(other) == 1
    assert store.links.count() == 3


def test_an_older_version_never_replaces_a_newer_link(store: Store, connection_id: int) -> None:
    newer = datetime(2026, 2, 3, 4, 5, 7, tzinfo=timezone.utc)
    older = newer - timedelta(seconds=1)
    links = store.links
    assert links.save(connection_id, "invoice", "x-1", zoho_module="Invoices", zoho_id="z-1", content_hash="new",
                      source_updated_at=newer)
    assert not links.save(connection_id, "invoice", "x-1", zoho_module="Invoices", zoho_id="z-1",
                          content_hash="old", source_updated_at=older)
    assert links.get(connection_id, "invoice", "x-1").content_hash == "new"
    # The same version again is a harmless rewrite.
    assert links.save(connection_id, "invoice", "x-1", zoho_module="Invoices", zoho_id="z-1", content_hash="new2",
                      source_updated_at=newer)


def test_racing_link_saves_leave_the_newest_version(store: Store, connection_id: int) -> None:
    base = datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    versions = [base + timedelta(milliseconds=n) for n in range(24)]
    random.Random(7).shuffle(versions)
    start = threading.Barrier(len(versions))

    def save(version: datetime) -> None:
        start.wait()
        store.links.save(connection_id, "contact", "x-1", zoho_module="Accounts", zoho_id="z-1",
                         content_hash=version.isoformat(), source_updated_at=version)

    for _ in range(5):
        with ThreadPoolExecutor(max_workers=len(versions)) as pool:
            list(pool.map(save, versions))
        link = store.links.get(connection_id, "contact", "x-1")
        assert link.source_updated_at == max(versions) and link.content_hash == max(versions).isoformat()


def test_a_saved_link_clears_the_write_intent(store: Store, connection_id: int) -> None:
    links = store.links
    links.begin_writes(connection_id, "invoice", ["x-1", "x-2"])
    assert links.writes_begun(connection_id, "invoice", ["x-1", "x-2", "x-3"]) == {"x-1", "x-2"}
    links.save(connection_id, "invoice", "x-1", zoho_module="Invoices", zoho_id="z-1", content_hash="h")
    assert links.writes_begun(connection_id, "invoice", ["x-1", "x-2"]) == {"x-2"}
    links.end_writes(connection_id, "invoice", ["x-2"])
    assert links.writes_begun(connection_id, "invoice", ["x-1", "x-2"]) == set()
