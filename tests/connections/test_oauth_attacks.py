"""The receiver's connect routes under attack: each attack is refused with 401 or 403.

- anyone without the operator token starting or finishing a flow (?connection=, ?zoho_from=);
- a forged Host header steering the redirect URI (and with it the authorization code) elsewhere;
- a state used from a browser that did not start the flow (stolen state, login CSRF);
- a state used twice.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connector.secret import Secret
from tests.connections.conftest import ADMIN_TOKEN, browse
from webhooks import create_app

OPERATOR = ("operator", ADMIN_TOKEN)


@pytest.fixture
def connected(world):
    """Connection 1: a Xero tenant already sending to the operator's Zoho org."""
    world.xero.add_tenant("Victim Ltd")
    [victim] = world.consent("xero")
    world.consent("zoho", connection_ids=[victim.id])
    return world.store.connections.get(victim.id)


def callback_url(start_answer: requests.Response) -> str:
    """Where the vendor sends the browser back after consent (code and state in the query)."""
    consent = requests.get(start_answer.headers["Location"], allow_redirects=False, timeout=5)
    assert consent.status_code == 302, consent.text
    return consent.headers["Location"]


OPERATOR_ROUTES = [
    "/oauth/zoho/start?connection=1",
    "/oauth/zoho/start?connection=1&dc=eu",
    "/oauth/xero/start",
    "/oauth/xero/start?zoho_from=1",
    "/oauth/xero/callback?code=c&state=s",
    "/oauth/zoho/callback?code=c&state=s",
    "/status",
]
NOT_THE_OPERATOR = [None, ("operator", "not-the-token-at-all"), ("admin", ADMIN_TOKEN)]


def test_operator_routes_refuse_anyone_without_the_token(world, receiver, connected):
    """Every route with every wrong login, on one receiver (a world each took most of a second): each is
    refused, and none changed the connection, after it nor after all of them."""
    refused_wrongly = []
    for path in OPERATOR_ROUTES:
        for credentials in NOT_THE_OPERATOR:
            answer = requests.get(f"{receiver.url}{path}", auth=credentials, allow_redirects=False, timeout=5)
            if answer.status_code != 401 or "Basic" not in answer.headers.get("WWW-Authenticate", ""):
                refused_wrongly.append((path, credentials, answer.status_code, answer.text[:200]))
            assert world.store.connections.get(connected.id).zoho_org_id == connected.zoho_org_id, (path, credentials)
            assert len(world.store.connections.all()) == 1, (path, credentials)
    assert refused_wrongly == []


