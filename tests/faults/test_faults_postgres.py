"""PostgreSQL unreachable for 30 s mid-burst (the deployment's database refuses connections and its open
ones are cut; the shared server keeps running): events already answered 200 are not dropped, the work
waits out the outage and every record arrives."""

from __future__ import annotations

import pytest

from tests.faults.conftest import deliver_until_accepted
from tests.conftest import PostgresOutage
from tests.processes import wait_for

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 30.0


def test_postgresql_unreachable_for_30_seconds_mid_burst(org, pg_admin):
    stack = org.stack
    contacts = org.seed(contacts=30)["contact_ids"]
    stack.control.fault("xero", "latency", count=1, delay=2.0, path_prefix="/api.xro/2.0/", method="GET")
    assert set(deliver_until_accepted(stack, max_events_per_post=10)) == {200}
    wait_for(lambda: stack.control.in_flight("xero", path_prefix="/api.xro/2.0/"), timeout=90, interval=0.05,
             what="a Xero fetch in flight")

    outage = PostgresOutage(pg_admin, stack.database_name)
    stack.extra["pg_outage"] = outage  # ended by the next test's setup if this one fails mid-way
    timer = outage.for_seconds(OUTAGE_SECONDS)
    # Webhooks keep coming during the outage; the receiver only queues them, so it answers 200.
    org.seed_invoices(contacts[:15])
    assert set(deliver_until_accepted(stack, max_events_per_post=5)) == {200}
    wait_for(lambda: not timer.is_alive(), timeout=OUTAGE_SECONDS + 30, what="the outage to end")
    stack.extra.pop("pg_outage", None)

    org.assert_invariants()
    assert stack.worker.alive()
