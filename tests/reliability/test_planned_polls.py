"""Scheduled Xero work through the real tasks, the sandbox and Redis, on a simulated clock: an idle
organisation costs what the schedule says; a gap in the webhook sequence brings a catch-up; scheduled work
the planner defers makes no call and is shown; a payment first seen in a webhook-driven invoice fetch
teaches the schedule that payments raise invoice webhooks here."""

from __future__ import annotations

from datetime import datetime, timezone

from connector.clock import ManualClock
from connector.xero_schedule import GAP
from tests.reliability.conftest import run

API = "/api.xro/2.0"


def simulated_world(make_system):
    clock = ManualClock(datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc))
    return make_system(clock=clock), clock  # the Xero sandbox runs on it too


def plan_and_run(published) -> list[str]:
    import workers.xero_tasks  # noqa: F401  (registers poll_xero, as a worker's includes do)
    from workers.schedule_tasks import plan_xero_polls

    plan_xero_polls.run()
    polls = published.take("connector.poll_xero")
    for poll in polls:
        run(poll)
    published.take("connector.push_to_zoho")
    return sorted(p.kwargs["purpose"] for p in polls)


def test_an_idle_organisation_costs_at_most_60_calls_a_day(make_system, published):
    world, clock = simulated_world(make_system)
    assert plan_and_run(published) == ["catch_up", "payments"]  # nothing known yet: look once
    assert plan_and_run(published) == []
    for _ in range(24 * 12 - 1):  # the rest of the day, beat's ticks five minutes apart
        clock.advance(300)
        plan_and_run(published)
    # The simulated clock expires access tokens the worker's token manager (on the real clock) still trusts:
    # those calls are answered 401 and made again, so only the answered ones count here.
    answered = [c for c in world.xero.calls(path_prefix=API, tenant=world.tenant_id) if c.status == 200]
    by_path = {}
    for call in answered:
        by_path[call.path] = by_path.get(call.path, 0) + 1
    # Overpayments and prepayments, with no webhooks either, are listed once a day while nothing is hot.
    assert by_path == {f"{API}/Payments": 48, f"{API}/Contacts": 3, f"{API}/Invoices": 3, f"{API}/CreditNotes": 3,
                       f"{API}/Overpayments": 1, f"{API}/Prepayments": 1}
    assert sum(by_path.values()) <= 60
    budget = world.deps.budget_ledger.calls_by_purpose(world.connection_id)
    assert set(budget) == {"payments", "catch_up"}  # every response counted under its purpose
    assert sum(budget.values()) == len(world.xero.calls(path_prefix=API, tenant=world.tenant_id))


def test_a_gap_in_the_webhook_sequence_brings_a_catch_up_after_the_grace(make_system, published):
    from workers.xero_tasks import ingest_xero_events

    world, clock = simulated_world(make_system)
    plan_and_run(published)
    ingest_xero_events.run('{"events":[],"firstEventSequence":4,"lastEventSequence":5,"entropy":"x"}', [])
    ingest_xero_events.run('{"events":[],"firstEventSequence":6,"lastEventSequence":6,"entropy":"x"}', [])
    clock.advance(300)
    assert plan_and_run(published) == []
    ingest_xero_events.run('{"events":[],"firstEventSequence":9,"lastEventSequence":9,"entropy":"x"}', [])
    state = world.deps.schedule_state.load(world.connection_id)
    assert set(state.triggers) == {GAP}
    assert plan_and_run(published) == []  # within the grace an out-of-order delivery may still fill it
    clock.advance(world.deps.schedule_policy.trigger_grace)
    assert plan_and_run(published) == ["catch_up"]
    assert world.deps.schedule_state.load(world.connection_id).triggers == {}  # cleared by the catch-up


def test_deferred_scheduled_work_makes_no_call_and_is_shown(make_system, published):
    from workers.xero_tasks import poll_xero

    world, clock = simulated_world(make_system)
    planner = world.deps.budget_planner
    while planner.ask(world.connection_id, "check").__class__.__name__ == "Grant":
        pass  # the day's scheduled share is spent
    before = len(world.xero.calls(path_prefix=API))
    assert poll_xero.run(world.connection_id, ["payments"], False, purpose="payments") == 0
    assert len(world.xero.calls(path_prefix=API)) == before
    deferred = planner.deferred(world.connection_id)
    assert deferred["payments"]["reason"] == "share"
    assert world.deps.store.poll_cursors.get(world.connection_id, "payments").polled_at is None  # not marked done


def test_a_payment_first_seen_in_a_webhook_driven_invoice_fetch_lengthens_the_payment_poll(make_system, published):
    from workers.schedule_tasks import due
    from workers.xero_tasks import ingest_xero_events

    world, clock = simulated_world(make_system)
    xero, tenant = world.xero, world.tenant_id
    contact = xero.create_contact(tenant, Name="Payer Ltd")["ContactID"]
    invoice = xero.create_invoice(tenant, contact, [{"Description": "Work", "Quantity": 1, "UnitAmount": 100,
                                                     "AccountCode": "200"}])["InvoiceID"]
    plan_and_run(published)  # payments polled now; open invoices changed: the next poll comes soon
    clock.advance(60)
    xero.add_payment(tenant, invoice, 40, date=clock.now().date())
    ingest_xero_events.run([{"resourceId": invoice, "eventCategory": "INVOICE", "eventType": "UPDATE",
                             "tenantId": tenant, "eventDateUtc": clock.now().replace(tzinfo=None).isoformat(),
                             "sync_id": "s-1"}])
    for flush in published.take("connector.flush_xero_buffer"):
        run(flush)
    state = world.deps.schedule_state.load(world.connection_id)
    assert state.payments_raise_invoice_webhooks and state.open_invoices == 1
    clock.advance(world.deps.schedule_policy.payments_min_interval)
    assert due(world.deps, world.connection_id, "payments") is None  # no longer polled often


def test_the_sighting_uses_the_invoices_the_fetch_stored_without_reading_them_back(make_system, published,
                                                                                   monkeypatch):
    from workers.xero_tasks import ingest_xero_events

    world, clock = simulated_world(make_system)
    xero, tenant = world.xero, world.tenant_id
    contact = xero.create_contact(tenant, Name="Payer Ltd")["ContactID"]
    invoice = xero.create_invoice(tenant, contact, [{"Description": "Work", "Quantity": 1, "UnitAmount": 100,
                                                     "AccountCode": "200"}])["InvoiceID"]
    xero.add_payment(tenant, invoice, 40, date=clock.now().date())
    snapshots = world.deps.store.snapshots
    reads: list[str] = []
    real_get_many = snapshots.get_many
    monkeypatch.setattr(snapshots, "get_many", lambda connection_id, resource, ids: (
        reads.append(resource), real_get_many(connection_id, resource, ids))[1])
    ingest_xero_events.run([{"resourceId": invoice, "eventCategory": "INVOICE", "eventType": "UPDATE",
                             "tenantId": tenant, "eventDateUtc": clock.now().replace(tzinfo=None).isoformat(),
                             "sync_id": "s-1"}])
    for flush in published.take("connector.flush_xero_buffer"):
        run(flush)
    assert [p.args[2] for p in published.take("connector.buffer_zoho_push")] == [[invoice]]  # handed over
    assert "invoices" not in reads
    state = world.deps.schedule_state.load(world.connection_id)
    assert state.payments_raise_invoice_webhooks and state.open_invoices == 1  # sighted all the same
