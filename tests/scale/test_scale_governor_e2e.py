"""Real processes fetch through XeroClient and the shared governor from the sandbox served over HTTP.

Every bound is checked from the sandbox's own request log (what Xero would have seen), never from
the governor's counters. The sandbox runs Xero's real limits: 60 a minute, 5 in flight per tenant.
"""

from __future__ import annotations

import multiprocessing
import time

from connector.errors import RateLimited
from connector.sandbox.common import RequestRecord
from connector.sandbox.xero import max_calls_in_window, max_in_flight
from workers.deps import Deps
from workers.embedded import wait_until

API = "/api.xro/2.0"
RETRY_PAUSE = 0.01  # stands in for a task going back to the queue


def fetch_until(settings, connection_id: int, invoice_ids: list[str], stop) -> None:
    deps = Deps(settings)  # a process of its own: its own Redis connection, engine and session
    client = deps.xero_client(deps.store.connections.get(connection_id))
    while not stop.is_set():
        try:
            client.get_invoices(invoice_ids)
        except RateLimited:
            time.sleep(RETRY_PAUSE)


CONTEXT = multiprocessing.get_context("fork")


def run_processes(targets: list[tuple], *, until, timeout: float = 120.0) -> None:
    """Run ``fetch_until`` in one process per target until ``until()`` holds (checked from the sandbox log),
    then stop them all. No fixed run time: a busy machine only makes it take longer."""
    stop = CONTEXT.Event()
    processes = [CONTEXT.Process(target=fetch_until, args=(*args, stop)) for args in targets]
    for process in processes:
        process.start()
    try:
        reached = wait_until(until, timeout=timeout, interval=0.05)
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=60)
    assert reached, "the processes never got there"
    assert all(process.exitcode == 0 for process in processes)


def accepted(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.status == 200]


def seed_invoices(world, tenant_id: str, count: int) -> list[str]:
    contact = world.xero.create_contact(tenant_id, Name="Scale Test Ltd")
    return [world.xero.create_invoice(tenant_id, contact["ContactID"], [
        {"Description": "Widget", "Quantity": 1, "UnitAmount": "10.00", "AccountCode": "200"}])["InvoiceID"]
        for _ in range(count)]


def test_many_processes_on_one_tenant_never_exceed_xeros_limits(make_system):
    world = make_system()
    world.xero.latency = 0.05  # each call stays in flight a while, so processes really overlap
    connection_id, tenant_id = world.connect("Busy Ltd")
    invoice_ids = seed_invoices(world, tenant_id, 3)

    def calls():
        return world.xero.calls(path_prefix=API, tenant=tenant_id)

    def budget_spent_and_held_back() -> bool:
        done = accepted(calls())
        # The whole minute budget was used (nothing lost to races), then the processes kept asking for a while.
        return len(done) >= 60 and time.time() >= max(r.finished for r in done[:60]) + 1.0

    run_processes([(world.settings, connection_id, invoice_ids) for _ in range(6)], until=budget_spent_and_held_back)

    assert [r for r in calls() if r.status == 429] == []  # Xero never had to refuse one
    assert max_calls_in_window(accepted(calls())) <= 60  # never over the minute limit in any window
    assert max_in_flight(accepted(calls())) <= 5


def test_a_busy_tenant_does_not_starve_a_quiet_one(make_system):
    world = make_system()
    world.xero.latency = 0.05
    busy_connection, busy_tenant = world.connect("Busy Ltd")
    quiet_connection, quiet_tenant = world.connect("Quiet Ltd")
    busy_ids, quiet_ids = seed_invoices(world, busy_tenant, 2), seed_invoices(world, quiet_tenant, 2)

    def busy():
        return world.xero.calls(path_prefix=API, tenant=busy_tenant)

    def quiet():
        return world.xero.calls(path_prefix=API, tenant=quiet_tenant)

    def quiet_served_while_busy_held_back() -> bool:
        spent = accepted(busy())
        if len(spent) < 60:
            return False
        blocked_from = max(r.finished for r in spent[:60])
        return sum(1 for r in accepted(quiet()) if r.started > blocked_from) >= 5

    run_processes([(world.settings, busy_connection, busy_ids) for _ in range(5)]
                  + [(world.settings, quiet_connection, quiet_ids)], until=quiet_served_while_busy_held_back)

    # Invariants, whatever the machine's speed: Xero never refused a call, neither tenant went over 60
    # in any minute or 5 in flight, and the quiet tenant was served (every call of it accepted).
    assert [r for r in busy() + quiet() if r.status == 429] == []
    assert quiet() and accepted(quiet()) == quiet()
    for calls in (accepted(busy()), accepted(quiet())):
        assert max_calls_in_window(calls) <= 60
        assert max_in_flight(calls) <= 5


def test_a_429_storm_stops_every_process_until_retry_after_then_calls_succeed(make_system):
    world = make_system()
    world.xero.latency = 0.1
    connection_id, tenant_id = world.connect("Stormy Ltd")
    invoice_ids = seed_invoices(world, tenant_id, 2)
    retry_after = 1

    def calls():
        return world.xero.calls(path_prefix=API, tenant=tenant_id)

    storm = {"sent": False}

    def storm_then_recovery() -> bool:
        if not storm["sent"]:
            if len(calls()) >= 4:  # every process is busy calling by now
                world.xero.faults.fail_next(3, status=429, path_prefix=API, headers={
                    "Retry-After": str(retry_after), "X-Rate-Limit-Problem": "minute"})
                storm["sent"] = True
            return False
        refused = [r for r in calls() if r.status == 429]
        if len(refused) < 3:
            return False
        resumed_from = max(r.finished for r in refused) + retry_after
        return sum(1 for r in calls() if r.started >= resumed_from and r.finished) >= 3

    run_processes([(world.settings, connection_id, invoice_ids) for _ in range(4)], until=storm_then_recovery)

    refused = [r for r in calls() if r.status == 429]
    assert len(refused) == 3
    for refusal in refused:
        # A process learns of a 429 a moment after the sandbox sent it; allow it that moment.
        quiet_from, quiet_until = refusal.finished + 0.3, refusal.finished + retry_after
        assert [r for r in calls() if quiet_from < r.started < quiet_until] == []
    after = [r for r in calls() if r.started >= max(r.finished for r in refused) + retry_after]
    assert after and all(r.status == 200 for r in after if r.finished)  # then work resumes, and succeeds
