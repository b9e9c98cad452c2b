"""Concurrent calls per tenant (Xero: 5 in flight) and the slot() context manager."""

from __future__ import annotations

import pytest

from connector.errors import RateLimited
from connector.ratelimit import CONCURRENT_RETRY_AFTER, Denial, Limits, Permit, XeroRateGovernor


def test_five_in_flight_then_denied_until_one_is_released(governor):
    permits = [governor.try_acquire("t1") for _ in range(5)]
    assert all(isinstance(p, Permit) for p in permits)
    assert governor.try_acquire("t1") == Denial("concurrent", CONCURRENT_RETRY_AFTER)
    assert isinstance(governor.try_acquire("t2"), Permit)  # another tenant's slots are its own
    governor.release(permits[0])
    assert isinstance(governor.try_acquire("t1"), Permit)
    assert governor.try_acquire("t1").reason == "concurrent"


def test_release_twice_frees_only_one_slot(governor):
    permits = [governor.try_acquire("t1", Limits(concurrent=2)) for _ in range(2)]
    governor.release(permits[0])
    governor.release(permits[0])
    assert governor.usage("t1")["in_flight"] == 1
    assert isinstance(governor.try_acquire("t1", Limits(concurrent=2)), Permit)
    assert governor.try_acquire("t1", Limits(concurrent=2)).reason == "concurrent"


def test_a_crashed_workers_permit_frees_itself_after_the_ttl(any_redis, clock):
    governor = XeroRateGovernor(any_redis, clock=clock, inflight_ttl=30)
    for _ in range(5):
        governor.try_acquire("t1")  # never released: the workers "crashed"
    clock.advance(29.9)
    # Nothing frees up before the oldest permit expires, so the wait is capped by that.
    assert governor.try_acquire("t1") == Denial("concurrent", pytest.approx(0.1))
    clock.advance(0.1)
    assert governor.usage("t1")["in_flight"] == 0
    assert isinstance(governor.try_acquire("t1"), Permit)


def test_slot_holds_a_permit_for_the_block_and_releases_it_on_error(governor):
    with pytest.raises(ZeroDivisionError):
        with governor.slot("t1") as permit:
            assert permit.tenant_id == "t1"
            assert governor.usage("t1")["in_flight"] == 1
            1 / 0
    assert governor.usage("t1")["in_flight"] == 0
    assert governor.usage("t1")["minute_used"] == 1


def test_slot_raises_rate_limited_at_once_when_denied(governor, clock):
    limits = Limits(minute=2)
    for _ in range(2):
        with governor.slot("t1", limits):
            pass
    clock.advance(15)
    with pytest.raises(RateLimited) as caught:
        with governor.slot("t1", limits):
            pytest.fail("the block must not run when denied")
    assert caught.value.problem == "minute"
    assert caught.value.retry_after == pytest.approx(45.0)
    assert governor.usage("t1")["in_flight"] == 0


def test_slot_release_after_feedback_inside_the_block_is_harmless(governor):
    with governor.slot("t1") as permit:
        governor.release(permit, {"X-MinLimit-Remaining": "50"})
    assert governor.usage("t1") | {"penalty_remaining": None} == {
        "minute_used": 10,  # Xero counted 10 of 60; we had 1
        "day_used": 1,
        "day_used_by_dry_runs": 0,
        "in_flight": 0,
        "app_minute_used": 1,
        "penalty_remaining": None,
    }
