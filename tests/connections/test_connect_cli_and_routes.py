"""`connector connect` (a real process catching the redirect on loopback), `connector connections`,
the receiver's /oauth routes (as the operator), and the status endpoint."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from connector.sandbox.common import serve
from connector.secret import Secret
from tests.conftest import redis_db, redis_url
from tests.connections.conftest import ADMIN_TOKEN, browse
from webhooks import create_app
from tests.processes import free_port, printed_lines_until_url

OPERATOR = ("operator", ADMIN_TOKEN)
CLI_REDIS_DB = redis_db("connections-cli")


def cli_env(world) -> dict:
    return {**os.environ, "DATABASE_URL": world.database_url, "REDIS_URL": redis_url(CLI_REDIS_DB),
            "CELERY_BROKER_URL": redis_url(CLI_REDIS_DB), "CONNECTOR_VAULT_KEYS": world.vault_keyring,
            "XERO_CLIENT_ID": world.xero.client_id, "XERO_CLIENT_SECRET": world.xero.client_secret,
            "XERO_API_URL": world.xero_server.url, "XERO_IDENTITY_URL": world.xero_server.url,
            "XERO_LOGIN_URL": world.xero_server.url, "ZOHO_CLIENT_ID": world.zoho.client_id,
            "ZOHO_CLIENT_SECRET": world.zoho.client_secret, "ZOHO_ACCOUNTS_URL": world.zoho_server.url,
            "CONNECTOR_PUBLIC_URL": "http://127.0.0.1:9"}


def run_connect(world, *args: str) -> str:
    """Start `connector connect`, act as the browser on the URL it prints, return its output."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "connect", *args, "--timeout", "30",
         "--redirect-uri", f"http://127.0.0.1:{port}/oauth/{args[0]}/callback"],
        env=cli_env(world), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = printed_lines_until_url(process)
        browser = requests.get(lines[-1], timeout=10)  # consent, then the redirect to the CLI's listener
        assert browser.status_code == 200 and "Connected" in browser.text
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        return "\n".join(lines) + "\n" + out
    finally:
        if process.poll() is None:
            process.kill()


def test_cli_connects_xero_then_zoho_and_lists_the_connections(world):
    world.xero.add_tenant("Kea Ltd")
    out = run_connect(world, "xero", "--scopes", "granular")
    assert "scope=offline_access+accounting.contacts+accounting.invoices+accounting.payments" in out
    [kea] = world.store.connections.all()
    assert f"connected #{kea.id} Kea Ltd" in out
    out = run_connect(world, "zoho", "--connection", str(kea.id), "--dc", "eu")
    assert f"zoho_org={world.zoho.org_id}" in out
    assert world.zoho.channels(), "connecting Zoho enables the notification channel"

    listing = subprocess.run([sys.executable, "-m", "workers.cli", "connections"], env=cli_env(world),
                             capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    text = listing.stdout
    channel = world.store.channels.for_connection(kea.id)[0]
    xero_expiry = world.credentials.load(kea.id, "xero").tokens.expires_at.isoformat(timespec="seconds")
    assert f"#{kea.id} Kea Ltd" in text and "state=active" in text and "parked=0" in text
    assert f"xero_token_expires={xero_expiry}" in text
    assert f"channel_expires={channel.expires_at.isoformat(timespec='seconds')}" in text
    assert f"zoho_org={world.zoho.org_id}" in text


def test_cli_connects_zoho_as_work_waiting_for_it_says_to(world):
    """`connector connect zoho N`, the short form of the `--connection N` that waiting Zoho-bound work names."""
    world.xero.add_tenant("Tui Ltd")
    run_connect(world, "xero")
    [tui] = world.store.connections.all()
    out = run_connect(world, "zoho", str(tui.id))
    assert f"connected #{tui.id} Tui Ltd" in out and f"zoho_org={world.zoho.org_id}" in out, out
    assert world.store.connections.get(tui.id).zoho_org_id == world.zoho.org_id


def test_receiver_routes_run_the_flow_for_the_operator_and_refuse_a_bad_state(world):
    world.xero.add_tenant("Kea Ltd")
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    receiver = create_app(webhook_key=Secret("k"), enqueue=lambda *args: None, zoho_channels=world.store.channels,
                          oauth=world.flows, admin_token=ADMIN_TOKEN, public_url=public_url)
    with serve(receiver, port=port) as server:
        browser = requests.Session()
        finished = browse(browser, f"{server.url}/oauth/xero/start", receiver_url=server.url, auth=OPERATOR)
        assert finished.status_code == 200, finished.text  # → Xero → back to the callback
        [connected] = finished.json()["connections"]
        assert connected["name"] == "Kea Ltd" and connected["state"] == "active"
        forged = browser.get(f"{server.url}/oauth/xero/callback?code=x&state=used-or-forged", auth=OPERATOR, timeout=5)
        assert forged.status_code == 403 and "start" in forged.json()["error"]
        which = browser.get(f"{server.url}/oauth/zoho/start", auth=OPERATOR, timeout=5)
        assert which.status_code == 400  # which connection?
        zoho = browse(browser, f"{server.url}/oauth/zoho/start?connection={connected['id']}&dc=au",
                      receiver_url=server.url, auth=OPERATOR)
        assert zoho.status_code == 200 and zoho.json()["connections"][0]["zoho_org_id"] == world.zoho.org_id


def test_status_shows_connection_states_parked_work_and_rejected_callbacks_to_the_operator(world):
    from webhooks.wsgi import build_receiver
    from workers.deps import configure

    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    world.store.connections.mark_needs_reauth(kea.id, "invalid_grant")
    world.store.parked.park(kea.id, "contacts", ["c-1", "c-2"], reason="needs_reauth")
    configure(world.settings.with_overrides(redis_url=redis_url(CLI_REDIS_DB), vault_keys=Secret(world.vault_keyring),
                                            database_url=world.database_url, admin_token=Secret(ADMIN_TOKEN)))
    client = build_receiver().test_client()
    bad = client.post("/webhooks/zoho", json={"channel_id": "1", "module": "Contacts", "ids": ["9"],
                                              "operation": "update", "token": "guess"})
    assert bad.status_code == 403
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json() == {"status": "ok"}  # nothing about connections
    assert client.get("/status").status_code == 401
    status = client.get("/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_json()
    assert status["status"] == "degraded" and status["rejected_zoho_callbacks"] == 1
    assert [(c["id"], c["name"], c["state"], c["parked"]) for c in status["connections"]] == [
        (kea.id, "Kea Ltd", "needs_reauth", {"needs_reauth": 2, "daily_budget": 0, "rate_limited": 0, "outage": 0})]
    # The whole day is left, of Starter's limit until Xero's headers say otherwise (XERO_DEFAULT_DAY_LIMIT).
    assert status["connections"][0]["xero_calls"]["day_left"] == world.settings.xero_default_day_limit == 1000
    # The console (webhooks/console) is composed in too, behind the same token.
    assert client.get("/console/").status_code == 401
    console = client.get("/console/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_data(as_text=True)
    assert f"#{kea.id} Kea Ltd" in console and "needs_reauth" in console
