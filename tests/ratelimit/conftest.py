"""Fixtures for the rate governor: real Redis (its own database, flushed) and fakeredis, with a ManualClock."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from connector.clock import ManualClock
from connector.ratelimit import XeroRateGovernor
from tests.conftest import redis_db, redis_url

REDIS_URL = redis_url(redis_db("ratelimit"))


def connect_test_redis() -> redis.Redis:
    """db 9 of the local Redis; an unreachable server fails the test (never skips it)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
    return client


@pytest.fixture
def real_redis():
    client = connect_test_redis()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# The embedded default runs the same scripts on fakeredis (lupa), so most tests run on both;
# fakeredis decodes replies as connect_redis() sets it up, the real one returns bytes.
@pytest.fixture(params=["redis", "fakeredis"])
def any_redis(request):
    if request.param == "redis":
        yield request.getfixturevalue("real_redis")
    else:
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def governor(any_redis, clock) -> XeroRateGovernor:
    return XeroRateGovernor(any_redis, clock=clock)
