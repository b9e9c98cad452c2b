"""Webhooks of a Xero tenant not connected yet: each event is held for the connection to come, and the
logs get one line per delivery and a WARNING summary now and then, not a WARNING per event."""

from __future__ import annotations

import logging

import fakeredis

from connector.coalesce import LeasedBuffer
from connector.held_events import HeldXeroEvents
from connector.pipeline import xero_in
from connector.store import Store
from connector.store import audit as stages


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _delivery(tenant: str, start: int, count: int) -> list[dict]:
    return [{"tenantId": tenant, "eventCategory": "CONTACT", "eventType": "UPDATE", "resourceId": f"c-{n}"}
            for n in range(start, start + count)]


def test_an_unknown_tenant_is_one_line_per_delivery_and_a_periodic_summary(tmp_path, caplog) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'connector.db'}")
    known = store.connections.create(name="Known", xero_tenant_id="tenant-known")
    redis = fakeredis.FakeRedis()
    buffer, held = LeasedBuffer(redis), HeldXeroEvents(redis)
    clock = FakeClock()
    report = xero_in.UnknownTenantReport(interval=60.0, clock=clock)

    def deliver(events: list[dict]) -> None:
        xero_in.buffer_xero_events(events, connections=store.connections, audit=store.audit, coalescer=buffer,
                                   window=1.0, held=held, unknown_tenants=report)

    caplog.set_level(logging.INFO)
    for n in range(5):  # five deliveries of 20 events within a minute
        deliver(_delivery("tenant-new", 20 * n, 20) + _delivery("tenant-known", 20 * n, 1))
        clock.now += 5
    clock.now += 60
    deliver(_delivery("tenant-new", 100, 20))

    def lines(level: int) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == level and r.name == xero_in.log.name]

    unknown_warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(unknown_warnings) == 2, [r.getMessage() for r in unknown_warnings]  # no WARNING per event
    first, later = (r.getMessage() for r in unknown_warnings)
    assert "tenant-new" in first and "20 events" in first and "connector connect xero" in first
    assert "tenant-new" in later and "100 events in 5 deliveries" in later
    per_delivery = [r for r in caplog.records if r.getMessage() == "pipeline.xero.held"]
    assert len(per_delivery) == 6 and per_delivery[0].held == 20 and per_delivery[0].levelno == logging.INFO
    # Nothing is lost: every event of the unknown tenant is held (none failed), the known one's received.
    assert held.count("tenant-new") == 120 and store.audit.count(stages.FAILED) == 0
    assert store.audit.count(stages.RECEIVED) == 5 and known.id
