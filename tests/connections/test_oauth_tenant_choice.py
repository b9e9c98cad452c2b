"""A Xero consent that reaches several organisations, started with pick=1 (the console's Connect form): the
person chooses which to connect on a page; the grant waits sealed in Redis, once, for that browser only."""

from __future__ import annotations

import re

import requests

from tests.connections.conftest import browse
from tests.connections.test_oauth_pages import OPERATOR, a_browser, visible_text


def test_the_person_chooses_which_organisations_to_connect_once_in_the_browser_that_consented(world, receiver):
    kea = world.xero.add_tenant("Kea Ltd")
    world.xero.add_tenant("Tui Ltd")
    browser = a_browser()
    page = browse(browser, f"{receiver.url}/oauth/xero/start?pick=1", receiver_url=receiver.url, auth=OPERATOR)
    assert page.status_code == 200 and "Choose the Xero organisations to connect" in page.text
    assert "Kea Ltd" in visible_text(page) and "Tui Ltd" in visible_text(page)
    assert world.store.connections.all() == []  # nothing is linked before the choice
    pending = re.search(r'name="pending" value="([^"]+)"', page.text).group(1)
    held = world.redis.get(f"connector:oauth-held-grant:{pending}")
    assert held and "access_token" not in str(held)  # sealed by the vault

    url = f"{receiver.url}/oauth/xero/tenants"
    stranger = requests.post(url, data={"pending": pending, "tenant": kea}, auth=OPERATOR, timeout=10)
    assert stranger.status_code == 403 and world.store.connections.all() == []  # no binding cookie
    nothing = browser.post(url, data={"pending": pending}, auth=OPERATOR, timeout=10)
    assert nothing.status_code == 400 and "tick at least one" in nothing.text
    assert browser.post(url, data={"pending": pending, "tenant": kea}, timeout=10).status_code == 401

    chosen = browser.post(url, data={"pending": pending, "tenant": kea}, auth=OPERATOR, timeout=10)
    assert chosen.status_code == 200 and "Xero connected" in chosen.text
    [connection] = world.store.connections.all()
    assert connection.xero_tenant_id == kea
    stored = world.credentials.load(connection.id, "xero")
    assert stored is not None and stored.tokens.access_token.reveal() not in chosen.text
    assert stored.tokens.refresh_token.reveal() not in str(held)  # the held grant was this one, sealed
    assert world.redis.get(f"connector:oauth-held-grant:{pending}") is None
    again = browser.post(url, data={"pending": pending, "tenant": kea}, auth=OPERATOR, timeout=10)
    assert again.status_code == 403  # once


def test_without_pick_every_organisation_is_connected_as_before(world, receiver):
    world.xero.add_tenant("Kea Ltd")
    world.xero.add_tenant("Tui Ltd")
    page = browse(a_browser(), f"{receiver.url}/oauth/xero/start", receiver_url=receiver.url, auth=OPERATOR)
    assert page.status_code == 200 and "Xero connected" in page.text
    assert sorted(c.name for c in world.store.connections.all()) == ["Kea Ltd", "Tui Ltd"]
