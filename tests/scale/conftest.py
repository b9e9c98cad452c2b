"""Xero tenants wired like production for the scale tests (tests/system.py): the Xero sandbox served over HTTP,
the real Redis (flushed), a real store, real token managers, the real governor. No tenant is connected: a
test connects its own (``world.connect(name)``)."""

from __future__ import annotations

import pytest

from tests.conftest import redis_db, require_redis

REDIS_DB = redis_db("scale")  # these tests' shared state (governor, buffers)
SPARE_REDIS_DB = redis_db("scale-spare")  # flushed too; for tests that need a second, independent Redis


@pytest.fixture
def system_defaults() -> dict:
    require_redis(SPARE_REDIS_DB)
    return {"redis": "scale", "tenant": None}
