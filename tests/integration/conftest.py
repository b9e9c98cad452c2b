"""The distributed system under test: a real Celery worker process on the real Redis broker,
PostgreSQL for storage, the receiver over HTTP, and the sandboxes as Xero and Zoho.

``system`` is the default wiring; ``make_system(zoho=..., clock=..., SOME_SETTING=...)`` builds the same
around a Zoho sandbox, a clock or settings of the test's choosing (one system per test).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.clock import SYSTEM_CLOCK, Clock
from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.settings import Settings
from connector.store.credentials import TokenSet
from connector.store.vault import Vault
from tests.conftest import (
    INTEGRATION_REDIS_DB,
    WORKER_QUEUES,
    integration_broker,
    require_redis,
    sandbox_env,
    start_celery_worker,
    stop_celery_worker,
)
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from workers.deps import configure

REDIS_DB = INTEGRATION_REDIS_DB


@pytest.fixture
def make_system(pg_database_url, tmp_path):
    """Sandboxes + PostgreSQL + Redis + a worker process + the receiver, wired like production."""
    teardown = []

    def make(*, zoho: ZohoSandbox | None = None, clock: Clock = SYSTEM_CLOCK, **env_changes: str) -> dict:
        """``clock``: this process's and the Xero sandbox's (the worker's is the real one)."""
        assert not teardown, "one system per test"
        require_redis(REDIS_DB)
        xero, zoho = XeroSandbox(clock), zoho or ZohoSandbox()
        xero_server, zoho_server = serve(xero), serve(zoho)
        env = sandbox_env(database_url=pg_database_url, data_dir=tmp_path, vault_keys=Vault.generate_keyring("k1"),
                          xero=xero, xero_url=xero_server.url, zoho=zoho, zoho_url=zoho_server.url, **env_changes)
        settings = Settings.from_env(env)
        deps = configure(settings, clock=clock)

        tenant_id = xero.add_tenant("Integration Test Ltd")
        connection = deps.store.connections.create(name="Integration Test Ltd", xero_tenant_id=tenant_id)
        grant = xero.issue_grant([tenant_id])
        now = SYSTEM_CLOCK.now()
        deps.credentials.save(connection.id, "xero", TokenSet(
            access_token=Secret(grant["access_token"]), refresh_token=Secret(grant["refresh_token"]),
            expires_at=now + timedelta(seconds=grant["expires_in"]), scope=grant["scope"],
        ))
        deps.credentials.save(connection.id, "zoho", TokenSet(
            access_token=Secret(""), refresh_token=Secret(zoho.issue_refresh_token()), expires_at=now,
        ))

        worker = start_celery_worker(env, "itest")
        broker = integration_broker("itest-receiver")
        receiver = create_app(webhook_key=xero.webhook_key, enqueue=celery_enqueuer(broker),
                              zoho_channels=deps.store.channels)
        receiver_server = serve(receiver)
        teardown.append((receiver_server, worker, xero_server, zoho_server, deps))
        return {
            "xero": xero, "zoho": zoho, "deps": deps, "connection_id": connection.id, "tenant_id": tenant_id,
            "hook_url": f"{receiver_server.url}/webhooks/xero", "zoho_hook_url": f"{receiver_server.url}/webhooks/zoho",
            "worker": worker,
        }

    yield make
    for receiver_server, worker, xero_server, zoho_server, deps in teardown:
        receiver_server.shutdown()
        print(stop_celery_worker(worker))
        xero_server.shutdown()
        zoho_server.shutdown()
        deps.store.engine.dispose()


@pytest.fixture
def system(make_system):
    return make_system()


def broker_idle(deps) -> bool:
    """No message waits in any worker queue of the Redis broker (unacked ones are in flight)."""
    redis = deps.redis
    return all(redis.llen(q) == 0 for q in WORKER_QUEUES) and not redis.hlen("unacked")
