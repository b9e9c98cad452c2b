"""The distributed system under test (tests/system.py): a real Celery worker process on the real Redis
broker, PostgreSQL for storage, the receiver over HTTP, and the sandboxes as Xero and Zoho.

``system`` is the default wiring; ``make_system(zoho=..., clock=..., env={SOME_SETTING: ...})`` builds the
same around a Zoho sandbox, a clock (this process's and the sandboxes'; the worker's is the real one) or
settings of the test's choosing.
"""

from __future__ import annotations

import pytest

from tests.conftest import WORKER_QUEUES


@pytest.fixture
def system_defaults(pg_database_url) -> dict:
    return {"redis": "integration", "processes": True, "database_url": pg_database_url,
            "tenant": "Integration Test Ltd"}


def broker_idle(deps) -> bool:
    """No message waits in any worker queue of the Redis broker (unacked ones are in flight)."""
    redis = deps.redis
    return all(redis.llen(q) == 0 for q in WORKER_QUEUES) and not redis.hlen("unacked")
