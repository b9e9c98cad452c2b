from __future__ import annotations

import pytest

from connector.clock import ManualClock
from connector.store import Store
from connector.store.connections import ConnectionStore


def test_create_is_idempotent_on_the_xero_tenant(store: Store) -> None:
    first = store.connections.create(name="Demo", xero_tenant_id="t-1", xero_tenant_name="Demo Ltd", xero_daily_limit=1000)
    again = store.connections.create(name="Renamed", xero_tenant_id="t-1")
    assert again == first
    assert (first.name, first.xero_tenant_name, first.xero_daily_limit, first.state) == ("Demo", "Demo Ltd", 1000, "active")
    assert first.active and first.zoho_org_id is None
    assert store.connections.get(first.id) == first
    assert store.connections.by_tenant("t-1") == first
    assert store.connections.by_tenant("t-2") is None
    assert store.connections.get(first.id + 100) is None


def test_all_lists_connections_in_creation_order(store: Store) -> None:
    ids = [store.connections.create(name=n, xero_tenant_id=n).id for n in ("a", "b", "c")]
    assert [c.id for c in store.connections.all()] == ids


def test_state_changes_are_validated_and_stamped(store: Store) -> None:
    clock = ManualClock()
    connections = ConnectionStore(store.sessions, clock=clock)
    created = connections.create(name="Demo", xero_tenant_id="t-1")
    clock.advance(60)
    connections.set_state(created.id, "needs_reauth", "invalid_grant from Zoho")
    changed = connections.get(created.id)
    assert (changed.state, changed.state_reason, changed.active) == ("needs_reauth", "invalid_grant from Zoho", False)
    assert changed.updated_at == clock.now() and changed.created_at == created.created_at
    with pytest.raises(ValueError):
        connections.set_state(created.id, "paused")
    with pytest.raises(LookupError):
        connections.set_state(created.id + 100, "disabled")


def test_set_zoho_changes_only_what_is_given(store: Store) -> None:
    created = store.connections.create(name="Demo", xero_tenant_id="t-1")
    store.connections.set_zoho(created.id, org_id="org-9", api_domain="https://www.zohoapis.eu/", accounts_url="https://accounts.zoho.eu")
    store.connections.set_zoho(created.id, org_id="org-10")
    info = store.connections.get(created.id)
    assert (info.zoho_org_id, info.zoho_api_domain, info.zoho_accounts_url) == (
        "org-10",
        "https://www.zohoapis.eu",
        "https://accounts.zoho.eu",
    )
