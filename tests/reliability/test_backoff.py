"""The one backoff formula (connector.backoff): bounded, capped, jittered within its range, and never
an error however long an outage lasts."""

from __future__ import annotations

import random

import pytest

from connector.backoff import backoff_delay


def test_without_jitter_the_wait_doubles_from_the_base_until_the_cap():
    waits = [backoff_delay(n, base=1.0, cap=60.0) for n in range(10)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]


@pytest.mark.parametrize("base, cap, growth", [(1.0, 120.0, 2.0), (300.0, 6 * 3600.0, 3.5), (0.5, 3.0, 2.0)])
def test_jittered_waits_stay_within_their_bounds_and_the_cap_is_monotone(base, cap, growth):
    rng = random.Random(1234)
    low, high = 0.8, 1.0
    previous_ceiling = 0.0
    for attempt in range(40):
        ceiling = min(base * growth ** attempt, cap)
        assert ceiling >= previous_ceiling  # the un-jittered wait never shrinks
        previous_ceiling = ceiling
        for _ in range(50):
            wait = backoff_delay(attempt, base=base, cap=cap, growth=growth, jitter=(low, high), rng=rng)
            assert ceiling * low <= wait <= ceiling * high <= cap
    assert previous_ceiling == cap


def test_the_jitter_spreads_waits_over_its_whole_range():
    """Tasks failing together must not come back together: their waits spread over the jitter's range."""
    rng = random.Random(7)
    waits = [backoff_delay(3, base=1.0, cap=120.0, jitter=(0.8, 1.0), rng=rng) for _ in range(2000)]
    assert min(waits) < 8.0 * 0.81 and max(waits) > 8.0 * 0.99
    assert len(set(waits)) == len(waits)


def test_extra_seconds_come_on_top_of_the_capped_wait():
    """A vendor's Retry-After is the least one waits: the jitter only ever adds to it, even past the cap."""
    rng = random.Random(99)
    waits = [backoff_delay(0, base=24 * 3600.0, cap=18.0, extra=0.25, rng=rng) for _ in range(500)]
    assert all(18.0 <= wait <= 18.25 for wait in waits)
    assert max(waits) - min(waits) > 0.2


def test_the_same_seed_gives_the_same_waits():
    def waits(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_delay(n, base=300.0, cap=21600.0, growth=3.5, jitter=(0.9, 1.1), rng=rng) for n in range(8)]

    assert waits(5) == waits(5)
    assert waits(5) != waits(6)


def test_an_outage_of_thousands_of_attempts_waits_the_cap_not_an_overflow():
    assert backoff_delay(5000, base=1.0, cap=120.0) == 120.0
    assert backoff_delay(5000, base=1, cap=120.0, growth=2) == 120.0


def test_a_task_retried_for_days_still_gets_its_capped_backoff():
    """Our own database or broker down for days: the task retries without limit (ConnectorTask.__call__),
    and its countdown stays the broker's cap instead of the power of two overflowing."""
    from workers.base import max_broker_countdown
    from workers.zoho_tasks import push_records_to_zoho

    push_records_to_zoho.push_request(retries=1100)
    try:
        countdown = push_records_to_zoho.backoff()
    finally:
        push_records_to_zoho.pop_request()
    assert 0.8 * max_broker_countdown() <= countdown <= max_broker_countdown()
