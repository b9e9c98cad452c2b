"""Both leased buffers (Xero ids awaiting a fetch, fetched ids awaiting a Zoho push) hand work over only
once the next stage has it, and a beat sweep flushes what a lost task or a dead worker left behind."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from connector.clock import ManualClock
from connector.coalesce import DEFAULT_LEASE_SECONDS
from connector.store import audit as stages
from tests.reliability.conftest import run
from workers.xero_tasks import ingest_xero_events
from workers.zoho_tasks import buffer_zoho_push, flush_zoho_buffer, push_records_to_zoho, push_to_zoho

BUFFER, PUSH = "connector.buffer_zoho_push", "connector.push_records_to_zoho"
FLUSH_ZOHO, FLUSH_XERO = "connector.flush_zoho_buffer", "connector.flush_xero_buffer"


def broker_down(*_args, **_kwargs):
    raise OperationalError("Error 111 connecting to the broker. Connection refused.")


def seed_contacts(world, count: int) -> list[str]:
    return [world.xero.create_contact(world.tenant_id, Name=f"Buffered {n} Ltd")["ContactID"] for n in range(count)]


def contact_events(world, ids: list[str]) -> list[dict]:
    return [{"tenantId": world.tenant_id, "eventCategory": "CONTACT", "eventType": "UPDATE", "resourceId": i,
             "eventDateUtc": "2026-01-05T09:00:00"} for i in ids]


def pushed_ids(published) -> set[str]:
    """Ids handed on to Zoho: into its buffer, or to a push of their own."""
    return {i for name in (BUFFER, PUSH) for message in published.take(name) for i in message.args[2]}


def test_a_fetched_chunk_stays_in_the_xero_buffer_until_its_zoho_push_is_queued(world, published, monkeypatch):
    ids = seed_contacts(world, 3)
    ingest_xero_events.apply(args=[contact_events(world, ids)])
    [flush] = published.take(FLUSH_XERO)

    monkeypatch.setattr(buffer_zoho_push, "apply_async", broker_down)  # fetched and stored, but cannot be handed on
    assert run(flush).failed()
    monkeypatch.undo()

    run(flush)  # the worker's retry of the same flush, once the broker is back
    assert pushed_ids(published) == set(ids)


def test_the_zoho_buffer_keeps_ids_until_their_push_is_queued(world, published, monkeypatch):
    ids = seed_contacts(world, 3)
    buffer_zoho_push.apply(args=[world.connection_id, "contacts", ids, {}])
    [flush] = published.take(FLUSH_ZOHO)

    monkeypatch.setattr(push_records_to_zoho, "apply_async", broker_down)
    assert run(flush).failed()
    monkeypatch.undo()

    run(flush)
    assert pushed_ids(published) == set(ids)


def test_a_push_whose_flush_could_not_be_queued_queues_it_when_redelivered(world, published, monkeypatch):
    ids = seed_contacts(world, 2)
    message = [world.connection_id, "contacts", ids, {}]

    monkeypatch.setattr(flush_zoho_buffer, "apply_async", broker_down)
    assert buffer_zoho_push.apply(args=message).failed()
    monkeypatch.undo()
    assert published.named(FLUSH_ZOHO) == []

    buffer_zoho_push.apply(args=message)  # acks_late: the broker delivers the push again
    [flush] = published.take(FLUSH_ZOHO)  # no stale flag holds it back
    run(flush)
    assert pushed_ids(published) == set(ids)


@pytest.mark.parametrize("direction", ["xero", "zoho"])
def test_the_sweep_flushes_what_a_dead_worker_left_in_a_buffer(make_system, published, direction):
    from workers.xero_tasks import sweep_buffers

    clock = ManualClock()
    world = make_system(clock=clock)
    ids = seed_contacts(world, 4)
    buffer = world.deps.coalescer if direction == "xero" else world.deps.zoho_buffer
    if direction == "xero":
        ingest_xero_events.apply(args=[contact_events(world, ids)])
    else:
        buffer_zoho_push.apply(args=[world.connection_id, "contacts", ids, {}])
    published.clear()  # the scheduled flush is lost with its worker...
    buffer.start_flush(world.connection_id, "contacts")  # ...which had started it...
    assert buffer.claim(world.connection_id, "contacts") is not None  # ...and claimed the ids, then died

    sweep_buffers.apply()
    assert published.named(FLUSH_XERO) + published.named(FLUSH_ZOHO) == []  # the lease is still live

    clock.advance(DEFAULT_LEASE_SECONDS + 1)
    sweep_buffers.apply()
    flushes = published.take(FLUSH_XERO if direction == "xero" else FLUSH_ZOHO)
    assert len(flushes) == 1
    run(flushes[0])
    assert pushed_ids(published) == set(ids)


def test_a_flush_keeps_its_lease_alive_while_it_works(make_system):
    clock = ManualClock()
    world = make_system(clock=clock)
    buffer = world.deps.zoho_buffer
    buffer.add(world.connection_id, "contacts", {"a": "", "b": ""}, countdown=0)
    claim = buffer.claim(world.connection_id, "contacts")
    for _ in range(3):  # a long flush: each chunk pushes the lease out
        clock.advance(DEFAULT_LEASE_SECONDS * 0.75)
        assert buffer.extend(claim)
        assert buffer.claim(world.connection_id, "contacts") is None  # nobody takes its ids meanwhile
    clock.advance(DEFAULT_LEASE_SECONDS + 1)  # then its worker dies
    reclaimed = buffer.claim(world.connection_id, "contacts")
    assert reclaimed is not None and sorted(reclaimed.ids) == ["a", "b"]
    assert not buffer.extend(claim)  # the dead flush's lease is gone for good


def test_a_push_message_of_the_old_name_still_buffers_or_pushes_as_its_argument_says(world, published):
    """Messages an older release queued as "connector.push_to_zoho" (buffered=True|False) during an upgrade."""
    from celeryconfig import task_routes
    from connector import queues

    assert task_routes["connector.push_to_zoho"] == {"queue": queues.ZOHO_QUEUE}
    ids = seed_contacts(world, 4)
    buffered, pushed = ids[:2], ids[2:]
    world.fetch("contacts", buffered + pushed)

    push_to_zoho.apply(args=[world.connection_id, "contacts", buffered, {}])  # buffered=True, its default
    assert world.deps.zoho_buffer.pending(world.connection_id, "contacts") == 2
    [flush] = published.take(FLUSH_ZOHO)
    run(flush)
    assert pushed_ids(published) == set(buffered)

    assert push_to_zoho.apply(args=[world.connection_id, "contacts", pushed, {}], kwargs={"buffered": False}).result == 2
    audit = world.deps.store.audit
    assert all(audit.latest_stage(world.connection_id, "contact", i) == stages.WRITTEN for i in pushed)
    assert published.named(FLUSH_ZOHO) == [] and world.deps.zoho_buffer.pending(world.connection_id, "contacts") == 0
