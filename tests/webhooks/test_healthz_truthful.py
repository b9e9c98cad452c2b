"""/healthz tells the truth: 503 while Redis or the database does not answer, 200 once they do.

The production receiver (webhooks.wsgi.build_receiver) against real services: a Redis server of
its own (stopped mid-test) and a throwaway PostgreSQL database (refused mid-test, as an outage
looks to a client; the shared server keeps running).
"""

from __future__ import annotations


import pytest
from webhooks_testkit import production_receiver

from tests.conftest import PostgresOutage, redis_db, redis_url, require_redis
from tests.processes import RedisServer


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path, durable=False)
    server.start()
    yield server
    server.process.kill_group()


def test_healthz_is_503_while_redis_is_down(own_redis, pg_database_url):
    client = production_receiver(pg_database_url, own_redis.url)
    assert client.get("/healthz").get_json() == {"status": "ok"}
    own_redis.process.kill_group()
    down = client.get("/healthz")
    assert down.status_code == 503 and down.get_json() == {"status": "unavailable", "failing": ["redis"]}


def test_healthz_is_503_while_the_database_refuses_connections(pg_admin, pg_database_url):
    require_redis(redis_db("webhooks-production"))
    client = production_receiver(pg_database_url, redis_url(redis_db("webhooks-production")))
    assert client.get("/healthz").status_code == 200
    with PostgresOutage(pg_admin, pg_database_url.rsplit("/", 1)[1]):
        down = client.get("/healthz")
        assert down.status_code == 503 and down.get_json() == {"status": "unavailable", "failing": ["database"]}
    assert client.get("/healthz").status_code == 200
