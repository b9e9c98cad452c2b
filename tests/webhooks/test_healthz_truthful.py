"""/healthz tells the truth: 503 while Redis or the database does not answer, 200 once they do.

The production receiver (webhooks.wsgi.build_receiver) against real services: a Redis server of
its own (stopped mid-test) and a throwaway PostgreSQL database (refused mid-test, as an outage
looks to a client; the shared server keeps running).
"""

from __future__ import annotations

import subprocess
import time

import pytest
import redis
from webhooks_testkit import production_receiver

from tests.conftest import PostgresOutage, redis_url, require_redis
from tests.processes import free_port


@pytest.fixture
def own_redis():
    port = free_port()
    server = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield server, f"redis://127.0.0.1:{port}/0"
    if server.poll() is None:
        server.kill()
        server.wait()


def test_healthz_is_503_while_redis_is_down(own_redis, pg_database_url):
    server, address = own_redis
    client = production_receiver(pg_database_url, address)
    assert client.get("/healthz").get_json() == {"status": "ok"}
    server.kill()
    server.wait()
    down = client.get("/healthz")
    assert down.status_code == 503 and down.get_json() == {"status": "unavailable", "failing": ["redis"]}


def test_healthz_is_503_while_the_database_refuses_connections(pg_admin, pg_database_url):
    require_redis(4)
    client = production_receiver(pg_database_url, redis_url(4))
    assert client.get("/healthz").status_code == 200
    with PostgresOutage(pg_admin, pg_database_url.rsplit("/", 1)[1]):
        down = client.get("/healthz")
        assert down.status_code == 503 and down.get_json() == {"status": "unavailable", "failing": ["database"]}
    assert client.get("/healthz").status_code == 200
