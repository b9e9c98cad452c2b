"""The day-budget ledger: calls by purpose in hourly buckets, egress bytes, and the learned day limit,
all in Redis and driven by a ManualClock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from connector.budget import BudgetLedger, LimitState, learn_limit

CONNECTION = 7


def seen(purpose="webhook_fetch", *, status=200, size=1000, remaining=None, problem=None, vendor="xero",
         connection_id=CONNECTION):
    headers = {}
    if remaining is not None:
        headers["X-DayLimit-Remaining"] = str(remaining)
    if problem is not None:
        headers["X-Rate-Limit-Problem"] = problem
    return SimpleNamespace(vendor=vendor, connection_id=connection_id, method="GET", endpoint="/api.xro/2.0/Invoices",
                           status=status, bytes_received=size, purpose=purpose, limit_headers=headers)


@pytest.fixture
def ledger(any_redis, clock):
    return BudgetLedger(any_redis, clock=clock)


def test_before_any_response_the_limit_is_starters_thousand(ledger):
    assert ledger.day_limit(CONNECTION) == 1000
    assert ledger.view(CONNECTION).limit_learned is False


def test_calls_and_bytes_are_counted_by_purpose_for_24_hours(ledger, clock):
    for _ in range(3):
        ledger.record(seen("webhook_fetch", size=2000))
    ledger.record(seen("payments", size=500))
    ledger.record(seen("webhook_fetch", vendor="zoho"))  # another vendor's response is not Xero's budget
    assert ledger.calls_by_purpose(CONNECTION) == {"webhook_fetch": 3, "payments": 1}
    assert ledger.egress_bytes(CONNECTION) == 6500
    clock.advance(23 * 3600)
    ledger.record(seen("catch_up", size=100))
    assert ledger.calls_by_purpose(CONNECTION) == {"webhook_fetch": 3, "payments": 1, "catch_up": 1}
    clock.advance(3600)
    assert ledger.calls_by_purpose(CONNECTION) == {"catch_up": 1}
    assert ledger.egress_bytes(CONNECTION) == 100
    assert ledger.view(CONNECTION).egress_bytes_month == 6600  # the month keeps what the day forgot


def test_each_calendar_month_keeps_its_own_egress(ledger, clock):
    ledger.record(seen("webhook_fetch", size=700))
    first_month = clock.time()
    clock.advance(32 * 86400)  # into the next calendar month, whatever the day the clock started on
    ledger.record(seen("webhook_fetch", size=50))
    assert ledger.view(CONNECTION).egress_bytes_month == 50  # Xero bills egress per month: a new month starts at 0
    assert ledger.egress_bytes_of_month(CONNECTION, first_month) == 700
    assert ledger.egress_bytes_of_month(CONNECTION) == 50


def test_a_fresh_ledger_learns_a_low_estimate_never_a_high_one(ledger):
    # Xero has counted 200 calls of today already; the ledger sees only its own.
    ledger.record(seen(remaining=799))
    assert ledger.day_limit(CONNECTION) == 800  # 799 left + 1 counted: low, so safe
    ledger.record(seen(remaining=798))
    assert ledger.day_limit(CONNECTION) == 800


def test_after_a_reset_the_limit_is_exact_and_follows_a_tier_change(ledger, clock):
    ledger.record(seen(remaining=10))
    clock.advance(3600)
    ledger.record(seen(remaining=4999))  # Xero's day window started again: 5,000 a day
    assert ledger.day_limit(CONNECTION) == 5000
    assert ledger.limit_state(CONNECTION).exact
    for remaining in range(4998, 4990, -1):
        ledger.record(seen(remaining=remaining))
    assert ledger.day_limit(CONNECTION) == 5000
    assert ledger.used_today(CONNECTION) == 9
    clock.advance(86400)
    ledger.record(seen(remaining=999))  # moved to Starter: the next day says 1,000
    assert ledger.day_limit(CONNECTION) == 1000


def test_a_day_429_sets_the_limit_to_what_was_spent(ledger):
    ledger.record(seen(remaining=5))
    for remaining in range(4999, 4299, -1):  # a reset, then 700 calls
        ledger.record(seen(remaining=remaining))
    ledger.record(seen(status=429, problem="day", remaining=0))
    assert ledger.day_limit(CONNECTION) == 700


def test_learn_limit_counts_the_calls_since_the_reset():
    state = LimitState()
    state = learn_limit(state, remaining=3, day_problem=False, now=0)
    state = learn_limit(state, remaining=999, day_problem=False, now=10)
    assert (state.limit, state.calls_since_reset, state.reset_at) == (1000, 1, 10)
    state = learn_limit(state, remaining=None, day_problem=False, now=11)  # a response without the header
    assert (state.limit, state.calls_since_reset) == (1000, 2)


def test_the_view_projects_today_and_warns_past_eighty_percent(ledger, clock, caplog):
    ledger.record(seen(remaining=2))
    ledger.record(seen(remaining=999))  # reset seen now: the Xero day runs 24 h from here
    for _ in range(99):
        ledger.record(seen())
    view = ledger.view(CONNECTION)
    assert view.used_today == 100
    # 101 calls in the last 3 h (the bucket holds the first one too), about 34 an hour, for 24 h more
    assert view.projected_today == 100 + 808
    assert view.warning and "908" in view.warning
    assert "budget.xero.projection_high" in caplog.text
    clock.advance(6 * 3600)
    quiet = ledger.view(CONNECTION)
    assert quiet.projected_today == 100 and quiet.warning is None


def test_a_ledger_that_cannot_record_never_breaks_the_request_it_observed(clock, caplog):
    class Down:
        def pipeline(self, **_):
            raise ConnectionError("redis is down")

    BudgetLedger(Down(), clock=clock).listen(seen())  # returns: the Xero call it observed goes on
    assert "budget.xero.record_failed" in caplog.text


def test_token_refreshes_and_the_connections_list_are_not_an_organisations_calls(ledger):
    for endpoint in ("/connect/token", "/connections"):
        ledger.record(SimpleNamespace(**{**seen().__dict__, "endpoint": endpoint}))
    assert ledger.calls_by_purpose(CONNECTION) == {}
    ledger.record(seen())
    assert ledger.calls_by_purpose(CONNECTION) == {"webhook_fetch": 1}


def test_the_governor_takes_the_default_as_a_floor_until_the_limit_is_exact(ledger, clock):
    ledger.record(seen(remaining=299))  # Xero has counted 700 already: 300 is only what the ledger saw
    assert (ledger.day_limit(CONNECTION), ledger.governing_day_limit(CONNECTION)) == (300, 1000)
    ledger.record(seen(remaining=4999))  # more left than before: a reset, on a Standard organisation
    assert (ledger.day_limit(CONNECTION), ledger.governing_day_limit(CONNECTION)) == (5000, 5000)


def test_an_operators_cap_bounds_every_day_limit(any_redis, clock):
    caps = {CONNECTION: 50}
    ledger = BudgetLedger(any_redis, clock=clock, configured_limit=caps.get)
    ledger.record(seen(remaining=4999))
    assert (ledger.day_limit(CONNECTION), ledger.governing_day_limit(CONNECTION)) == (50, 50)
    assert ledger.governing_day_limit(8) == 1000  # no cap known: the default


def test_a_refused_call_is_not_counted_in_the_learned_limit(ledger):
    # A minute or concurrency 429, or an access token refused, is answered before the API runs (the sandbox does
    # not count them; X-DayLimit-Remaining stays where it was): counting them would learn a limit above the real
    # one, and the planner would grant scheduled calls past its share.
    ledger.record(seen(remaining=5))
    ledger.record(seen(remaining=999))  # a reset: 1,000 a day, one call spent
    for _ in range(2):
        ledger.record(seen(status=429, problem="minute", remaining=999))
    ledger.record(seen(status=401, remaining=999))
    ledger.record(seen(remaining=998))
    assert ledger.day_limit(CONNECTION) == 1000
    assert ledger.limit_state(CONNECTION).calls_since_reset == 2
