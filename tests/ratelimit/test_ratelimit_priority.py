"""Lower priorities leave headroom so webhook work (priority 0) always finds room."""

from __future__ import annotations

import pytest

from connector.ratelimit import Limits, Permit, XeroRateGovernor, allowed_share


def count_grants(governor: XeroRateGovernor, limits: Limits, priority: int) -> int:
    granted = 0
    while isinstance(permit := governor.try_acquire("t1", limits, priority=priority), Permit):
        governor.release(permit)
        granted += 1
    return granted


@pytest.mark.parametrize(("priority", "share"), [(0, 60), (1, 54), (2, 45)])
def test_minute_share_by_priority(governor, priority, share):
    assert count_grants(governor, Limits(), priority) == share


def test_webhook_work_still_gets_the_headroom_backfill_left(governor):
    assert count_grants(governor, Limits(), priority=2) == 45
    assert count_grants(governor, Limits(), priority=1) == 54 - 45
    assert count_grants(governor, Limits(), priority=0) == 60 - 54
    assert governor.try_acquire("t1", Limits(), priority=0).reason == "minute"


@pytest.mark.parametrize(("priority", "share"), [(0, 100), (1, 95), (2, 90)])
def test_day_share_by_priority(governor, priority, share):
    limits = Limits(minute=10**6, day=100, app_minute=10**6)
    assert count_grants(governor, limits, priority) == share
    assert governor.try_acquire("t1", limits, priority=priority).reason == "day"


def test_a_denied_backfill_is_told_when_its_share_frees_up(governor, clock):
    for _ in range(50):  # one webhook call a second, t = 0..49
        governor.release(governor.try_acquire("t1", Limits(), priority=0))
        clock.advance(1)
    # At t=50, 50 in the window: backfill (45) must wait until 6 have left, at t=65.
    denial = governor.try_acquire("t1", Limits(), priority=2)
    assert denial.reason == "minute"
    assert denial.retry_after == pytest.approx(65 - 50)


def test_shares_round_down_but_never_to_nothing():
    assert allowed_share(5000, 0.05) == 4750
    assert allowed_share(7, 0.25) == 5
    assert allowed_share(1, 0.25) == 1
