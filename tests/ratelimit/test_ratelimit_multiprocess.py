"""Eight processes share one tenant through slot() on the real Redis and the real clock.

The calls are checked from what the processes recorded, not from the governor's own counters.
"""

from __future__ import annotations

import multiprocessing
import random
import time

import redis

from connector.errors import RateLimited
from connector.ratelimit import Limits, XeroRateGovernor
from tests.ratelimit.conftest import REDIS_URL  # the real_redis fixture flushes it

LIMITS = Limits(minute=30, day=5000, concurrent=3, app_minute=10000)
CALLS_KEY = "test:multiprocess:calls"
PROCESSES = 8
RUN_SECONDS = 3.0


def hammer(seed: int, deadline: float) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    governor = XeroRateGovernor(client)
    rng = random.Random(seed)
    while time.time() < deadline:
        try:
            with governor.slot("shared-tenant", LIMITS):
                start = time.time()
                time.sleep(rng.uniform(0.02, 0.05))  # the simulated Xero call
                client.rpush(CALLS_KEY, f"{start!r},{time.time()!r}")
        except RateLimited:
            time.sleep(0.005)  # the test's own polling, standing in for a task retry


def max_overlap(calls: list[tuple[float, float]]) -> int:
    # At equal times an end sorts before a start: touching calls do not overlap.
    events = sorted([(start, 1) for start, _ in calls] + [(end, -1) for _, end in calls])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_processes_sharing_a_tenant_stay_within_minute_and_concurrency(real_redis):
    deadline = time.time() + RUN_SECONDS
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=hammer, args=(n, deadline)) for n in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=RUN_SECONDS + 10)
        assert worker.exitcode == 0

    calls = sorted(tuple(map(float, raw.split(b","))) for raw in real_redis.lrange(CALLS_KEY, 0, -1))
    starts = [start for start, _ in calls]
    for i, first in enumerate(starts):
        assert sum(1 for later in starts[i:] if later - first < 60) <= LIMITS.minute
    # The whole budget is used (nothing lost to races), and calls really did run side by side.
    assert len(calls) == LIMITS.minute
    assert 2 <= max_overlap(calls) <= LIMITS.concurrent
