"""The rate governor and status take an organisation's day limit from the budget ledger (what Xero's
X-DayLimit-Remaining taught it), not from the connection row's default of 5,000: on Starter (1,000 a day,
https://developer.xero.com/documentation/guides/oauth2/limits/) each priority's share is a share of 1,000."""

from __future__ import annotations

from datetime import datetime, timezone

from connector.clock import ManualClock
from connector.pipeline.xero_in import PRIORITY_BACKFILL
from connector.status import collect_status


def starter_world(make_system):
    clock = ManualClock(datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc))
    world = make_system(clock=clock)
    world.xero.set_day_limit(world.tenant_id, 1000)
    assert world.connection.xero_daily_limit == 5000  # the row's default: nobody set it
    return world


def test_a_starter_organisation_is_governed_by_the_limit_its_responses_taught(make_system):
    world = starter_world(make_system)
    contact = world.xero.create_contact(world.tenant_id, Name="Starter Ltd")["ContactID"]
    world.xero.spend_day_calls(world.tenant_id, 800)  # Xero has 200 calls left today
    world.fetch("contacts", [contact])  # a webhook fetch: Xero answers 199 left, and the ledger learns

    # A backfill may use 90 % of the day: at 801 of 1,000 it still has 99 calls; of a day taken as 5,000
    # the governor would count 4,801 and refuse it.
    backfill = world.deps.xero_client(world.connection, priority=PRIORITY_BACKFILL)
    assert [c["ContactID"] for c in backfill.get_contacts([contact])] == [contact]

    # Status shows the limit the ledger holds (Starter's 1,000: before a reset is seen, what it learned, 200 left
    # plus its calls, is only a floor) and what Xero has left.
    learned = world.deps.budget_ledger.governing_day_limit(world.connection_id)
    assert learned == 1000
    [status] = collect_status(world.deps)["connections"]
    assert status["xero_calls"]["day_limit"] == learned
    assert status["xero_calls"]["day_left"] == 198
