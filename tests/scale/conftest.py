"""A Xero tenant wired like production for the scale tests: the Xero sandbox served over HTTP,
the real Redis (dbs 5 and 6, flushed), a real store, real token managers, the real governor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.clock import Clock
from connector.ratelimit import XeroRateGovernor
from connector.sandbox.common import ServedApp, serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.settings import Settings
from connector.store import Store
from connector.store.vault import Vault
from tests.conftest import redis_db, redis_url, require_redis
from workers.demo import Sandboxes, connect_sandbox_tenant
from workers.deps import Deps

REDIS_DB = redis_db("scale")  # these tests' shared state (governor, buffers)
SPARE_REDIS_DB = redis_db("scale-spare")  # flushed too; for tests that need a second, independent Redis


@dataclass
class XeroWorld:
    xero: XeroSandbox
    server: ServedApp
    deps: Deps
    settings: Settings

    def connect(self, name: str) -> tuple[int, str]:
        """A new sandbox tenant with a stored grant: (connection id, tenant id)."""
        return connect_sandbox_tenant(self.deps, Sandboxes(self.xero, ZohoSandbox(), self.server.url, ""), name)

    def client(self, connection_id: int, *, priority: int = 0):
        return self.deps.xero_client(self.deps.store.connections.get(connection_id), priority=priority)


def build_world(tmp_path: Path, database_url: str, *, clock: Clock | None = None, **sandbox_options) -> XeroWorld:
    require_redis(REDIS_DB)
    require_redis(SPARE_REDIS_DB)
    xero = XeroSandbox(clock, **sandbox_options)
    server = serve(xero)
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, redis_url=redis_url(REDIS_DB), broker_url="memory://",
        vault_keys=Secret(Vault.generate_keyring("k1")),
        xero_client_id=xero.client_id, xero_client_secret=Secret(xero.client_secret),
        xero_webhook_key=Secret(xero.webhook_key), xero_api_url=server.url, xero_identity_url=server.url,
        xero_login_url=server.url,
    )
    deps = Deps(settings)
    if clock is not None:  # the governor and the store read the same hand-moved time as the sandbox
        deps.store = Store.open(database_url, clock=clock)
        deps.governor = XeroRateGovernor(deps.redis, clock=clock)
    return XeroWorld(xero, server, deps, settings)


@pytest.fixture
def world_factory(tmp_path):
    worlds: list[XeroWorld] = []

    def make(database_url: str | None = None, **options) -> XeroWorld:
        world = build_world(tmp_path, database_url or f"sqlite:///{tmp_path / 'connector.db'}", **options)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.server.shutdown()
        world.deps.store.close()
