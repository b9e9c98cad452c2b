"""A worker takes a Xero delivery as the receiver queues it (the body as received, one sync id per
event) and as an older receiver queued it (the events, each with its sync id): both are received
alike, each record with the sync id the receiver gave it."""

from __future__ import annotations

import json

import pytest

from connector.pipeline.common import new_sync_ids
from connector.store import audit as stages
from tests.reliability.test_buffers_hand_over import FLUSH_XERO, contact_events, seed_contacts
from workers.xero_tasks import ingest_xero_events


def as_body(events: list[dict], sync_ids: list[str]) -> list:
    body = json.dumps({"events": [{**event, "somethingNew": "never forwarded"} for event in events],
                       "firstEventSequence": 1, "lastEventSequence": len(events), "entropy": "E"})
    return [body, sync_ids]


def as_events(events: list[dict], sync_ids: list[str]) -> list:
    return [[{**event, "sync_id": sync_id} for event, sync_id in zip(events, sync_ids)]]


def received_with(world, ids: list[str], sync_ids: list[str]) -> list:
    """Each contact's audit trail: only its 'received' event, with the sync id given for it."""
    events = []
    for xero_id, sync_id in zip(ids, sync_ids, strict=True):
        [received] = world.deps.store.audit.trail(world.connection_id, "contact", xero_id)
        assert (received.stage, received.sync_id) == (stages.RECEIVED, sync_id)
        events.append(received)
    return events


@pytest.mark.parametrize("queued_as", [as_body, as_events])
def test_a_delivery_is_received_with_the_sync_ids_the_receiver_gave_it(world, published, queued_as):
    ids = seed_contacts(world, 3)
    sync_ids = new_sync_ids(3)

    assert ingest_xero_events.apply(args=queued_as(contact_events(world, ids), sync_ids)).successful()

    for received in received_with(world, ids, sync_ids):
        assert received.detail["event_type"] == "UPDATE"
    assert len(published.take(FLUSH_XERO)) == 1


def test_a_body_whose_sync_ids_do_not_match_its_events_fails_and_receives_nothing(world, published):
    ids = seed_contacts(world, 2)
    result = ingest_xero_events.apply(args=as_body(contact_events(world, ids), new_sync_ids(1)))
    assert result.failed() and "2 events came with 1 sync ids" in str(result.result)
    assert world.deps.store.audit.trail(world.connection_id, "contact", ids[0]) == []
    assert published.take(FLUSH_XERO) == []


def test_the_naive_benchmark_app_takes_the_delivery_the_receiver_queues(world, published):
    """bench/pipeline.py's naive worker answers the receiver's task name, so it must read the same message."""
    from bench.support.naive import NAIVE_SYNC
    from bench.support.naive import ingest_xero_events as naive_ingest

    ids = seed_contacts(world, 2)
    sync_ids = new_sync_ids(2)

    assert naive_ingest.apply(args=as_body(contact_events(world, ids), sync_ids)).successful()

    received_with(world, ids, sync_ids)
    queued = published.take(NAIVE_SYNC)  # one task per event, carrying the receiver's sync id
    assert sorted((m.args[2], m.args[3]) for m in queued) == sorted(zip(ids, sync_ids))
