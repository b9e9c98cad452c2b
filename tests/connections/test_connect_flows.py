"""The connect flows against the sandboxes: Xero tenants, Zoho data centres, state checks, sharing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connector.connect import ConnectFailed, zoho_authorize_url, xero_authorize_url
from connector.settings import Settings


def test_xero_connect_links_every_chosen_tenant_with_one_shared_token_set(world):
    first, second = world.xero.add_tenant("Kea Ltd"), world.xero.add_tenant("Tui Ltd")
    connections = world.consent("xero")
    assert sorted(c.xero_tenant_id for c in connections) == sorted([first, second])
    assert {c.name for c in connections} == {"Kea Ltd", "Tui Ltd"}
    owner = world.credentials.owner_of(connections[0].id, "xero")
    assert [world.credentials.owner_of(c.id, "xero") for c in connections] == [owner, owner]
    assert world.credentials.owners("xero") == [owner]  # stored (and refreshed) once

    # Both tenants answer with the shared token.
    token = world.xero_tokens(connections[1].id).access_token()
    listing = requests.get(f"{world.xero_server.url}/connections", timeout=5,
                           headers={"Authorization": f"Bearer {token}"}).json()
    assert {c["tenantId"] for c in listing} == {first, second}


def test_xero_connect_links_only_the_chosen_tenant(world):
    world.xero.add_tenant("Kea Ltd")
    chosen = world.xero.add_tenant("Tui Ltd")
    connections = world.consent("xero", tenant_ids=[chosen])
    assert [c.xero_tenant_id for c in connections] == [chosen]
    assert len(world.store.connections.all()) == 1


def test_state_is_single_use_and_bound_to_its_system(world):
    world.xero.add_tenant("Kea Ltd")
    url = world.flows.start("xero", redirect_uri="http://127.0.0.1:1/cb")
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    with pytest.raises(ConnectFailed, match="state"):
        world.flows.finish_from_url("zoho", location)  # wrong system: state refused and spent
    with pytest.raises(ConnectFailed, match="state"):
        world.flows.finish_from_url("xero", location)
    forged = location.replace(parse_qs(urlsplit(location).query)["state"][0], "forged")
    with pytest.raises(ConnectFailed, match="state"):
        world.flows.finish_from_url("xero", forged)
    assert world.store.connections.all() == []


def test_authorize_urls_carry_scopes_and_the_data_centre():
    settings = Settings(xero_client_id="cid", zoho_client_id="zid")
    xero = parse_qs(urlsplit(xero_authorize_url(settings, state="s", redirect_uri="http://localhost/cb",
                                                scopes="granular")).query)
    assert xero["scope"] == ["offline_access accounting.contacts accounting.invoices accounting.payments "
                             "accounting.settings.read"]
    assert xero["state"] == ["s"] and xero["response_type"] == ["code"]
    broad = parse_qs(urlsplit(xero_authorize_url(settings, state="s", redirect_uri="x", scopes="broad")).query)
    assert broad["scope"] == ["offline_access accounting.contacts accounting.transactions accounting.settings.read"]
    assert parse_qs(urlsplit(xero_authorize_url(settings, state="s", redirect_uri="x",
                                                scopes="accounting.contacts")).query)["scope"] == [
        "offline_access accounting.contacts"]
    for dc, host in {"eu": "accounts.zoho.eu", "ca": "accounts.zohocloud.ca", "au": "accounts.zoho.com.au",
                     "cn": "accounts.zoho.com.cn", "sa": "accounts.zoho.sa", "jp": "accounts.zoho.jp"}.items():
        url = urlsplit(zoho_authorize_url(settings, state="s", redirect_uri="http://localhost/cb", dc=dc))
        assert url.netloc == host
        assert parse_qs(url.query)["access_type"] == ["offline"]


def test_zoho_connect_uses_api_domain_links_tenants_to_one_org_and_enables_a_channel(world):
    world.xero.add_tenant("Kea Ltd"), world.xero.add_tenant("Tui Ltd")
    kea, tui = world.consent("xero")
    linked = world.consent("zoho", connection_ids=[kea.id, tui.id], dc="eu")
    assert {c.zoho_org_id for c in linked} == {world.zoho.org_id}
    assert {c.zoho_api_domain for c in linked} == {world.zoho_server.url}  # from the token response
    owner = world.credentials.owner_of(tui.id, "zoho")
    assert owner == world.credentials.owner_of(kea.id, "zoho") and world.credentials.owners("zoho") == [owner]

    [channel] = world.store.channels.for_connection(owner)
    [live] = world.zoho.channels()
    assert live["channel_id"] == channel.channel_id and sorted(live["events"]) == ["Accounts.edit", "Contacts.edit", "Invoices.edit"]
    assert channel.expires_at.isoformat() == live["channel_expiry"]  # what Zoho granted, not what we asked
    vault_token = world.credentials.load(owner, "zoho").tokens.extra["channel_token"]
    assert live["token"] == vault_token
    assert world.store.channels.verify(channel.channel_id, vault_token) == owner
    assert world.store.channels.verify(channel.channel_id, "wrong") is None


def test_zoho_redirect_naming_a_stranger_as_accounts_server_is_refused(world):
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    url = world.flows.start("zoho", redirect_uri="http://127.0.0.1:1/cb", connection_ids=[kea.id])
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    tampered = location.replace(world.zoho_server.url.replace(":", "%3A").replace("/", "%2F"),
                                "https%3A%2F%2Faccounts.evil.example")
    assert tampered != location
    with pytest.raises(ConnectFailed, match="not a Zoho data centre"):
        world.flows.finish_from_url("zoho", tampered)
    assert world.zoho.token_requests() == 0  # the code (and our secret) never went anywhere
