"""Coalesced flushes and the daily budget, through the real client, governor, Redis and store.

Time is a ManualClock shared by the sandbox, the governor and the store, so a day passes at once.
"""

from __future__ import annotations

from datetime import timedelta

from connector.clock import ManualClock
from connector.pipeline import xero_in
from connector.store import audit as stages
from connector.parking import ParkedBatch, resume_parked_work
from connector.store.parked import DAILY_BUDGET, FETCH
from tests.scale.test_scale_governor_e2e import API, seed_invoices


def webhook_events(tenant_id: str, invoice_ids: list[str], event_type: str = "UPDATE") -> list[dict]:
    return [{"tenantId": tenant_id, "eventCategory": "INVOICE", "eventType": event_type, "resourceId": i,
             "eventDateUtc": "2026-01-05T09:00:00"} for i in invoice_ids]


def flush(world, connection_id: int, fetched: list):
    deps = world.deps
    return xero_in.flush_xero_buffer(
        connection_id, "invoices", coalescer=deps.coalescer, xero=world.client(connection_id),
        snapshots=deps.store.snapshots, audit=deps.store.audit, parked=deps.store.parked, clock=deps.store.clock,
        on_fetched=lambda ids, sync_ids: fetched.append((ids, sync_ids)),
    )


def test_a_burst_with_duplicates_and_late_updates_is_fetched_in_few_calls_newest_state_winning(make_system):
    clock = ManualClock()
    world = make_system(clock=clock)
    connection_id, tenant_id = world.connect("Burst Ltd")
    invoice_ids = seed_invoices(world, tenant_id, 120)
    store = world.deps.store
    # Three deliveries: every invoice, then again (duplicates), then a late UPDATE for the first ten.
    clock.advance(5)
    for invoice_id in invoice_ids[:10]:
        world.xero.update_invoice(tenant_id, invoice_id, Reference="changed later")
    to_flush = []
    for delivery in (invoice_ids[:70], invoice_ids, invoice_ids[:10]):
        to_flush += xero_in.buffer_xero_events(webhook_events(tenant_id, delivery), connections=store.connections,
                                               audit=store.audit, coalescer=world.deps.coalescer, window=1.0,
                                               held=world.deps.held_xero_events)
    assert to_flush == [(connection_id, "invoices")]  # 190 events, one flush scheduled

    fetched: list = []
    outcome = flush(world, connection_id, fetched)

    gets = world.xero.calls(path_prefix=API + "/Invoices", method="GET")
    assert len(gets) == 3  # 120 records, ≤50 per IDs= call
    assert sorted(outcome.fetched) == sorted(invoice_ids)
    assert sorted(i for ids, _ in fetched for i in ids) == sorted(invoice_ids)  # each handed on to Zoho once
    for invoice_id in invoice_ids[:10]:
        assert store.snapshots.get(connection_id, "invoices", invoice_id).payload["Reference"] == "changed later"
        # The duplicate events joined one trip: one sync id from received to fetched.
        trail = store.audit.trail(connection_id, "invoice", invoice_id)
        assert {e.sync_id for e in trail} == {trail[0].sync_id}
        assert [e.stage for e in trail].count(stages.FETCHED) == 1
    assert flush(world, connection_id, []).fetched == []  # nothing left behind


def test_a_spent_daily_budget_parks_the_work_and_a_resume_after_the_reset_finishes_it(make_system,
                                                                                      pg_database_url):
    clock = ManualClock()
    world = make_system(database_url=pg_database_url, clock=clock)
    connection_id, tenant_id = world.connect("Starter Ltd")
    invoice_ids = seed_invoices(world, tenant_id, 120)
    world.xero.spend_day_calls(tenant_id, 4999)  # one call left of Xero's 5,000 today
    store, coalescer = world.deps.store, world.deps.coalescer
    xero_in.buffer_xero_events(webhook_events(tenant_id, invoice_ids), connections=store.connections,
                               audit=store.audit, coalescer=coalescer, window=1.0, held=world.deps.held_xero_events)

    outcome = flush(world, connection_id, [])

    # The last call of the day went out; Xero's X-DayLimit-Remaining: 0 told the governor, so no
    # call was sent to be refused: the other 70 ids are parked in the database, not held by tasks.
    gets = world.xero.calls(path_prefix=API, tenant=tenant_id)
    assert [r.status for r in gets] == [200]
    assert len(outcome.fetched) == 50 and len(outcome.parked) == 70 and outcome.retry_after is None
    assert store.parked.count(connection_id, reason=DAILY_BUDGET) == 70
    assert coalescer.pending(connection_id, "invoices") == 0 and coalescer.leased(connection_id, "invoices") == 0
    parked_id = outcome.parked[0]
    assert store.audit.latest_stage(connection_id, "invoice", parked_id) == stages.PARKED

    def take_budget_work() -> list[ParkedBatch]:
        resumed: list[ParkedBatch] = []
        resume_parked_work(store=store, enqueue=resumed.append)
        return resumed

    clock.advance(timedelta(hours=23))
    assert take_budget_work() == []  # not before the budget frees

    clock.advance(timedelta(hours=1, minutes=1))
    resumed = take_budget_work()
    assert sorted(len(b.ids) for b in resumed) == [20, 50]
    for parked_batch in resumed:
        assert (parked_batch.stage, parked_batch.resource, parked_batch.priority) == (
            FETCH, "invoices", xero_in.PRIORITY_WEBHOOK)
        resource, ids, sync_ids = parked_batch.resource, parked_batch.ids, parked_batch.sync_ids
        batch = xero_in.FetchBatch(connection_id, resource, ids, sync_ids)
        xero_in.fetch_xero_records(batch, xero=world.client(connection_id), snapshots=store.snapshots,
                                   audit=store.audit)
    assert all(store.snapshots.get(connection_id, "invoices", i) for i in invoice_ids)
    assert store.parked.count(connection_id) == 0
    trail = [e.stage for e in store.audit.trail(connection_id, "invoice", parked_id)]
    assert trail == [stages.RECEIVED, stages.PARKED, stages.FETCHED]
    assert {e.sync_id for e in store.audit.trail(connection_id, "invoice", parked_id)} != {None}
    # The access token expired overnight (one 401, then a refresh); Xero never had to refuse a call.
    statuses = [r.status for r in world.xero.calls(path_prefix=API, tenant=tenant_id)]
    assert statuses.count(200) == 3 and 429 not in statuses


def test_a_short_rate_limit_gives_the_ids_back_to_the_buffer(make_system):
    clock = ManualClock()
    world = make_system(clock=clock)
    connection_id, tenant_id = world.connect("Minute Ltd")
    invoice_ids = seed_invoices(world, tenant_id, 60)
    store, coalescer = world.deps.store, world.deps.coalescer
    xero_in.buffer_xero_events(webhook_events(tenant_id, invoice_ids), connections=store.connections,
                               audit=store.audit, coalescer=coalescer, window=1.0, held=world.deps.held_xero_events)
    world.xero.faults.fail_next(1, status=429, path_prefix=API,
                                headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"})

    outcome = flush(world, connection_id, [])

    assert outcome.retry_after == 7 and outcome.fetched == [] and outcome.parked == []
    assert coalescer.pending(connection_id, "invoices") == 60
    assert flush(world, connection_id, []).retry_after > 6  # the governor holds the tenant back
    assert len(world.xero.calls(path_prefix=API, tenant=tenant_id)) == 1
    clock.advance(7.1)
    assert sorted(flush(world, connection_id, []).fetched) == sorted(invoice_ids)
