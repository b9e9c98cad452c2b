"""90 simulated days on the sandboxes' real expiries: the beat's functions, driven step by step.

Xero access tokens live 30 minutes and rotate their refresh token on every use; Zoho's live an
hour; Zoho channels at most a week. Nothing may lapse: after every step both APIs answer with the
stored tokens, and the channel Zoho lists is ours. The beat runs refresh every 5 minutes with a
10-minute margin; here a step is 25 minutes with a 28-minute margin (margin > step, as there), so
90 days take about 5,200 steps instead of 26,000.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import requests

from connector.channels import renew_channels
from connector.clock import ManualClock
from connector.connect import refresh_expiring_tokens
from tests.connections.conftest import NOTIFY_URL

STEP = timedelta(minutes=25)
MARGIN_SECONDS = 28 * 60
CHANNEL_CHECK_EVERY = 2  # steps: the channel beat runs every 30 minutes in production
# The whole quarter runs in CI (about 5,200 steps, 2-4 minutes on a 2-core machine): it is the proof
# that nothing lapses. CONNECTOR_SIM_DAYS shortens it while working on this file.
DAYS = int(os.environ.get("CONNECTOR_SIM_DAYS", "90"))


@pytest.fixture
def sim_world(make_world, pg_database_url):
    # On PostgreSQL, as in production: each step commits rotated token sets (its commits skip the fsync, as
    # every test database's do: tests/conftest.py fresh_pg_database).
    return make_world(ManualClock(), database_url=pg_database_url)


@pytest.mark.start_early
@pytest.mark.timeout(900)
def test_ninety_days_of_beats_keep_every_token_and_channel_alive(sim_world):
    world = sim_world
    kea_tenant = world.xero.add_tenant("Kea Ltd")
    world.xero.add_tenant("Tui Ltd")
    kea, tui = world.consent("xero")
    world.consent("zoho", connection_ids=[kea.id, tui.id])
    owner = world.credentials.owner_of(kea.id, "zoho")
    [channel] = world.store.channels.for_connection(owner)
    first_refresh_token = world.credentials.load(kea.id, "xero").tokens.refresh_token.reveal()
    renewals = 0
    enqueued = []

    steps = int(timedelta(days=DAYS) / STEP)
    for step in range(steps):
        world.clock.advance(STEP)
        report = refresh_expiring_tokens(
            store=world.store, credentials=world.credentials,
            token_manager=lambda system, cid: world.token_manager(system, cid, refresh_margin=MARGIN_SECONDS))
        assert report.needs_reauth == [] and report.deferred == []
        after = {s: world.credentials.load(owner, s) for s in ("xero", "zoho")}
        if step % CHANNEL_CHECK_EVERY == 0:
            outcomes = renew_channels(zoho_for=world.zoho_client, channels=world.store.channels,
                                      credentials=world.credentials, notify_url=NOTIFY_URL,
                                      enqueue=lambda cid, n: enqueued.append(n), clock=world.clock)
            renewals += sum(o.action == "renewed" for o in outcomes)
            assert all(o.action == "renewed" for o in outcomes), outcomes

        # Nothing lapsed: the stored tokens work right now, and Zoho still lists our channel.
        now = world.clock.now()
        assert after["xero"].tokens.expires_at > now and after["zoho"].tokens.expires_at > now
        if step % 24 == 0:  # a real call every 10 hours (the sandbox's daily call budget is real too)
            xero_token = after["xero"].tokens.access_token.reveal()
            answer = requests.get(f"{world.xero_server.url}/api.xro/2.0/Contacts", timeout=5, headers={
                "Authorization": f"Bearer {xero_token}", "xero-tenant-id": kea_tenant, "Accept": "application/json"})
            assert answer.status_code == 200, answer.text
            assert world.zoho_client(tui.id).get_watch()[0]["channel_id"] == channel.channel_id
        assert [c["channel_id"] for c in world.zoho.channels()] == [channel.channel_id]

    # Counted from the sandboxes' own request logs: every refresh the beat made, and nothing else.
    xero_refreshes = len(world.xero.calls(path_prefix="/connect/token")) - 1  # -1: the consent's code exchange
    zoho_refreshes = world.zoho.token_requests() - 1
    final = world.credentials.load(owner, "xero").tokens
    assert final.refresh_token.reveal() != first_refresh_token  # rotated all along
    assert xero_refreshes >= steps * 0.95  # every 25 minutes (tokens live 30)
    assert xero_refreshes <= steps  # one token set for both tenants: refreshed once per step, not twice
    assert zoho_refreshes >= steps // 3  # every 50 minutes (tokens live 60)
    assert zoho_refreshes <= steps // 2 + 1  # shared by both tenants: one refresh per hour, not two
    assert renewals >= DAYS // 4  # six-day channels renewed two days ahead: every four days
    assert enqueued == []  # the channel never lapsed, so there was no gap to reconcile
    assert all(c.state == "active" for c in world.store.connections.all())
