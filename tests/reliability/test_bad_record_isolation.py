"""One bad id never takes its batch down: a failing batch is split until the bad record is alone, the
others are written, and the bad one alone is audited failed. Replays of failed records behave the same."""

from __future__ import annotations

import pytest

from connector.store import audit as stages
from tests.reliability.conftest import run_until_quiet
from workers.maintenance_tasks import replay
from workers.xero_tasks import ingest_xero_events
from workers.zoho_tasks import push_records_to_zoho

FETCH, BUFFER, PUSH = "connector.fetch_xero_records", "connector.buffer_zoho_push", "connector.push_records_to_zoho"
FLUSH_XERO, FLUSH_ZOHO = "connector.flush_xero_buffer", "connector.flush_zoho_buffer"
# Xero answers 400 "cannot be parsed - must be of type UUID" for the whole IDs= call (sandbox, as Xero does).
BAD_ID = "not-a-contact-id"


@pytest.mark.parametrize("route", ["webhook", "replay"])
def test_a_bad_id_fails_alone_and_the_rest_of_its_batch_is_synced(world, published, route):
    good = [world.xero.create_contact(world.tenant_id, Name=f"Good {n} Ltd")["ContactID"] for n in range(9)]
    ids = good[:4] + [BAD_ID] + good[4:]
    if route == "webhook":
        ingest_xero_events.apply(args=[[
            {"tenantId": world.tenant_id, "eventCategory": "CONTACT", "eventType": "UPDATE", "resourceId": i,
             "eventDateUtc": "2026-01-05T09:00:00"} for i in ids]])
    else:
        replay.apply(args=[world.connection_id, "contacts", ids])  # `connector replay --failed` queues this

    run_until_quiet(published, FLUSH_XERO, FETCH, BUFFER, PUSH, FLUSH_ZOHO)

    audit = world.deps.store.audit
    for xero_id in good:
        trail = [e.stage for e in audit.trail(world.connection_id, "contact", xero_id)]
        assert stages.FAILED not in trail and trail[-1] == stages.WRITTEN, (xero_id, trail)
    bad_trail = audit.trail(world.connection_id, "contact", BAD_ID)
    assert bad_trail[-1].stage == stages.FAILED and "UUID" in bad_trail[-1].detail["reason"]
    assert len(world.zoho.records("Accounts")) == len(good)  # each good contact written once


def test_a_push_zoho_refuses_as_a_whole_is_split_rather_than_failed_whole(world, published):
    good = [world.xero.create_contact(world.tenant_id, Name=f"Split {n} Ltd")["ContactID"] for n in range(6)]
    world.fetch("contacts", good)
    world.deps.zoho_org(world.connection)  # the org is read before the fault is armed
    # Zoho refuses the first upsert as a whole (a request-level 400, as for a body it cannot take).
    world.zoho.faults.fail_next(1, status=400, path_prefix="/crm/v8/Accounts/upsert",
                                body='{"code":"INVALID_DATA","details":{},"message":"invalid data","status":"error"}')

    push_records_to_zoho.apply(args=[world.connection_id, "contacts", good, {}])
    run_until_quiet(published, PUSH)

    assert [r.status for r in world.zoho.calls(path_prefix="/crm/v8/Accounts/upsert")][0] == 400
    audit = world.deps.store.audit
    for xero_id in good:
        trail = [e.stage for e in audit.trail(world.connection_id, "contact", xero_id)]
        assert stages.FAILED not in trail and trail[-1] == stages.WRITTEN, (xero_id, trail)
