"""Webhooks of a Xero organisation that is not connected yet (Xero starts sending once the app's
webhook is registered, which may be before anyone consented for that organisation): they are held,
not failed, and the connection picks them up as soon as the organisation is connected. On the real
worker process, broker, PostgreSQL and sandboxes; the connect runs as the operator runs it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import requests

from connector.coalesce import LeasedBuffer
from connector.held_events import HeldXeroEvents
from connector.pipeline import xero_in
from connector.store import Store
from connector.sandbox.xero_seed import seed_demo_org
from connector.store import audit as stages
from tests.conftest import redis_db, require_redis, sandbox_env
from tests.integration.conftest import broker_idle
from tests.processes import free_port, printed_lines_until_url
from workers.embedded import wait_until

pytestmark = pytest.mark.integration


def system_env(system) -> dict:
    deps, xero, zoho = system.deps, system.xero, system.zoho
    return {**os.environ, **sandbox_env(
        database_url=deps.settings.database_url, data_dir=deps.settings.data_dir,
        vault_keys=deps.settings.vault_keys.reveal(), xero=xero, xero_url=deps.settings.xero_api_url, zoho=zoho,
        zoho_url=deps.settings.zoho_accounts_url)}


def connect_xero(env: dict, *args: str) -> str:
    """`connector connect xero ...` in its own process; this test is the browser that consents."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "connect", "xero", *args, "--timeout", "30",
         "--redirect-uri", f"http://127.0.0.1:{port}/oauth/xero/callback"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert requests.get(printed_lines_until_url(process)[-1], timeout=10).status_code == 200  # consent, then back to the CLI
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        return out
    finally:
        if process.poll() is None:
            process.kill()


def test_webhooks_before_the_organisation_is_connected_are_held_and_synced_once_it_is(make_system):
    system = make_system()
    xero, deps = system.xero, system.deps
    audit = deps.store.audit

    early_tenant = xero.add_tenant("Early Bird Ltd")
    early = seed_demo_org(xero, early_tenant, contacts=2)
    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(lambda: broker_idle(deps), timeout=60)
    # Nothing failed, so there is nothing to replay.
    assert audit.failures() == []

    # The new organisation goes to the Zoho org connection 1 already sends to (as `connector connect zoho` left it).
    zoho_url = deps.settings.zoho_accounts_url
    deps.store.connections.set_zoho(system.connection_id, org_id=system.zoho.org_id, api_domain=zoho_url,
                                    accounts_url=zoho_url)
    out = connect_xero(system_env(system), "--tenant", early_tenant, "--zoho-from", str(system.connection_id))
    [later] = [c for c in deps.store.connections.all() if c.xero_tenant_id == early_tenant]
    assert f"connected #{later.id} Early Bird Ltd" in out
    # The connect queues the pick-up; the worker fetches the held records and writes them to Zoho.
    assert wait_until(lambda: all(audit.latest_stage(later.id, "contact", i) == stages.WRITTEN for i in early),
                      timeout=90), [audit.trail(later.id, "contact", i) for i in early]
    written = {a["Xero_Contact_ID"] for a in system.zoho.records("Accounts")}
    assert set(early) <= written
    assert audit.failures() == []
    assert HeldXeroEvents(deps.redis).count(early_tenant) == 0


def webhook_events(tenant_id: str, contact_ids: list[str]) -> list[dict]:
    return [{"resourceId": i, "tenantId": tenant_id, "eventCategory": "CONTACT", "eventType": "UPDATE",
             "eventDateUtc": "2026-12-01T10:00:00.000", "sync_id": f"sync-{i}"} for i in contact_ids]


@pytest.fixture
def pg_store(pg_database_url):
    store = Store.open(pg_database_url)
    yield store
    store.close()


def test_held_events_are_bounded_per_organisation_with_one_log_line_per_delivery(pg_store, caplog):
    redis = require_redis(redis_db("integration"))
    held = HeldXeroEvents(redis, limit=3)
    tenant = "a-tenant-nobody-connected"
    redis.delete(*held.keys(tenant))

    caplog.set_level(logging.INFO)
    with pg_store.transaction():
        to_flush = xero_in.buffer_xero_events(
            webhook_events(tenant, ["c1", "c2", "c1"]), connections=pg_store.connections, audit=pg_store.audit,
            coalescer=LeasedBuffer(redis), window=1.0, held=held)
    assert to_flush == []
    assert held.count(tenant) == 2  # the same record twice is held once
    lines = [r for r in caplog.records if r.getMessage() == "pipeline.xero.held"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO

    caplog.clear()
    with pg_store.transaction():
        xero_in.buffer_xero_events(webhook_events(tenant, ["c3", "c4", "c5"]), connections=pg_store.connections,
                                   audit=pg_store.audit, coalescer=LeasedBuffer(redis), window=1.0, held=held)
    assert held.count(tenant) == 3  # the bound; the first poll after connecting lists the rest anyway
    [line] = [r for r in caplog.records if r.getMessage() == "pipeline.xero.held"]
    assert line.levelno == logging.WARNING and line.dropped == 2 and line.held == 1
    assert pg_store.audit.count(stages.FAILED) == 0

    # Picked up by the connection when it is made: parked for a fetch now, and gone from the hold.
    connection = pg_store.connections.create(name="Now Connected", xero_tenant_id=tenant)
    assert held.adopt(pg_store, [connection.id]) == 0 and held.count(tenant) == 3  # no Zoho org to push to yet
    pg_store.connections.set_zoho(connection.id, org_id="org-1", api_domain="https://www.zohoapis.com",
                                  accounts_url="https://accounts.zoho.com")
    assert held.adopt(pg_store, None) == 3  # beat's pick-up: every holding tenant that has its connection
    assert held.count(tenant) == 0
    assert pg_store.parked.count(connection.id) == 3
    assert held.adopt(pg_store, [connection.id]) == 0  # a second pick-up (a redelivered task) finds nothing
    redis.delete(*held.keys(tenant))