def test_a_wrong_bearer_token_is_refused_and_the_right_one_accepted(receiver, connected):
    wrong = requests.get(f"{receiver.url}/oauth/zoho/start?connection={connected.id}", allow_redirects=False,
                         headers={"Authorization": "Bearer " + ADMIN_TOKEN[:-1] + "x"}, timeout=5)
    assert wrong.status_code == 401
    right = requests.get(f"{receiver.url}/oauth/zoho/start?connection={connected.id}", allow_redirects=False,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    assert right.status_code == 302


def test_with_no_token_configured_the_operator_routes_refuse_everyone(world, connected):
    app = create_app(webhook_key=Secret("k"), enqueue=lambda *args: None, zoho_channels=world.store.channels,
                     oauth=world.flows, admin_token="", public_url="http://127.0.0.1:1")
    client = app.test_client()
    for credentials in (None, ("operator", ""), ("operator", "anything-at-all-here")):
        headers = {} if credentials is None else {"Authorization": requests.auth._basic_auth_str(*credentials)}
        answer = client.get(f"/oauth/zoho/start?connection={connected.id}", headers=headers)
        assert answer.status_code == 401 and "CONNECTOR_ADMIN_TOKEN" in answer.get_json()["error"]
        assert client.get("/status", headers=headers).status_code == 401


def test_a_forged_host_header_does_not_move_the_redirect_uri(receiver):
    answer = requests.get(f"{receiver.url}/oauth/xero/start", auth=OPERATOR, allow_redirects=False, timeout=5,
                          headers={"Host": "attacker.example", "X-Forwarded-Host": "attacker.example"})
    assert answer.status_code == 302
    [redirect_uri] = parse_qs(urlsplit(answer.headers["Location"]).query)["redirect_uri"]
    assert redirect_uri == f"{receiver.url}/oauth/xero/callback"
    assert "attacker" not in answer.headers["Location"]


def test_without_a_public_url_the_flow_does_not_start(world):
    app = create_app(webhook_key=Secret("k"), enqueue=lambda *args: None, zoho_channels=world.store.channels,
                     oauth=world.flows, admin_token=ADMIN_TOKEN, public_url="")
    answer = app.test_client().get("/oauth/xero/start", headers={"Host": "attacker.example",
                                                                 "Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 503 and "CONNECTOR_PUBLIC_URL" in answer.get_json()["error"]


def test_the_browser_cookie_is_signed_httponly_lax_and_secure_behind_https(world):
    app = create_app(webhook_key=Secret("k"), enqueue=lambda *args: None, zoho_channels=world.store.channels,
                     oauth=world.flows, admin_token=ADMIN_TOKEN, public_url="https://connector.example.com")
    answer = app.test_client().get("/oauth/xero/start", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie and "Path=/oauth/xero/" in cookie


def test_a_stolen_state_is_refused_without_the_starting_browsers_cookie(world, receiver):
    world.xero.add_tenant("Kea Ltd")
    operator = requests.Session()
    start = operator.get(f"{receiver.url}/oauth/xero/start", auth=OPERATOR, allow_redirects=False, timeout=5)
    stolen = callback_url(start)  # e.g. read from a log or a Referer header

    thief = requests.Session()  # another browser, even one holding the operator login
    refused = thief.get(stolen, auth=OPERATOR, timeout=5)
    assert refused.status_code == 403, refused.text
    forged_cookie = thief.get(stolen, auth=OPERATOR, timeout=5, cookies={"mlc_oauth_xero": "forged.value.sig"})
    assert forged_cookie.status_code == 403
    assert world.store.connections.all() == []

    finished = operator.get(stolen, auth=OPERATOR, timeout=10)  # the browser that started it still can
    assert finished.status_code == 200, finished.text
    assert [c["name"] for c in finished.json()["connections"]] == ["Kea Ltd"]


def test_login_csrf_an_attackers_callback_in_the_operators_browser_is_refused(world, receiver, connected):
    """The attacker consents to their own Zoho org and lures the operator's browser to the callback,
    hoping to re-point connection 1 at the attacker's org."""
    operator, attacker = requests.Session(), requests.Session()
    operator.get(f"{receiver.url}/oauth/zoho/start?connection={connected.id}", auth=OPERATOR,
                 allow_redirects=False, timeout=5)  # the operator's own flow: its cookie is in this browser
    attackers_start = attacker.get(f"{receiver.url}/oauth/zoho/start?connection={connected.id}", auth=OPERATOR,
                                   allow_redirects=False, timeout=5)
    lure = callback_url(attackers_start)
    answer = operator.get(lure, auth=OPERATOR, timeout=10)
    assert answer.status_code == 403, answer.text
    assert "another browser" in answer.json()["error"]
    assert world.store.connections.get(connected.id).zoho_org_id == connected.zoho_org_id


def test_a_state_is_used_once(world, receiver):
    world.xero.add_tenant("Kea Ltd")
    browser = requests.Session()
    start = browser.get(f"{receiver.url}/oauth/xero/start", auth=OPERATOR, allow_redirects=False, timeout=5)
    cookie = browser.cookies.get("mlc_oauth_xero")
    callback = callback_url(start)
    assert browser.get(callback, auth=OPERATOR, timeout=10).status_code == 200
    replayed = requests.get(callback, auth=OPERATOR, timeout=10, cookies={"mlc_oauth_xero": cookie})
    assert replayed.status_code == 403 and "already used" in replayed.json()["error"]
    assert len(world.store.connections.all()) == 1


def test_a_state_from_the_cli_flow_does_not_finish_in_a_browser(world, receiver):
    world.xero.add_tenant("Kea Ltd")
    browser = requests.Session()
    browser.get(f"{receiver.url}/oauth/xero/start", auth=OPERATOR, allow_redirects=False, timeout=5)
    cli_url = world.flows.start("xero", redirect_uri=f"{receiver.url}/oauth/xero/callback")  # no browser binding
    consent = requests.get(cli_url, allow_redirects=False, timeout=5)
    answer = browse(browser, consent.headers["Location"], receiver_url=receiver.url, auth=OPERATOR)
    assert answer.status_code == 403
    assert world.store.connections.all() == []
