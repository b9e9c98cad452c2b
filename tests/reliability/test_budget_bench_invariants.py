"""A simulated working day of a typical organisation through the budget bench's real run
(bench/support/budget_real.py: the connector's tasks, receiver over HTTP and whole beat schedule against the
sandboxes on a ManualClock, the planner's beat): the invariants the month's figures rest on hold. Webhook
work is never denied or parked, Xero never answers 429, and every change reaches Zoho, invoices and contacts
within seconds of their webhook and payments within the configured longest delay. Nothing here reads a wall
clock. The day limit the ledger learns is never above the sandbox's 1,000 (refused calls are not counted: they
once made it 1,039 here), so scheduled pages stay within the 10 % share."""

from __future__ import annotations

import pytest

from bench.budget import ORGS
from bench.support.budget_real import run_org

# A simulated day of every beat entry: about a minute on a quiet machine, ten on one loaded five times over.
pytestmark = [pytest.mark.start_early, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def typical_day(tmp_path_factory):
    return run_org("typical", ORGS["typical"], "planner", 1, seed=11, log_dir=tmp_path_factory.mktemp("budget"))


def test_a_typical_day_of_the_real_code_keeps_the_budget_invariants(typical_day):
    figures = typical_day
    changes = figures["changes"]
    assert changes == {"invoices": 40, "payments": 25, "contacts": 15}  # 2 March 2026 is a Monday
    assert figures["task_failures"] == {}
    assert figures["xero_429s"] == 0
    assert figures["webhook_flushes_denied"] == 0 and figures["webhook_ids_parked"] == 0
    assert figures["parked_at_end"] == {}
    assert figures["not_in_zoho_at_end"] == {} and figures["not_in_zoho_parked"] == {}
    delays = figures["delay_seconds"]
    assert all(delays[kind]["in_zoho"] == changes[kind] for kind in changes)
    assert delays["invoices"]["p95"] <= 10 and delays["contacts"]["p95"] <= 10
    assert delays["payments"]["max"] <= 30 * 60
    assert max(figures["xero_calls_per_day"]["by_day"]) <= 250
    assert figures["day_limit_learned"]["limit"] <= 1000, figures["xero_statuses"]
    assert figures["scheduled_calls_max_in_24h"] <= 100

