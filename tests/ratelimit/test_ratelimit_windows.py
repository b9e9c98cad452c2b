"""Rolling minute/day windows, per tenant and app-wide (https://developer.xero.com/documentation/oauth2/limits)."""

from __future__ import annotations

import random

import pytest

from connector.ratelimit import Denial, Limits, Permit, XeroRateGovernor

def grant(governor: XeroRateGovernor, tenant: str, limits: Limits = Limits()) -> Permit:
    outcome = governor.try_acquire(tenant, limits)
    assert isinstance(outcome, Permit), outcome
    governor.release(outcome)
    return outcome


def test_sixty_calls_a_minute_then_denial_until_the_oldest_leaves(governor, clock):
    for _ in range(60):
        grant(governor, "t1")
        clock.advance(0.5)
    clock.advance(-0.5)  # now = first grant + 29.5 s
    denial = governor.try_acquire("t1")
    assert denial == Denial(reason="minute", retry_after=pytest.approx(30.5))
    clock.advance(30.499)
    assert governor.try_acquire("t1").reason == "minute"
    clock.advance(0.001)
    assert isinstance(governor.try_acquire("t1"), Permit)


def test_rolling_window_counts_the_last_sixty_seconds_not_a_fixed_minute(governor, clock):
    for _ in range(30):
        grant(governor, "t1")
    clock.advance(30)
    for _ in range(30):
        grant(governor, "t1")
    clock.advance(29)  # t=59: 60 calls in the last 60 s
    assert governor.try_acquire("t1") == Denial("minute", pytest.approx(1.0))
    clock.advance(1)  # t=60: the first 30 have left, the second 30 still count
    for _ in range(30):
        grant(governor, "t1")
    assert governor.try_acquire("t1") == Denial("minute", pytest.approx(30.0))


def test_random_traffic_never_puts_more_than_the_limit_in_any_window(governor, clock):
    rng = random.Random(7)
    limits = Limits(minute=10, day=10**6, app_minute=10**6)
    # Whole milliseconds, as the governor counts them, so float drift cannot blur the edges.
    start_ms, granted_ms = round(clock.time() * 1000), []
    for _ in range(300):
        clock.advance(rng.choice([0, 100, 1000, 3000, 7500]) / 1000)
        outcome = governor.try_acquire("t1", limits)
        now_ms = round(clock.time() * 1000)
        in_window = [t for t in granted_ms if now_ms - t < 60_000]
        if isinstance(outcome, Permit):
            governor.release(outcome)
            granted_ms.append(now_ms)
        else:
            # Denied only when the window is really full, and told exactly when it frees up.
            assert len(in_window) == 10
            assert outcome.retry_after == pytest.approx((in_window[0] + 60_000 - now_ms) / 1000)
    assert granted_ms[-1] - start_ms > 120_000  # spans several windows
    for i, t in enumerate(granted_ms):
        assert sum(1 for u in granted_ms[i:] if u - t < 60_000) <= 10
    assert len(granted_ms) > 20


def test_day_limit_denies_the_call_past_it_until_the_oldest_is_a_day_old(governor, clock):
    limits = Limits(minute=10**6, day=50, app_minute=10**6)
    for _ in range(50):
        grant(governor, "t1", limits)
        clock.advance(60)
    denial = governor.try_acquire("t1", limits)
    assert denial == Denial("day", pytest.approx(86_400 - 50 * 60))
    clock.advance(denial.retry_after)
    assert isinstance(governor.try_acquire("t1", limits), Permit)


def test_five_thousand_a_day_on_real_redis(real_redis, clock):
    governor = XeroRateGovernor(real_redis, clock=clock)
    limits = Limits(minute=10**6, day=5000, concurrent=10**6, app_minute=10**6)
    for _ in range(5000):  # unreleased: one round trip each keeps this near a second
        assert isinstance(governor.try_acquire("t1", limits), Permit)
        clock.advance(10)
    assert governor.usage("t1")["day_used"] == 5000
    assert governor.try_acquire("t1", limits) == Denial("day", pytest.approx(86_400 - 50_000))


