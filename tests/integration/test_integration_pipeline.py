"""The whole pipeline, distributed: a real Celery worker process on the real Redis broker,
PostgreSQL for storage, the receiver over HTTP, and the sandboxes as Xero and Zoho."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from celery import Celery

from connector.clock import SYSTEM_CLOCK
from connector.mapping import zoho_fields
from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.xero_seed import seed_demo_org
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.settings import Settings
from connector.store import audit as stages
from connector.store.credentials import TokenSet
from connector.store.vault import Vault
from tests.conftest import INTEGRATION_REDIS_DB, redis_url, require_redis
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from workers.deps import configure
from workers.embedded import wait_until

pytestmark = pytest.mark.integration

REDIS_DB = INTEGRATION_REDIS_DB
TERMINAL = {stages.WRITTEN, stages.SKIPPED, stages.FAILED, stages.PARKED}


@pytest.fixture
def system(pg_database_url, tmp_path):
    """Sandboxes + PostgreSQL + Redis + a worker process + the receiver, wired like production."""
    require_redis(REDIS_DB)
    xero, zoho = XeroSandbox(), ZohoSandbox()
    xero_server, zoho_server = serve(xero), serve(zoho)
    env = {
        "DATABASE_URL": pg_database_url,
        "REDIS_URL": redis_url(REDIS_DB),
        "CELERY_BROKER_URL": redis_url(REDIS_DB),
        "CONNECTOR_DATA_DIR": str(tmp_path),
        "CONNECTOR_VAULT_KEYS": Vault.generate_keyring("k1"),
        "XERO_CLIENT_ID": xero.client_id,
        "XERO_CLIENT_SECRET": xero.client_secret,
        "XERO_WEBHOOK_KEY": xero.webhook_key,
        "XERO_API_URL": xero_server.url,
        "XERO_IDENTITY_URL": xero_server.url,
        "XERO_LOGIN_URL": xero_server.url,
        "ZOHO_CLIENT_ID": zoho.client_id,
        "ZOHO_CLIENT_SECRET": zoho.client_secret,
        "ZOHO_ACCOUNTS_URL": zoho_server.url,
    }
    settings = Settings.from_env(env)
    deps = configure(settings)

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

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "xero,zoho,maintenance",
         "-P", "threads", "-c", "4", "--loglevel", "WARNING", "--without-heartbeat", "--without-mingle",
         "--without-gossip", "-n", f"itest-{os.getpid()}@%h"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    broker = Celery("itest-receiver", broker=redis_url(REDIS_DB))
    broker.conf.update(task_serializer="json", accept_content=["json"])
    receiver = create_app(webhook_key=xero.webhook_key, enqueue=celery_enqueuer(broker), zoho_channels=deps.store.channels)
    receiver_server = serve(receiver)
    try:
        yield {
            "xero": xero, "zoho": zoho, "deps": deps, "connection_id": connection.id, "tenant_id": tenant_id,
            "hook_url": f"{receiver_server.url}/webhooks/xero", "worker": worker,
        }
    finally:
        receiver_server.shutdown()
        worker.send_signal(signal.SIGTERM)
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        print(output[-5000:])
        xero_server.shutdown()
        zoho_server.shutdown()
        deps.store.engine.dispose()


def settled(audit, connection_id, ids, passes=1):
    return all(
        sum(e.stage in TERMINAL for e in audit.trail(connection_id, "contact", cid)) >= passes for cid in ids
    )


def test_signed_webhook_ends_as_zoho_records_with_an_audit_trail(system):
    xero, zoho, deps = system["xero"], system["zoho"], system["deps"]
    connection_id = system["connection_id"]
    contact_ids = seed_demo_org(xero, system["tenant_id"], contacts=8)
    events = list(xero.pending_events())

    assert xero.intent_to_receive(system["hook_url"]).ok
    assert set(xero.deliver_webhooks(system["hook_url"])) == {200}
    assert wait_until(lambda: settled(deps.store.audit, connection_id, contact_ids), timeout=60), \
        [deps.store.audit.trail(connection_id, "contact", c) for c in contact_ids[:2]]

    for cid in contact_ids:
        trail = [e.stage for e in deps.store.audit.trail(connection_id, "contact", cid)]
        assert trail[:4] == [stages.RECEIVED, stages.FETCHED, stages.MAPPED, stages.WRITTEN], trail
        link = deps.store.links.get(connection_id, "contact", cid)
        account = zoho.record("Accounts", link.zoho_id)
        assert account[zoho_fields.ACCOUNT_XERO_ID] == cid
        assert account["Account_Name"] == xero.contact(system["tenant_id"], cid)["Name"][:200]

    # The batch was fetched with IDs=, not one GET per event.
    contact_gets = xero.calls(path_prefix="/api.xro/2.0/Contacts", method="GET")
    assert len(contact_gets) <= 2

    # A second delivery of the same events changes nothing in Zoho.
    writes_before = len(zoho.writes())
    body = xero.webhook_body(events)
    response = requests.post(system["hook_url"], data=body, timeout=5, headers={
        "Content-Type": "application/json; charset=utf-8", "x-xero-signature": xero.sign(body)})
    assert response.status_code == 200 and response.content == b""
    assert wait_until(lambda: settled(deps.store.audit, connection_id, contact_ids, passes=2), timeout=60)
    assert len(zoho.writes()) == writes_before
    assert all(deps.store.audit.latest_stage(connection_id, "contact", c) == stages.SKIPPED for c in contact_ids)


def test_xero_outage_is_retried_then_synced(system):
    xero, zoho, deps = system["xero"], system["zoho"], system["deps"]
    connection_id = system["connection_id"]
    contact_ids = seed_demo_org(xero, system["tenant_id"], contacts=3)
    xero.faults.fail_next(2, status=503, path_prefix="/api.xro/2.0/Contacts", body="The Xero API is temporarily unavailable")

    assert set(xero.deliver_webhooks(system["hook_url"])) == {200}
    assert wait_until(
        lambda: all(deps.store.audit.latest_stage(connection_id, "contact", c) == stages.WRITTEN for c in contact_ids),
        timeout=60,
    )
    trail = [e.stage for e in deps.store.audit.trail(connection_id, "contact", contact_ids[0])]
    assert trail.count(stages.RETRYING) == 2, trail
    assert len(zoho.records("Accounts")) == 3


def test_bad_signature_is_refused_and_nothing_is_queued(system):
    xero, deps = system["xero"], system["deps"]
    seed_demo_org(xero, system["tenant_id"], contacts=2)
    statuses = xero.deliver_webhooks(system["hook_url"], bad_signature=True)
    assert set(statuses) == {401}
    time.sleep(1.0)
    assert deps.store.audit.count() == 0
    assert xero.pending_events(), "undelivered events stay pending for Xero's retry"
