"""Parked work is handed over only once queued; notifications of a connection that needs a person are kept;
long limits and long outages park work durably (never "failed") and the beat re-drives it."""

from __future__ import annotations

from datetime import datetime, timedelta

from kombu.exceptions import OperationalError

from connector.clock import ManualClock
from connector.store import audit as stages
from connector.store.parked import DAILY_BUDGET, NEEDS_REAUTH, OUTAGE, RATE_LIMITED
from tests.reliability.conftest import run_until_quiet
from workers.app import app
from workers.maintenance_tasks import resume_parked_work
from workers.zoho_tasks import ingest_zoho_notification, push_records_to_zoho

FETCH_TASK, PUSH_TASK = "connector.fetch_xero_records", "connector.push_records_to_zoho"


def broker_down(*_args, **_kwargs):
    raise OperationalError("Error 111 connecting to the broker. Connection refused.")


def test_resuming_parked_work_while_the_broker_is_down_loses_nothing(world, published, monkeypatch):
    store = world.deps.store
    store.parked.park(world.connection_id, "contacts", ["c-1", "c-2"], reason=NEEDS_REAUTH)

    monkeypatch.setattr(app, "send_task", broker_down)
    assert resume_parked_work.apply().failed()
    monkeypatch.undo()
    assert store.parked.count(world.connection_id) == 2  # still parked: nothing was queued

    resume_parked_work.apply()
    [fetch] = published.take(FETCH_TASK)
    assert sorted(fetch.args[2]) == ["c-1", "c-2"] and store.parked.count(world.connection_id) == 0


def test_zoho_notifications_of_a_connection_needing_a_person_are_kept_and_resumed(world, published):
    store = world.deps.store
    store.connections.mark_needs_reauth(world.connection_id, "Zoho grant revoked")
    notification = {"module": "Contacts", "ids": ["z-1", "z-2"], "operation": "update", "channel_id": "7",
                    "server_time": None}

    ingest_zoho_notification.apply(args=[world.connection_id, notification])

    assert store.parked.count(world.connection_id, reason=NEEDS_REAUTH) == 2
    assert store.audit.latest_stage(world.connection_id, "Contacts", "z-1") == stages.PARKED
    store.connections.set_state(world.connection_id, "active")  # a person reconnected
    resume_parked_work.apply(args=[[world.connection_id]])
    [resumed] = published.take("connector.ingest_zoho_notification")
    assert resumed.args[0] == world.connection_id
    assert resumed.args[1]["module"] == "Contacts" and sorted(resumed.args[1]["ids"]) == ["z-1", "z-2"]
    assert resumed.args[1]["operation"] == "update"
    assert store.parked.count(world.connection_id) == 0


def seed_contacts(world, count: int) -> list[str]:
    ids = [world.xero.create_contact(world.tenant_id, Name=f"Limited {n} Ltd")["ContactID"] for n in range(count)]
    world.fetch("contacts", ids)
    return ids


def test_a_run_of_zoho_429s_parks_the_push_and_the_beat_re_drives_it(make_system, published):
    clock = ManualClock()
    world = make_system(clock=clock)
    store = world.deps.store
    ids = seed_contacts(world, 3)
    world.zoho.faults.fail_next(1000, status=429, path_prefix="/crm/v8/",
                                body='{"code":"TOO_MANY_REQUESTS","details":{},"message":"credits","status":"error"}')

    push_records_to_zoho.apply(args=[world.connection_id, "contacts", ids, {}])

    # Short retries first, then parked in the database; never audited "failed".
    for xero_id in ids:
        trail = store.audit.trail(world.connection_id, "contact", xero_id)
        stages_seen = [e.stage for e in trail]
        assert stages.FAILED not in stages_seen and stages_seen[-1] == stages.PARKED
        assert sum(e.times for e in trail if e.stage == stages.RETRYING) >= 3
        assert stages_seen.count(stages.RETRYING) == 1  # the run of retries is one row, counting them
    assert store.parked.count(world.connection_id, reason=RATE_LIMITED) == 3
    resume_parked_work.apply()
    assert published.named(PUSH_TASK) == []  # not before its backoff

    world.zoho.faults.clear()  # Zoho's credits are back
    clock.advance(timedelta(hours=1))
    resume_parked_work.apply()
    run_until_quiet(published, PUSH_TASK)
    assert store.parked.count(world.connection_id) == 0
    for xero_id in ids:
        assert store.audit.latest_stage(world.connection_id, "contact", xero_id) == stages.WRITTEN


