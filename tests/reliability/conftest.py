"""The tasks themselves, run in this process the way a worker runs them, against the Xero and Zoho
sandboxes over HTTP, real Redis (db 9) and a throwaway PostgreSQL database.

``published`` records every task message handed to the broker (Celery's before_task_publish signal),
so a test sees exactly what a worker would receive next, and ``run`` executes one such message.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from celery.signals import before_task_publish

from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.store import Store
from connector.store.vault import Vault
from tests.conftest import redis_url, require_redis
from tests.picture.conftest import Picture
from workers.app import app
from workers.demo import Sandboxes, connect_sandbox_tenant, embedded_settings
from workers.deps import configure

REDIS_DB = 9


@dataclass
class Published:
    name: str
    args: list
    kwargs: dict
    eta: str | None
    retries: int


class PublishedLog(list):
    def named(self, name: str) -> list[Published]:
        return [p for p in self if p.name == name]

    def take(self, name: str) -> list[Published]:
        """The messages of one task, removed from the log (as a worker takes them off the queue)."""
        taken = self.named(name)
        self[:] = [p for p in self if p.name != name]
        return taken


@pytest.fixture
def published():
    log = PublishedLog()

    def record(sender=None, body=None, headers=None, **_):
        args, kwargs, _embed = body
        log.append(Published(sender, list(args), dict(kwargs), headers.get("eta"), int(headers.get("retries") or 0)))

    before_task_publish.connect(record, weak=False)
    yield log
    before_task_publish.disconnect(record)


def run(message: Published):
    """Execute a published message as a worker would (retries, if any, run at once: eager)."""
    return app.tasks[message.name].apply(args=message.args, kwargs=message.kwargs, retries=message.retries)


def run_until_quiet(published: PublishedLog, *names: str, limit: int = 200) -> int:
    """Work the queue of the given tasks until nothing of theirs is left (each message once)."""
    ran = 0
    while messages := [m for name in names for m in published.take(name)]:
        for message in messages:
            run(message)
            ran += 1
            assert ran < limit, "the queue never went quiet"
    return ran


@pytest.fixture
def make_world(tmp_path, pg_database_url):
    started = []

    def make(*, zoho: ZohoSandbox | None = None, xero: XeroSandbox | None = None, clock=None) -> Picture:
        require_redis(REDIS_DB)
        xero, zoho = xero or XeroSandbox(), zoho or ZohoSandbox()
        xero_server, zoho_server = serve(xero), serve(zoho)
        sandboxes = Sandboxes(xero, zoho, xero_server.url, zoho_server.url)
        settings = embedded_settings(tmp_path, sandboxes).with_overrides(
            redis_url=redis_url(REDIS_DB), database_url=pg_database_url,
            vault_keys=Secret(Vault.generate_keyring("k1")))
        deps = configure(settings) if clock is None else configure(settings, clock=clock)  # buffers' leases
        if clock is not None:  # parked work's resume_after follows the same hand-moved time
            deps.store = Store.open(pg_database_url, clock=clock)
        started.append((xero_server, zoho_server, deps))
        connection_id, tenant_id = connect_sandbox_tenant(deps, sandboxes, "Reliable Ltd")
        return Picture(xero, zoho, deps, connection_id, tenant_id)

    yield make
    for xero_server, zoho_server, deps in started:
        deps.store.close()
        xero_server.shutdown()
        zoho_server.shutdown()


@pytest.fixture
def world(make_world):
    return make_world()
