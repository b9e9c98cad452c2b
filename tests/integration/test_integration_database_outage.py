"""PostgreSQL unreachable while webhooks arrive: the events answered 200 are retried with backoff by the real
worker process until the database is back, then synced; none is dropped without a trace."""

from __future__ import annotations

import json

import pytest

from connector.queues import INGEST_XERO_EVENTS
from connector.sandbox.xero_seed import seed_demo_org
from connector.store import audit as stages
from tests.conftest import PostgresOutage
from tests.integration.test_integration_pipeline import settled
from workers.embedded import wait_until

pytestmark = pytest.mark.integration


def retried_ingest_waiting(redis) -> bool:
    """A retry of the ingest task is in the broker: queued, or held by the worker until its countdown ends."""
    raw = list(redis.hvals("unacked")) + list(redis.lrange("xero", 0, -1))
    messages = [json.loads(m) for m in raw]
    messages = [m[0] if isinstance(m, list) else m for m in messages]
    return any(m["headers"].get("task") == INGEST_XERO_EVENTS and int(m["headers"].get("retries") or 0) >= 1
               for m in messages)


def test_events_that_arrive_while_the_database_is_down_are_synced_once_it_is_back(system, pg_admin,
                                                                                   pg_database_url):
    xero, deps, connection_id = system.xero, system.deps, system.connection_id
    assert xero.intent_to_receive(system.hook_url).ok
    # The worker is up and syncing (it checks the database once at start-up, before the outage).
    first = seed_demo_org(xero, system.tenant_id, contacts=1)
    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(lambda: settled(deps.store.audit, connection_id, first), timeout=60)
    contact_ids = [xero.create_contact(system.tenant_id, Name=f"During the outage {n} Ltd")["ContactID"]
                   for n in range(5)]
    redis = deps.redis

    with PostgresOutage(pg_admin, pg_database_url.rsplit("/", 1)[1]):
        assert set(xero.deliver_webhooks(system.hook_url)) == {200}  # the receiver needs no database
        # The worker took the ingest, met the outage and queued it again for a retry with backoff.
        assert wait_until(lambda: retried_ingest_waiting(redis), timeout=30), "the ingest task was not retried"

    assert wait_until(lambda: settled(deps.store.audit, connection_id, contact_ids), timeout=120), \
        [deps.store.audit.trail(connection_id, "contact", c) for c in contact_ids[:2]]
    for contact_id in contact_ids:
        trail = [e.stage for e in deps.store.audit.trail(connection_id, "contact", contact_id)]
        assert trail[0] == stages.RECEIVED and trail[-1] == stages.WRITTEN and stages.FAILED not in trail, trail
