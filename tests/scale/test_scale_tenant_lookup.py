"""A webhook body is sorted by tenant with one connection lookup per tenant, not one per event."""

from __future__ import annotations

import fakeredis

from connector.coalesce import LeasedBuffer
from connector.held_events import HeldXeroEvents
from connector.pipeline import xero_in
from connector.store import Store
from connector.store import audit as stages


class CountingConnections:
    """The real ConnectionStore, counting tenant lookups."""

    def __init__(self, connections) -> None:
        self._connections = connections
        self.lookups: list[str] = []

    def by_tenant(self, tenant_id: str):
        self.lookups.append(tenant_id)
        return self._connections.by_tenant(tenant_id)


def test_one_connection_lookup_per_tenant_of_a_body(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'connector.db'}")
    first = store.connections.create(name="One", xero_tenant_id="tenant-1")
    second = store.connections.create(name="Two", xero_tenant_id="tenant-2")
    events = [{"tenantId": tenant, "eventCategory": category, "eventType": "UPDATE", "resourceId": f"{tenant}-{n}"}
              for n in range(30) for tenant, category in (("tenant-1", "INVOICE"), ("tenant-2", "CONTACT"),
                                                          ("tenant-unknown", "INVOICE"))]
    connections = CountingConnections(store.connections)

    redis = fakeredis.FakeRedis()
    held = HeldXeroEvents(redis)
    to_flush = xero_in.buffer_xero_events(events, connections=connections, audit=store.audit,
                                          coalescer=LeasedBuffer(redis), window=1.0, held=held)

    assert sorted(connections.lookups) == ["tenant-1", "tenant-2", "tenant-unknown"]
    assert sorted(to_flush) == [(first.id, "invoices"), (second.id, "contacts")]
    # Every event is still accounted for: 60 received, 30 held until the unknown tenant is connected.
    assert store.audit.count(stages.RECEIVED) == 60 and store.audit.count(stages.FAILED) == 0
    assert held.count("tenant-unknown") == 30
    store.close()
