"""What a person sees in the browser at the end of a connect flow: a page saying what was connected
and what to do next, or what went wrong and what to do about it; never a token. Clients that ask
for JSON (``Accept: application/json``, or no preference) still get JSON."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from tests.connections.conftest import ADMIN_TOKEN, browse

OPERATOR = ("operator", ADMIN_TOKEN)
# What a browser sends when it follows a link or a redirect.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def a_browser() -> requests.Session:
    browser = requests.Session()
    browser.headers["Accept"] = BROWSER_ACCEPT
    return browser


def links(page: requests.Response) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page.text)]


def visible_text(page: requests.Response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.text))


def secrets_of(world, connection_id: int) -> list[str]:
    found = [ADMIN_TOKEN, world.xero.client_secret, world.zoho.client_secret]
    for system in ("xero", "zoho"):
        stored = world.credentials.load(world.credentials.owner_of(connection_id, system), system)
        if stored is not None:
            found += [stored.tokens.access_token.reveal(), stored.tokens.refresh_token.reveal()]
    return [s for s in found if s]


def test_connecting_xero_then_zoho_in_a_browser_shows_what_was_connected_and_the_next_step(world, receiver):
    world.xero.add_tenant('Kea & <b>Sons</b> "Ltd"')
    browser = a_browser()

    xero_page = browse(browser, f"{receiver.url}/oauth/xero/start", receiver_url=receiver.url, auth=OPERATOR)
    assert xero_page.status_code == 200, xero_page.text
    assert xero_page.headers["Content-Type"].startswith("text/html")
    [kea] = world.store.connections.all()
    assert "<b>Sons</b>" not in xero_page.text  # the tenant's name is text, never markup
    assert 'Kea & <b>Sons</b> "Ltd"' in visible_text(xero_page)
    assert f"connection {kea.id}" in visible_text(xero_page)
    # The next step is connecting Zoho for this connection: a link to it, and the CLI's way.
    [zoho_start] = [link for link in links(xero_page) if "/oauth/zoho/start" in link]
    assert parse_qs(urlsplit(zoho_start).query)["connection"] == [str(kea.id)]
    assert f"connector connect zoho --connection {kea.id}" in visible_text(xero_page)
    for secret in secrets_of(world, kea.id):
        assert secret not in xero_page.text

    zoho_page = browse(browser, urljoin(receiver.url, zoho_start), receiver_url=receiver.url, auth=OPERATOR)
    assert zoho_page.status_code == 200, zoho_page.text
    assert zoho_page.headers["Content-Type"].startswith("text/html")
    kea = world.store.connections.get(kea.id)
    text = visible_text(zoho_page)
    assert kea.zoho_org_id == world.zoho.org_id and world.zoho.org_id in text and kea.zoho_api_domain in text
    assert f"connection {kea.id}" in text and 'Kea & <b>Sons</b> "Ltd"' in text
    # Then: check both sides, and import what is already in Xero.
    assert f"connector check {kea.id}" in text and f"connector backfill {kea.id}" in text
    for secret in secrets_of(world, kea.id):
        assert secret not in zoho_page.text


def test_a_client_asking_for_json_still_gets_json(world, receiver):
    world.xero.add_tenant("Kea Ltd")
    client = requests.Session()
    client.headers["Accept"] = "application/json"
    answer = browse(client, f"{receiver.url}/oauth/xero/start", receiver_url=receiver.url, auth=OPERATOR)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    assert [c["name"] for c in answer.json()["connections"]] == ["Kea Ltd"]
    refused = client.get(f"{receiver.url}/oauth/xero/callback?code=x&state=forged", auth=OPERATOR, timeout=5)
    assert refused.status_code == 403 and "start" in refused.json()["error"]


def test_a_denied_consent_gets_a_page_saying_nothing_was_connected_and_how_to_start_again(world, receiver):
    world.xero.add_tenant("Kea Ltd")
    browser = a_browser()
    start = browser.get(f"{receiver.url}/oauth/xero/start", auth=OPERATOR, allow_redirects=False, timeout=5)
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    # The person clicked "Cancel" at Xero: Xero sends the browser back with an error instead of a code.
    denied = browser.get(f"{receiver.url}/oauth/xero/callback?error=access_denied&state={state}", auth=OPERATOR,
                         timeout=5)
    assert denied.status_code == 403, denied.text
    assert denied.headers["Content-Type"].startswith("text/html")
    assert "access_denied" in visible_text(denied) and "nothing was connected" in visible_text(denied).lower()
    assert any(urlsplit(link).path == "/oauth/xero/start" for link in links(denied))
    assert world.store.connections.all() == []


def test_a_bad_state_or_a_foreign_browser_gets_a_page_with_what_to_do_and_403(world, receiver):
    browser = a_browser()
    forged = browser.get(f"{receiver.url}/oauth/zoho/callback?code=x&state=<script>alert(1)</script>",
                         auth=OPERATOR, timeout=5)  # no cookie: this browser started nothing
    assert forged.status_code == 403 and forged.headers["Content-Type"].startswith("text/html")
    assert "<script>" not in forged.text
    assert "start it again" in visible_text(forged)

    world.xero.add_tenant("Kea Ltd")
    start = browser.get(f"{receiver.url}/oauth/xero/start", auth=OPERATOR, allow_redirects=False, timeout=5)
    assert start.status_code == 302
    stale = browser.get(f"{receiver.url}/oauth/xero/callback?code=x&state=used-or-forged", auth=OPERATOR, timeout=5)
    assert stale.status_code == 403 and stale.headers["Content-Type"].startswith("text/html")
    assert "start the connect flow again" in visible_text(stale)
    assert any(urlsplit(link).path == "/oauth/xero/start" for link in links(stale))

    which = browser.get(f"{receiver.url}/oauth/zoho/start", auth=OPERATOR, timeout=5)
    assert which.status_code == 400 and which.headers["Content-Type"].startswith("text/html")
    assert "?connection=ID" in visible_text(which)
