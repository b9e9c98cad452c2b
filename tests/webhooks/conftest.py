"""Fixtures for the receiver tests: real Redis (database 11) as the Celery broker."""

from __future__ import annotations

import pytest
import redis
from celery import Celery
from webhooks_testkit import BROKER_URL


@pytest.fixture
def broker_redis():
    # No skip: an unreachable Redis must fail these tests (ping raises).
    client = redis.Redis.from_url(BROKER_URL)
    client.ping()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def celery_app(broker_redis):
    app = Celery("webhooks-tests", broker=BROKER_URL)
    yield app
    app.close()
