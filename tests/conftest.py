"""Fixtures shared by the whole suite: the real Redis and PostgreSQL on this machine.

Integration tests never skip: when a service is unreachable they fail with a message saying
what to start (``make test`` starts both when they are installed locally).
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))
# Integration tests share one Redis database (broker queues live there); developers running two
# suites at once give each its own with TEST_INTEGRATION_REDIS_DB.
INTEGRATION_REDIS_DB = int(os.environ.get("TEST_INTEGRATION_REDIS_DB", "12"))
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def require_redis(db: int):
    import redis

    client = redis.Redis.from_url(redis_url(db), decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc}); start it (make test does)")
    client.flushdb()
    return client


@pytest.fixture(scope="session")
def pg_admin():
    import psycopg

    try:
        conn = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); start it (make test does)")
    yield conn
    conn.close()


@contextmanager
def fresh_pg_database(admin) -> Iterator[str]:
    """Create a uniquely named, empty PostgreSQL database; drop it afterwards."""
    name = f"mlc_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database_url(pg_admin):
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_pg_database(pg_admin) as url:
        yield url
