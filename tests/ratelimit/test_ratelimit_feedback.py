"""Tightening from Xero's X-*Limit-Remaining headers and 429 penalties
(https://developer.xero.com/documentation/oauth2/limits)."""

from __future__ import annotations

import pytest

from connector.ratelimit import Denial, Limits, Permit, XeroRateGovernor, problem_scope


def call(governor: XeroRateGovernor, tenant: str = "t1", headers=None, limits: Limits = Limits()) -> None:
    permit = governor.try_acquire(tenant, limits)
    assert isinstance(permit, Permit), permit
    governor.release(permit, headers)


def count_grants(governor: XeroRateGovernor, tenant: str = "t1", limits: Limits = Limits()) -> int:
    granted = 0
    while isinstance(permit := governor.try_acquire(tenant, limits), Permit):
        governor.release(permit)
        granted += 1
    return granted


def test_minute_header_lower_than_our_count_leaves_only_what_xero_says(governor, clock):
    for _ in range(9):
        call(governor)
    # Another app instance (or a fixed window we cannot see) used more than we know.
    call(governor, headers={"X-MinLimit-Remaining": "3"})
    assert governor.usage("t1")["minute_used"] == 57
    assert count_grants(governor) == 3
    assert governor.try_acquire("t1") == Denial("minute", pytest.approx(60.0))
    clock.advance(60)  # placeholders age out with the window
    assert governor.usage("t1")["minute_used"] == 0


def test_day_and_app_headers_tighten_their_own_windows(governor, clock):
    limits = Limits(day=100, app_minute=200)
    call(governor, headers={"x-daylimit-remaining": "10", "X-APPMINLIMIT-REMAINING": "20"}, limits=limits)
    usage = governor.usage("t1")
    assert (usage["minute_used"], usage["day_used"], usage["app_minute_used"]) == (1, 90, 180)
    clock.advance(61)  # the minute windows empty; the day placeholders stay for 24 h
    assert count_grants(governor, limits=limits) == 10
    assert governor.try_acquire("t1", limits).reason == "day"


def test_headers_never_loosen_the_count(governor):
    for _ in range(10):
        call(governor)
    call(governor, headers={"X-MinLimit-Remaining": "60", "X-DayLimit-Remaining": "5000"})
    assert governor.usage("t1")["minute_used"] == 11
    assert governor.usage("t1")["day_used"] == 11


@pytest.mark.parametrize("value", ["", "soon", "-4", "3.5", None])
def test_garbage_or_missing_headers_are_ignored(governor, value):
    call(governor, headers={} if value is None else {"X-MinLimit-Remaining": value})
    assert governor.usage("t1")["minute_used"] == 1


def test_a_429_parks_the_tenant_until_retry_after(governor, clock):
    call(governor)
    governor.observe_429("t1", retry_after=20, problem="minute")
    assert governor.try_acquire("t1") == Denial("penalty", pytest.approx(20.0))
    assert governor.penalty_remaining("t1") == pytest.approx(20.0)
    assert isinstance(governor.try_acquire("t2"), Permit)  # other tenants carry on
    clock.advance(19.999)
    assert governor.try_acquire("t1").reason == "penalty"
    clock.advance(0.001)
    assert governor.penalty_remaining("t1") == 0.0
    assert isinstance(governor.try_acquire("t1"), Permit)


def test_a_day_429_with_an_eighteen_hour_retry_after_holds(governor, clock):
    governor.observe_429("t1", retry_after=66_975, problem="day")
    clock.advance(18 * 3600)
    assert governor.try_acquire("t1") == Denial("penalty", pytest.approx(66_975 - 18 * 3600))
    clock.advance(66_975 - 18 * 3600)
    assert isinstance(governor.try_acquire("t1"), Permit)


def test_a_shorter_429_does_not_cut_a_longer_penalty_short(governor):
    governor.observe_429("t1", retry_after=300, problem="day")
    governor.observe_429("t1", retry_after=5, problem="minute")
    assert governor.penalty_remaining("t1") == pytest.approx(300.0)


@pytest.mark.parametrize("problem", ["appminute", "AppMinute", "app"])
def test_an_app_429_parks_every_tenant(governor, clock, problem):
    governor.observe_429("t1", retry_after=7, problem=problem)
    for tenant in ("t1", "t2"):
        assert governor.try_acquire(tenant) == Denial("penalty", pytest.approx(7.0))
        assert governor.penalty_remaining(tenant) == pytest.approx(7.0)
    clock.advance(7)
    assert isinstance(governor.try_acquire("t2"), Permit)


def test_a_penalty_shorter_than_a_full_window_reports_the_later_of_the_two(governor, clock):
    for _ in range(60):
        call(governor)
    governor.observe_429("t1", retry_after=5, problem="minute")
    assert governor.try_acquire("t1") == Denial("minute", pytest.approx(60.0))


@pytest.mark.parametrize(
    ("problem", "scope"),
    [
        ("minute", "minute"),
        ("Minute", "minute"),
        ("day", "day"),
        ("Daily", "day"),
        ("appminute", "app"),
        ("APP", "app"),
        ("concurrency", "concurrent"),
        ("Concurrent", "concurrent"),
        (None, None),
        ("", None),
        ("weekly", None),
    ],
)
def test_rate_limit_problem_matches_on_prefix_ignoring_case(problem, scope):
    assert problem_scope(problem) == scope
