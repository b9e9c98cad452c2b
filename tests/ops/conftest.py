"""Operating commands on the embedded default (SQLite, in-process broker, fakeredis) against the
sandboxes over HTTP: what a small user runs with no Redis at all."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from workers.demo import Sandboxes, connect_sandbox_tenant, embedded_settings
from workers.deps import configure


@dataclass
class Embedded:
    xero: XeroSandbox
    zoho: ZohoSandbox
    deps: object
    connection_id: int
    tenant_id: str
    sandboxes: Sandboxes

    def zoho_writes(self) -> int:
        """Requests that change something in Zoho, from the sandbox's own request log."""
        return sum(1 for r in self.zoho.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")
                   and r.path.startswith("/crm/"))


@pytest.fixture
def make_embedded(tmp_path):
    started = []

    def make(*, clock=None, xero: XeroSandbox | None = None, **settings_changes) -> Embedded:
        xero, zoho = xero or XeroSandbox(), ZohoSandbox()
        xero_server, zoho_server = serve(xero), serve(zoho)
        sandboxes = Sandboxes(xero, zoho, xero_server.url, zoho_server.url)
        settings = replace(embedded_settings(tmp_path, sandboxes), **settings_changes)
        deps = configure(settings) if clock is None else configure(settings, clock=clock)
        started.append((xero_server, zoho_server, deps))
        connection_id, tenant_id = connect_sandbox_tenant(deps, sandboxes, "Ops Test Ltd")
        deps.redis.flushdb()  # the embedded fakeredis is shared by the whole process
        return Embedded(xero, zoho, deps, connection_id, tenant_id, sandboxes)

    yield make
    for xero_server, zoho_server, deps in started:
        xero_server.shutdown()
        zoho_server.shutdown()
        deps.store.close()


@pytest.fixture
def embedded(make_embedded):
    return make_embedded()