def test_starter_tier_day_limit_is_taken_per_call(real_redis, clock):
    governor = XeroRateGovernor(real_redis, clock=clock)
    starter = Limits(minute=10**6, day=1000, concurrent=10**6, app_minute=10**6)
    for _ in range(1000):
        assert isinstance(governor.try_acquire("t1", starter), Permit)
    assert governor.try_acquire("t1", starter).reason == "day"
    standard = Limits(minute=10**6, day=5000, concurrent=10**6, app_minute=10**6)
    assert isinstance(governor.try_acquire("t1", standard), Permit)


def test_tenants_have_independent_budgets(governor):
    for _ in range(60):
        grant(governor, "t1")
    assert governor.try_acquire("t1").reason == "minute"
    assert isinstance(governor.try_acquire("t2"), Permit)
    assert governor.usage("t2")["minute_used"] == 1


def test_app_minute_limit_spans_tenants(governor, clock):
    limits = Limits(app_minute=100)
    for n in range(100):
        grant(governor, f"tenant-{n % 4}", limits)
    denial = governor.try_acquire("tenant-new", limits)
    assert denial == Denial("app_minute", pytest.approx(60.0))
    assert governor.usage("tenant-new")["app_minute_used"] == 100
    clock.advance(60)
    assert isinstance(governor.try_acquire("tenant-new", limits), Permit)


def test_apps_do_not_share_budgets(any_redis, clock):
    first = XeroRateGovernor(any_redis, clock=clock, app_id="app-a")
    second = XeroRateGovernor(any_redis, clock=clock, app_id="app-b")
    for _ in range(60):
        grant(first, "t1")
    assert first.try_acquire("t1").reason == "minute"
    assert isinstance(second.try_acquire("t1"), Permit)


def test_usage_reports_each_window(governor, clock):
    held = governor.try_acquire("t1")
    grant(governor, "t1")
    clock.advance(61)
    grant(governor, "t1")
    assert governor.usage("t1") == {
        "minute_used": 1,
        "day_used": 3,
        "day_used_by_dry_runs": 0,
        "in_flight": 1,
        "app_minute_used": 1,
        "penalty_remaining": 0.0,
    }
    governor.release(held)
    assert governor.usage("t1")["in_flight"] == 0


def test_every_key_expires_on_its_own(real_redis, clock):
    governor = XeroRateGovernor(real_redis, clock=clock)
    governor.try_acquire("t1")  # held: its in-flight key stays
    permit = governor.try_acquire("t1")
    governor.release(permit, {"X-MinLimit-Remaining": "0", "X-DayLimit-Remaining": "0"})
    governor.observe_429("t1", retry_after=30, problem="minute")
    governor.observe_429("t1", retry_after=30, problem="appminute")
    keys = sorted(key.decode() for key in real_redis.keys("*"))
    assert keys == [
        "ratelimit:xero:{default}:app:minute",
        "ratelimit:xero:{default}:app:penalty",
        "ratelimit:xero:{default}:tenant:t1:day",
        "ratelimit:xero:{default}:tenant:t1:inflight",
        "ratelimit:xero:{default}:tenant:t1:minute",
        "ratelimit:xero:{default}:tenant:t1:penalty",
    ]
    for key in keys:
        assert 0 < real_redis.pttl(key) <= 86_400_000 + 60_000, key


def test_dry_run_calls_count_against_the_day_and_are_told_apart_from_live_ones(governor, clock):
    for _ in range(3):
        grant(governor, "t1")
    for _ in range(2):
        governor.release(governor.try_acquire("t1", dry_run=True))
    usage = governor.usage("t1")
    assert usage["day_used"] == 5 and usage["day_used_by_dry_runs"] == 2  # Xero counts both
    clock.advance(86_400)
    assert governor.usage("t1")["day_used_by_dry_runs"] == 0  # rolls out of the day with the rest
