"""The pipeline against the Xero and Zoho sandboxes over HTTP, real Redis (db 7) and a SQLite store."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import pytest

from connector.pipeline import xero_in
from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.store import Store
from connector.store.vault import Vault
from tests.conftest import redis_db, redis_url, require_redis
from workers.demo import Sandboxes, connect_sandbox_tenant, embedded_settings
from workers.deps import configure
from workers.app import app as celery_app
from workers.zoho_tasks import make_zoho_push

REDIS_DB = redis_db("picture")


class Picture:
    def __init__(self, xero, zoho, deps, connection_id, tenant_id):
        self.xero, self.zoho, self.deps = xero, zoho, deps
        self.connection_id, self.tenant_id = connection_id, tenant_id
        self.connection = deps.store.connections.get(connection_id)

    def push(self):
        return make_zoho_push(self.deps, self.connection)

    def fetch(self, resource: str, ids: list[str]) -> list[str]:
        batch = xero_in.FetchBatch(self.connection_id, resource, list(ids), {})
        return xero_in.fetch_xero_records(batch, xero=self.deps.xero_client(self.connection),
                                          snapshots=self.deps.store.snapshots, audit=self.deps.store.audit,
                                          transaction=self.deps.store.transaction)  # as the tasks do

    def sync(self, resource: str, ids: list[str]):
        self.fetch(resource, ids)
        push = self.push()
        return push.contacts(ids) if resource == "contacts" else push.invoices(ids)

    def pending_xero_ids(self, category: str) -> list[str]:
        return list(dict.fromkeys(e["resourceId"] for e in self.xero.pending_events() if e["eventCategory"] == category))


@contextmanager
def pictures(tmp_path, *, redis_db: int, tenant_name: str, database_url: str | None = None) -> Iterator[Callable]:
    """A maker of pictures: both sandboxes served over HTTP (either may be the test's own), the process's deps
    configured on them, on Redis ``redis_db`` and a SQLite store in ``tmp_path`` unless a database URL is given,
    and one connected tenant. Given a clock, the deps and the store run on it (buffers' leases, parked work's
    resume_after). Everything made is stopped on exit."""
    started = []

    def make(*, xero: XeroSandbox | None = None, zoho: ZohoSandbox | None = None, clock=None,
             database_url: str | None = database_url) -> Picture:
        require_redis(redis_db)
        xero, zoho = xero or XeroSandbox(), zoho or ZohoSandbox()
        xero_server, zoho_server = serve(xero), serve(zoho)
        sandboxes = Sandboxes(xero, zoho, xero_server.url, zoho_server.url)
        settings = embedded_settings(tmp_path, sandboxes).with_overrides(
            redis_url=redis_url(redis_db), vault_keys=Secret(Vault.generate_keyring("k1")))
        if database_url is not None:
            settings = settings.with_overrides(database_url=database_url)
        if clock is None:
            deps = configure(settings)
        else:
            deps = configure(settings, clock=clock)
            deps.store = Store.open(settings.database_url, clock=clock)
        started.append((xero_server, zoho_server, deps))
        connection_id, tenant_id = connect_sandbox_tenant(deps, sandboxes, tenant_name)
        return Picture(xero, zoho, deps, connection_id, tenant_id)

    try:
        yield make
    finally:
        for xero_server, zoho_server, deps in started:
            deps.store.close()
            xero_server.shutdown()
            zoho_server.shutdown()


@pytest.fixture
def make_picture(tmp_path):
    """``make_picture(zoho=ZohoSandbox(...), clock=..., database_url=...)``: the picture around a Zoho sandbox
    of the test's choosing (SQLite unless a database URL is given)."""
    with pictures(tmp_path, redis_db=REDIS_DB, tenant_name="Picture Test Ltd") as make:
        yield make


@pytest.fixture
def picture(make_picture):
    return make_picture()


@pytest.fixture
def memory_broker():
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    celery_app.conf.update(broker_url="memory://localhost/", broker_transport_options={"polling_interval": 0.02})
    celery_app.control.purge()  # the in-process broker outlives a test: no other test's messages here
    yield
    celery_app.control.purge()
    celery_app.conf.update(broker_url=saved[0], broker_transport_options=saved[1])