def test_a_zoho_outage_longer_than_the_short_retries_parks_with_a_growing_backoff(make_system, published):
    clock = ManualClock()
    world = make_system(clock=clock)
    store = world.deps.store
    ids = seed_contacts(world, 2)
    world.zoho.faults.fail_next(1000, status=503, path_prefix="/crm/v8/")

    waits = []
    push_records_to_zoho.apply(args=[world.connection_id, "contacts", ids, {}])
    run_until_quiet(published, PUSH_TASK)  # the batch is split after its first retries; each half parks
    for _ in range(3):
        [parked] = [e for e in store.audit.trail(world.connection_id, "contact", ids[0])
                    if e.stage == stages.PARKED][-1:]
        waits.append(datetime.fromisoformat(parked.detail["resume_after"]) - parked.created_at)
        assert store.parked.count(world.connection_id, reason=OUTAGE) == 2
        clock.advance(timedelta(hours=7))  # past the longest wait
        resume_parked_work.apply()
        run_until_quiet(published, PUSH_TASK)  # fails again, parks again
    assert waits[0] < waits[1] < waits[2]  # parked three times, each time for longer (minutes, then hours)
    assert waits[2] >= timedelta(minutes=50)
    world.zoho.faults.clear()
    clock.advance(timedelta(hours=7))
    resume_parked_work.apply()
    run_until_quiet(published, PUSH_TASK)
    assert all(store.audit.latest_stage(world.connection_id, "contact", i) == stages.WRITTEN for i in ids)
    assert not any(e.stage == stages.FAILED for i in ids for e in store.audit.trail(world.connection_id, "contact", i))


def test_a_spent_xero_day_met_from_the_zoho_queue_parks_the_push(make_system, published):
    clock = ManualClock()
    world = make_system(clock=clock)
    store = world.deps.store
    contact = world.xero.create_contact(world.tenant_id, Name="Budget Ltd")["ContactID"]
    invoice = world.xero.create_invoice(world.tenant_id, contact, [
        {"Description": "Widget", "Quantity": 1, "UnitAmount": "10.00", "AccountCode": "200"}])["InvoiceID"]
    world.fetch("invoices", [invoice])  # the invoice is stored; its contact is not, so the push reads it
    world.xero.spend_day_calls(world.tenant_id, 5000)

    push_records_to_zoho.apply(args=[world.connection_id, "invoices", [invoice], {}])

    assert store.parked.count(world.connection_id, reason=DAILY_BUDGET) == 1
    assert stages.FAILED not in [e.stage for e in store.audit.trail(world.connection_id, "invoice", invoice)]


def test_a_zoho_notification_that_fails_or_waits_is_audited_in_the_zoho_to_xero_direction(world):
    """The failure and parked rows of a notification carry its direction, as its other stages do."""
    store = world.deps.store
    for zoho_id in ("z-1", "z-2"):  # people of this connection's Xero contacts: a notification is routed by its link
        store.links.save(world.connection_id, "contact_person", f"x-{zoho_id}:primary", zoho_module="Contacts",
                         zoho_id=zoho_id, content_hash="h")
    world.zoho.faults.fail_next(1, status=400, path_prefix="/crm/v8/Contacts",
                                body='{"code":"INVALID_DATA","details":{},"message":"bad id","status":"error"}')
    refused = {"module": "Contacts", "ids": ["z-1"], "operation": "update", "channel_id": "7", "server_time": None}

    assert ingest_zoho_notification.apply(args=[world.connection_id, refused]).failed()

    [failed] = [e for e in store.audit.trail(world.connection_id, "Contacts", "z-1") if e.stage == stages.FAILED]
    assert failed.direction == stages.ZOHO_TO_XERO
    store.connections.mark_needs_reauth(world.connection_id, "Zoho grant revoked")
    waiting = {**refused, "ids": ["z-2"]}
    ingest_zoho_notification.apply(args=[world.connection_id, waiting])
    [parked] = store.audit.trail(world.connection_id, "Contacts", "z-2")
    assert parked.stage == stages.PARKED and parked.direction == stages.ZOHO_TO_XERO
