"""The planner's invariants, on a simulated clock: scheduled work never takes more than its share of the
day in any 24 h, live (webhook) work is never denied by it, and denied work is kept with its reason."""

from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace

import pytest

from connector.budget import BudgetLedger, BudgetPlanner, Deferral, Grant, PlanInputs, plan_scheduled

CONNECTION = 3


def response(purpose, remaining=None):
    headers = {"X-DayLimit-Remaining": str(remaining)} if remaining is not None else {}
    return SimpleNamespace(vendor="xero", connection_id=CONNECTION, method="GET", endpoint="/api.xro/2.0/Payments", status=200,
                           bytes_received=300, purpose=purpose, limit_headers=headers)


@pytest.fixture
def ledger(any_redis, clock):
    return BudgetLedger(any_redis, clock=clock)


@pytest.fixture
def planner(any_redis, ledger, clock):
    return BudgetPlanner(any_redis, ledger, clock=clock, share=0.10)


def test_scheduled_work_gets_its_share_and_no_more_and_says_why(planner, ledger):
    granted = 0
    while isinstance(answer := planner.ask(CONNECTION, "payments"), Grant):
        ledger.record(response("payments"))
        granted += 1
    assert granted == 100  # 10 % of Starter's 1,000
    assert isinstance(answer, Deferral) and answer.reason == "share"
    assert "100 calls" in answer.detail and answer.retry_after > 23 * 3600
    kept = planner.deferred(CONNECTION)["payments"]
    assert kept["reason"] == "share" and kept["count"] == 1


def test_the_share_comes_back_as_grants_age_out_of_24_hours(planner, clock):
    for _ in range(100):
        assert isinstance(planner.ask(CONNECTION, "catch_up"), Grant)
    denied = planner.ask(CONNECTION, "catch_up")
    assert isinstance(denied, Deferral)
    clock.advance(denied.retry_after)
    assert isinstance(planner.ask(CONNECTION, "catch_up"), Grant)
    assert "catch_up" not in planner.deferred(CONNECTION)  # a grant clears the deferral shown


def test_live_work_is_never_asked_and_never_denied(planner):
    for _ in range(100):
        planner.ask(CONNECTION, "check")
    assert planner.ask(CONNECTION, "webhook_fetch") == Grant("webhook_fetch", 1)
    assert planner.ask(CONNECTION, "write_back") == Grant("write_back", 1)


def test_scheduled_work_yields_when_webhook_work_needs_the_rest_of_the_day(planner, ledger, clock):
    ledger.record(response("webhook_fetch", remaining=1))
    ledger.record(response("webhook_fetch", remaining=999))  # a reset: the Xero day starts now
    for remaining in range(998, 298, -1):  # yesterday's afternoon: 700 webhook calls after this hour of the day
        ledger.record(response("webhook_fetch", remaining=remaining))
    clock.advance(14 * 3600)  # the next Xero day; 10 h on, the last 24 h still hold that afternoon
    ledger.record(response("webhook_fetch", remaining=999))
    for _ in range(250):  # this morning so far
        ledger.record(response("webhook_fetch"))
    assert ledger.live_expected(CONNECTION) == 702  # yesterday's afternoon may come again
    assert isinstance(planner.ask(CONNECTION, "payments"), Grant)  # 251 + 1 + 702 <= 1000
    for _ in range(60):
        ledger.record(response("webhook_fetch"))
    answer = planner.ask(CONNECTION, "payments")  # 312 + 1 + 702 > 1000: the rest is webhook work's
    assert isinstance(answer, Deferral) and answer.reason == "live"
    assert "kept for webhook work" in answer.detail
    assert planner.ask(CONNECTION, "webhook_fetch") == Grant("webhook_fetch", 1)


def test_learned_limit_raises_the_share(planner, ledger):
    ledger.record(response("webhook_fetch", remaining=4999))
    granted = sum(isinstance(planner.ask(CONNECTION, "payments"), Grant) for _ in range(600))
    assert granted == 500


@pytest.mark.parametrize("seed", range(2))
def test_simulated_days_never_exceed_the_share_in_any_24_hours(planner, ledger, clock, seed):
    """A random mix of live and scheduled asks over two simulated days: in every sliding 24 h window
    the scheduled grants stay within 10 % of the limit, and every live call is made."""
    rng = random.Random(seed)
    grants: list[float] = []
    live_made = 0
    for _ in range(2 * 24 * 6):  # ten-minute steps
        clock.advance(600)
        for _ in range(rng.randint(0, 3)):
            ledger.record(response("webhook_fetch"))
            live_made += 1
        for purpose in rng.sample(["catch_up", "payments", "check", "backfill"], rng.randint(0, 4)):
            if isinstance(planner.ask(CONNECTION, purpose), Grant):
                grants.append(clock.time())
                ledger.record(response(purpose))
    for start in grants:
        assert sum(1 for t in grants if start <= t < start + 86400) <= 100
    assert live_made > 0 and len(grants) > 100  # both kinds ran, the share was pressed against


def test_plan_scheduled_is_pure_arithmetic():
    quiet = PlanInputs(day_limit=1000, share=0.1, scheduled_used=99, day_used=200, live_expected=0)
    assert plan_scheduled(quiet, 1) is None
    assert plan_scheduled(quiet, 2) == "share"
    busy = PlanInputs(day_limit=1000, share=0.1, scheduled_used=0, day_used=800, live_expected=200)
    assert plan_scheduled(busy, 1) == "live"  # 800 + 1 + 200 kept for webhooks > 1000
    assert plan_scheduled(replace(busy, live_expected=0), 1) is None
    assert plan_scheduled(replace(busy, day_used=950, live_expected=0), 1) == "live"  # the floor: 5 % kept
